"""Convert from the original weights: download Mistral's bf16 release, then quantize it here.

Both phases report through one event type (PullProgress) and stop on the same cancel event. The
download resumes where it stopped; the conversion is redone from the start in a hidden
`.<name>.partial` folder that is renamed into place only when complete, so a folder under the
final name is always a whole model.
"""

from __future__ import annotations

import errno
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import filelock

from engine.events import Cancelled
from engine.hub import download as hub
from engine.hub.local_models import delete_model, missing_files, model_dir_for, models_dir

Phase = Literal["download", "convert"]


@dataclass(frozen=True)
class PullProgress:
    phase: Phase
    done: int  # bytes: downloaded so far, or of the bf16 source quantized so far
    total: int
    speed_bps: float
    eta_s: float | None  # None until a speed is known
    detail: str  # the file being downloaded, or "tensor 12 of 363"


def from_download(p: hub.DownloadProgress) -> PullProgress:
    return PullProgress(
        "download", p.done_bytes, p.total_bytes, p.speed_bps, p.eta_s, p.current_file
    )


def quantized_bytes(source_bytes: int, bits: int = 4, group_size: int = 64) -> int:
    """Size of the quantized copy of bf16 weights: per parameter bits/8, plus a 16-bit scale and
    bias per group (4-bit g64: 0.5625 B/param, ≈ 6.9 GB for Nemo's 24.5 GB)."""
    return int(source_bytes / 2 * (bits / 8 + 4 / group_size))


def converted_dir_for(original: Path, bits: int = 4, group_size: int = 64) -> Path:
    """The sibling folder of a local conversion, e.g. …/mistralai--Mistral-Nemo-…-4bit-local."""
    group = "" if group_size == 64 else f"-g{group_size}"
    return original.with_name(f"{original.name}-{bits}bit{group}-local")


def pull_and_convert(
    dest_root: Path | None = None,
    *,
    repo_id: str = hub.ORIGINAL_REPO,
    bits: int = 4,
    group_size: int = 64,
    token: str | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
    keep_original: bool = True,
    on_progress: Callable[[PullProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Download `repo_id`'s bf16 weights into `dest_root` (default models_dir()) and quantize them
    into a sibling folder; returns that folder. A finished conversion is returned at once.

    The bf16 download is kept by default (`keep_original`): deleting it is irreversible and
    converting again (say to 8-bit) would cost another ~24.5 GB gated download; the settings page
    lists it with its size for the user to delete. Raises hub.DownloadError (a message for the
    user), Cancelled in either phase (hub.DownloadCancelled is one), or the WeightsError /
    ConfigError of a source folder that cannot be converted.
    """
    if bits not in (4, 8) or group_size not in (32, 64, 128):
        raise ValueError(
            f"bits must be 4 or 8 and group_size 32, 64 or 128, not {bits}/{group_size}"
        )
    root = Path(dest_root) if dest_root is not None else models_dir()
    original = model_dir_for(repo_id, root)
    final = converted_dir_for(original, bits, group_size)
    partial = final.with_name(f".{final.name}.partial")
    cancel = cancel or threading.Event()
    emit = on_progress or (lambda p: None)

    root.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(root / f".{final.name}.lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise hub.DownloadError(f"another conversion into {final} is already running") from None
    try:
        if final.exists():
            problems = missing_files(final)
            if problems:  # not ours to delete: it only ever appears complete, by a rename
                raise hub.DownloadError(
                    f"{final} exists but is incomplete ({'; '.join(problems)}): "
                    "delete it and run again"
                )
        else:
            shutil.rmtree(partial, ignore_errors=True)  # an interrupted conversion: start over

            hub.download(
                repo_id,
                original,
                token=token,
                revision=revision,
                on_progress=lambda p: emit(from_download(p)),
                cancel=cancel,
                allow_patterns=hub.ORIGINAL_ALLOW_PATTERNS,
                endpoint=endpoint,
                also_needed=lambda n: (
                    quantized_bytes(n, bits, group_size),
                    f"the {bits}-bit copy",
                ),
            )
            _convert(original, partial, bits, group_size, emit, cancel)
            partial.rename(final)
    finally:
        lock.release()
    if not keep_original and original.exists():
        delete_model(original)
    return final


def _convert(
    src: Path,
    dst: Path,
    bits: int,
    group_size: int,
    emit: Callable[[PullProgress], None],
    cancel: threading.Event,
) -> None:
    """weights.convert into `dst`, reporting bytes of the source; `dst` is removed on failure."""
    # Lazy: engine.weights imports MLX and mlx-lm (seconds); the app's download panel imports us.
    from engine.weights import convert, read_tensor_infos

    # convert walks the shards in index order, one tensor at a time: map tensors to shard bytes.
    shards: dict[Path, int] = {}
    for info in read_tensor_infos(src).values():
        shards[info.file] = shards.get(info.file, 0) + 1
    sizes = [(n, f.stat().st_size) for f, n in shards.items()]
    total, start = sum(size for _, size in sizes), time.monotonic()

    def on_tensor(done: int, count: int) -> None:
        seen, nbytes = done, 0
        for n, size in sizes:  # whole shards behind, then a share of the current one
            nbytes += size * min(seen, n) // n
            seen -= min(seen, n)
        elapsed = time.monotonic() - start
        speed = nbytes / elapsed if elapsed > 0 else 0.0
        eta = (total - nbytes) / speed if speed > 0 else None
        emit(PullProgress("convert", nbytes, total, speed, eta, f"tensor {done} of {count}"))

    emit(PullProgress("convert", 0, total, 0.0, None, "reading the weights"))
    try:
        convert(src, dst, bits=bits, group_size=group_size, on_progress=on_tensor, cancel=cancel)
    except BaseException as e:
        shutil.rmtree(dst, ignore_errors=True)
        if isinstance(e, Cancelled):
            raise Cancelled(
                "conversion cancelled; the download is complete and kept — run it again to convert"
            ) from e
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise hub.DownloadError(
                _disk_full(dst, quantized_bytes(total, bits, group_size))
            ) from e
        if isinstance(e, (OSError, RuntimeError)):  # MLX reports a failed write as RuntimeError
            raise hub.DownloadError(f"the conversion into {dst} failed: {e}") from e
        raise
    # MLX does not report a short write (a full disk): check every shard against its header.
    problems = missing_files(dst)
    if problems:
        shutil.rmtree(dst, ignore_errors=True)
        raise hub.DownloadError(
            f"{_disk_full(dst, quantized_bytes(total, bits, group_size))} ({'; '.join(problems)})"
        )
    elapsed = time.monotonic() - start
    emit(PullProgress("convert", total, total, total / elapsed if elapsed else 0.0, 0.0, "done"))


def _disk_full(dst: Path, needed: int) -> str:
    return (
        f"the converted model could not be written in full at {dst.parent} — is the disk full? "
        f"It needs about {needed / 1e9:.1f} GB; the download is kept"
    )
