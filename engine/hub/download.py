"""Model download from the Hugging Face Hub with byte progress, cancel, resume and clear errors.

huggingface_hub 2.4's hf_hub_download/snapshot_download delete their partial file when a transfer
fails (file_download._download_to_tmp_and_move writes to a per-process uuid temp file), so they
cannot resume after a cancel or a restart, and they read 10 MB chunks (slow to cancel). We keep
huggingface_hub for everything else (model info, URLs, auth headers and token lookup, its HTTP
session, error classes, the local-dir `.cache/huggingface` metadata layout) and stream the bytes
ourselves into `<local_dir>/.cache/huggingface/download/<hash>.<etag>.incomplete`, resuming with
a Range request. Files are checked against the Hub's sha256 (LFS) or git blob id before use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import filelock
import httpx2
from huggingface_hub import HfApi, constants, hf_hub_url
from huggingface_hub._local_folder import (
    get_local_download_paths,
    read_download_metadata,
    write_download_metadata,
)
from huggingface_hub.utils import (
    build_hf_headers,
    filter_repo_objects,
    get_session,
    hf_raise_for_status,
)

from engine.hub.errors import DownloadCancelled, DownloadError, human_errors
from engine.hub.local_models import missing_files, model_dir_for
from engine.units import gb

DEFAULT_REPO = "mlx-community/Mistral-Nemo-Instruct-2407-4bit"
ORIGINAL_REPO = "mistralai/Mistral-Nemo-Instruct-2407"

# What the engine needs: config, the HF-named shards and their index, and the tokenizer files.
# tokenizer*.json / special_tokens_map.json (~9 MB) are kept so that mlx-lm can open the same folder
# (bench compares against it). "model*.safetensors" leaves out the original repo's 24 GB
# consolidated.safetensors (Mistral-native duplicate of the same weights), params.json and README.
MLX_ALLOW_PATTERNS = (
    "config.json",
    "generation_config.json",
    "model*.safetensors",
    "model.safetensors.index.json",
    "tekken.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
ORIGINAL_ALLOW_PATTERNS = MLX_ALLOW_PATTERNS  # same names in the bf16 repo, which has tekken.json

DISK_MARGIN_BYTES = 512 * 1024**2  # headroom for the OS and the app while the last shard lands
_CHUNK_BYTES = 256 * 1024  # cancel is checked between chunks: ~5 ms apart at 50 MB/s
_PROGRESS_INTERVAL_S = 0.1  # at most ~10 progress events a second; the first and last always go out
_SPEED_WINDOW_S = 5.0  # speed is a moving average over this window
_RETRY_WAITS_S = (0.25, 1.0, 2.0, 4.0, 8.0)  # a dropped connection resumes after these waits


@dataclass(frozen=True)
class DownloadProgress:
    done_bytes: int  # summed over all files, counting what was already on disk
    total_bytes: int
    speed_bps: float  # bytes per second over the last few seconds of this session
    eta_s: float | None  # None until a speed is known
    current_file: str


@dataclass(frozen=True)
class _RemoteFile:
    name: str
    size: int
    etag: str  # sha256 for LFS files, git blob id otherwise (what the Hub's ETag headers carry)
    lfs: bool


def download(
    repo_id: str = DEFAULT_REPO,
    dest: Path | None = None,
    *,
    token: str | None = None,
    revision: str | None = None,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    allow_patterns: Sequence[str] = MLX_ALLOW_PATTERNS,
    endpoint: str | None = None,
    also_needed: Callable[[int], tuple[int, str]] | None = None,
) -> Path:
    """Download the model files of `repo_id` into `dest` (default: models_dir()/owner--name).

    Resumes files left partial by an earlier cancel, failure or restart. `token` None means
    huggingface_hub's own lookup (HF_TOKEN, then the `hf auth login` file). `also_needed` maps the
    size of the weights to (bytes, what) that the caller will write next to them afterwards (a
    conversion), so that the free-space check counts it too. Raises DownloadError with a
    user-facing message, or DownloadCancelled.
    """
    dest = Path(dest) if dest is not None else model_dir_for(repo_id)
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    cancel = cancel or threading.Event()
    with human_errors(repo_id, revision, endpoint, dest):
        dest.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(dest / ".cache" / "nemo-download.lock", timeout=0)
        (dest / ".cache").mkdir(exist_ok=True)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise DownloadError(f"another download into {dest} is already running") from None
        try:
            headers = build_hf_headers(token=token)
            commit, files = _remote_files(repo_id, revision, token, endpoint, allow_patterns)
            todo = [f for f in files if not _is_current(dest, f, cancel)]
            on_disk = {f.name: _partial_size(dest, f) for f in todo}
            weights = sum(f.size for f in files if f.name.endswith(".safetensors"))
            extra = also_needed(weights) if also_needed else (0, "")
            _check_disk_space(dest, sum(f.size - on_disk[f.name] for f in todo), *extra)
            total = sum(f.size for f in files)
            progress = _Progress(
                total, total - sum(f.size - on_disk[f.name] for f in todo), on_progress
            )
            progress.emit(todo[0].name if todo else "", force=True)
            for f in todo:
                url = hf_hub_url(repo_id, f.name, revision=commit, endpoint=endpoint)
                _fetch(dest, f, commit, url, headers, progress, cancel)
            progress.emit("", force=True)
        finally:
            lock.release()
    problems = missing_files(dest, {f.name: f.size for f in files})
    if problems:
        raise DownloadError(
            f"the download of {repo_id} into {dest} is incomplete: {'; '.join(problems)}"
        )
    _ensure_tokenizer(dest)
    return dest


def download_original(
    dest: Path | None = None,
    *,
    token: str | None = None,
    revision: str | None = None,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    endpoint: str | None = None,
    also_needed: Callable[[int], tuple[int, str]] | None = None,
) -> Path:
    """Download Mistral's bf16 release (five shards, ~24.5 GB, gated: needs a token) to convert."""
    return download(
        ORIGINAL_REPO,
        dest,
        token=token,
        revision=revision,
        on_progress=on_progress,
        cancel=cancel,
        allow_patterns=ORIGINAL_ALLOW_PATTERNS,
        endpoint=endpoint,
        also_needed=also_needed,
    )


def _remote_files(
    repo_id: str,
    revision: str | None,
    token: str | None,
    endpoint: str,
    allow_patterns: Sequence[str],
) -> tuple[str, list[_RemoteFile]]:
    """The commit to pin every file to, and the wanted files with sizes and hashes."""
    info = HfApi(endpoint=endpoint, token=token).model_info(
        repo_id, revision=revision, files_metadata=True
    )
    siblings = list(
        filter_repo_objects(
            info.siblings or [], allow_patterns=list(allow_patterns), key=lambda s: s.rfilename
        )
    )
    files = []
    for s in siblings:
        etag = s.lfs.sha256 if s.lfs is not None else s.blob_id
        if s.size is None or etag is None:
            raise DownloadError(f"{endpoint} gave no size or hash for {repo_id}/{s.rfilename}")
        files.append(_RemoteFile(s.rfilename, s.size, etag, s.lfs is not None))
    if not any(f.name.endswith(".safetensors") for f in files):
        raise DownloadError(
            f"{repo_id} has no safetensors weights (model*.safetensors) to download"
        )
    return info.sha or revision or "main", files


def _is_current(dest: Path, f: _RemoteFile, cancel: threading.Event) -> bool:
    """The finished file is there with this etag (hashing it once when our metadata is missing)."""
    path = dest / f.name
    if not path.is_file() or path.stat().st_size != f.size:
        return False
    meta = read_download_metadata(dest, f.name)
    if meta is not None:
        return meta.etag == f.etag
    if _digest(path, f, cancel) != f.etag:
        return False
    write_download_metadata(dest, f.name, commit_hash="", etag=f.etag)
    return True


def _part_path(dest: Path, f: _RemoteFile) -> Path:
    return get_local_download_paths(dest, f.name).incomplete_path(f.etag)


def _partial_size(dest: Path, f: _RemoteFile) -> int:
    part = _part_path(dest, f)
    for stale in part.parent.glob(part.name.split(".", 1)[0] + ".*.incomplete"):
        if stale != part:  # left from an older revision of this file: its bytes are of no use
            stale.unlink(missing_ok=True)
    size = part.stat().st_size if part.exists() else 0
    if size > f.size:
        part.unlink()
        return 0
    return size


def _check_disk_space(dest: Path, needed: int, extra: int = 0, extra_for: str = "") -> None:
    if needed + extra <= 0:
        return
    free = shutil.disk_usage(dest).free
    if free < needed + extra + DISK_MARGIN_BYTES:
        parts = f" ({gb(needed)} to download, {gb(extra)} for {extra_for})" if extra else ""
        raise DownloadError(
            f"the download needs {gb(needed + extra + DISK_MARGIN_BYTES)} free{parts}, "
            f"only {gb(free)} available at {dest}",
            "disk",
        )


def _fetch(
    dest: Path,
    f: _RemoteFile,
    commit: str,
    url: str,
    headers: dict[str, str],
    progress: _Progress,
    cancel: threading.Event,
) -> None:
    """Bring one file to completion in its .incomplete file, verify it, move it into place."""
    part = _part_path(dest, f)
    have = part.stat().st_size if part.exists() else 0
    failures = 0
    while have < f.size:
        before = have
        try:
            _stream(url, headers, part, have, f, progress, cancel)
        except httpx2.TransportError:  # dropped connection, timeout, reset: resume from what landed
            if cancel.is_set():  # or our own hang-up after a cancel
                raise DownloadCancelled(f"download of {f.name} cancelled") from None
            failures = 0 if part.stat().st_size > before else failures + 1
            if failures >= len(_RETRY_WAITS_S):
                raise
            if cancel.wait(_RETRY_WAITS_S[failures]):
                raise DownloadCancelled(f"download of {f.name} cancelled") from None
        have = part.stat().st_size if part.exists() else 0
        if have > f.size:
            part.unlink()
            raise DownloadError(
                f"the server sent more than the {f.size} bytes of {f.name}; it was removed — retry"
            )
    if _digest(part, f, cancel) != f.etag:
        part.unlink()
        raise DownloadError(
            f"{f.name} arrived corrupted (checksum mismatch); it was removed — try again"
        )
    os.replace(part, dest / f.name)
    write_download_metadata(dest, f.name, commit_hash=commit, etag=f.etag)


def _stream(
    url: str,
    headers: dict[str, str],
    part: Path,
    have: int,
    f: _RemoteFile,
    progress: _Progress,
    cancel: threading.Event,
) -> None:
    """One GET, appending to `part` from byte `have` (a Range request when resuming)."""
    request_headers = dict(headers, **{"Accept-Encoding": "identity"})
    if have:
        request_headers["Range"] = f"bytes={have}-"
    # The shared session follows the Hub's redirect to its CDN and drops the token on the way.
    with get_session().stream(
        "GET", url, headers=request_headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT
    ) as r:
        if r.status_code >= 400:
            r.read()
            hf_raise_for_status(r)
        if have and r.status_code != 206:  # the server ignored the Range: start the file over
            progress.add(-have, f.name)
            have = 0
        with open(part, "r+b" if part.exists() else "wb") as out, _hang_up_on_cancel(r, cancel):
            out.seek(have)
            out.truncate()
            for chunk in r.iter_bytes(_CHUNK_BYTES):
                if cancel.is_set():
                    break
                out.write(chunk)
                progress.add(len(chunk), f.name)
    if cancel.is_set():
        raise DownloadCancelled(f"download of {f.name} cancelled")


@contextmanager
def _hang_up_on_cancel(response: httpx2.Response, cancel: threading.Event) -> Iterator[None]:
    """A read blocked on a stalled connection never sees the event: shut the socket to wake it."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    finished = threading.Event()

    def watch(sock: socket.socket) -> None:
        while not finished.wait(0.05):
            if cancel.is_set():
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return

    if sock is not None:
        threading.Thread(target=watch, args=(sock,), name="hub-cancel-watch", daemon=True).start()
    try:
        yield
    finally:
        finished.set()


def _digest(path: Path, f: _RemoteFile, cancel: threading.Event | None = None) -> str:
    """The file's hash as the Hub publishes it: sha256 for LFS files, git blob id otherwise."""
    h = hashlib.sha256() if f.lfs else hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        while block := fh.read(8 * 1024 * 1024):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(f"check of {f.name} cancelled")
            h.update(block)
    return h.hexdigest()


class _Progress:
    """Sums bytes over files and reports them, at most every _PROGRESS_INTERVAL_S seconds."""

    def __init__(self, total: int, done: int, callback: Callable[[DownloadProgress], None] | None):
        self.total, self.done, self.callback = total, done, callback
        self.samples: deque[tuple[float, int]] = deque([(time.monotonic(), done)])
        self.last_emit = float("-inf")

    def add(self, n: int, current_file: str) -> None:
        self.done += n
        self.emit(current_file)

    def emit(self, current_file: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback is None or (not force and now - self.last_emit < _PROGRESS_INTERVAL_S):
            return
        self.last_emit = now
        self.samples.append((now, self.done))
        while len(self.samples) > 2 and now - self.samples[1][0] > _SPEED_WINDOW_S:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        speed = max(0.0, (self.done - d0) / (now - t0)) if now > t0 else 0.0
        eta = (self.total - self.done) / speed if speed > 0 else None
        self.callback(DownloadProgress(self.done, self.total, speed, eta, current_file))


def _ensure_tokenizer(model_dir: Path) -> None:
    """mlx-community's conversions ship no tekken.json: put the bundled, sha-checked copy there."""
    if (model_dir / "tekken.json").is_file():
        return
    from engine.tokenizer import (
        bundled_tekken_path,  # lazy: keeps mistral_common off the import path
    )

    try:
        shutil.copyfile(bundled_tekken_path(), model_dir / "tekken.json")
    except (OSError, ValueError) as e:  # TokenizerError is a ValueError naming the file
        msg = f"{model_dir} has no tekken.json and the bundled one is unusable: {e}"
        raise DownloadError(msg) from e
