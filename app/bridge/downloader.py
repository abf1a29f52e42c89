"""First-run model download: engine.hub.download on its own QThread, with plain-data progress signals.

This is the app's second door into `engine`, next to app/worker.py, and it stays narrow: it only
imports engine.hub.download and engine.hub.local_models (HTTP and files, no MLX work), so downloading never
waits on the engine thread and the engine never waits on a download. The one MLX step of the
"convert from the original weights" flow — quantizing — goes to the EngineWorker thread through
EngineController.convert_model, after the bf16 download finished here. Views never import this
module's engine names; they get Downloader and ModelLibrary objects handed in.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from engine.hub.local_models import (  # files only (platformdirs): cheap at start
    LocalModel,
    delete_model,
    missing_files,
    model_dir_for,
    models_dir,
    models_on_disk,
)
from engine.memory import NEMO_4BIT_WEIGHTS_BYTES

if TYPE_CHECKING:
    from app.bridge.qt_job import QtJob
    from engine.hub.download import DownloadProgress

log = logging.getLogger(__name__)

# The same ids as engine.hub.download's (tests/app/test_window_polish.py checks): that module
# imports huggingface_hub and httpx (seconds on a busy machine), so it loads at the first
# download, never before the window shows (issue 17 #13).
DEFAULT_REPO = "mlx-community/Mistral-Nemo-Instruct-2407-4bit"
ORIGINAL_REPO = "mistralai/Mistral-Nemo-Instruct-2407"
DEFAULT_SIZE_BYTES = NEMO_4BIT_WEIGHTS_BYTES  # the label before the Hub has told us the real total
ORIGINAL_SIZE_BYTES = 24_500_000_000  # five bf16 shards
MARKER = "nemo-chat-download.json"  # in <model>/.cache: "a download started here", with its total


def _hub() -> Any:
    """engine.hub.download, imported on first use (HTTP clients: slow to import)."""
    from engine.hub import download

    return download


def _flow() -> Any:
    from engine.hub import convert_flow

    return convert_flow


def __getattr__(name: str) -> Any:
    # Progress: engine.hub.convert_flow.PullProgress (phase "download" | "convert", done, total,
    # speed_bps, eta_s, detail), resolved lazily like the module it lives in.
    if name == "Progress":
        return _flow().PullProgress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Failure:
    kind: str  # "gated" | "offline" | "not_found" | "disk" | "error"
    message: str  # for the user, one sentence or two; never a traceback
    repo_id: str


@dataclass(frozen=True)
class PartialDownload:
    done_bytes: int  # finished files plus partial files, as on disk now
    total_bytes: int | None  # None when the download never got as far as the first progress


def sentence(text: str) -> str:
    """engine messages start in lower case, to follow a prefix; the panel shows them alone."""
    text = text.strip()
    if "/" not in text.split(" ", 1)[0]:  # a repo id keeps its case
        text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def partial_download(dest: Path) -> PartialDownload | None:
    """What an unfinished download left in `dest` (kept across cancels and restarts), or None."""
    cache = dest / ".cache"
    marker = cache / MARKER
    parts = list((cache / "huggingface" / "download").rglob("*.incomplete"))
    if not marker.is_file() and not parts:
        return None
    done = sum(p.stat().st_size for p in parts)
    done += sum(p.stat().st_size for p in dest.iterdir() if p.is_file())
    try:
        total = int(json.loads(marker.read_text())["total_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        total = None
    return PartialDownload(done, total)


def is_complete(dest: Path) -> bool:
    """A whole model that no download is still working on."""
    return dest.is_dir() and not missing_files(dest) and partial_download(dest) is None


class ModelLibrary:
    """The models folder, for the views: list, delete, and where each repo goes (no MLX)."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = Path(root) if root is not None else None

    @property
    def root(self) -> Path:
        return self._root or models_dir()  # read late: tests point XDG_DATA_HOME elsewhere

    def folder_for(self, repo_id: str) -> Path:
        return model_dir_for(repo_id, self.root)

    def models(self) -> list[LocalModel]:
        return models_on_disk(self.root)

    def delete(self, path: str | Path) -> None:
        """Raises ValueError (not a model folder) or OSError; the caller shows the message."""
        delete_model(Path(path))


class _DownloadThread(QThread):
    """One engine.hub.download call; signals come from this thread and are queued to the GUI."""

    progressed = Signal(object)  # Progress
    succeeded = Signal(str)
    failedWith = Signal(object)  # Failure
    cancelled = Signal(str)

    def __init__(self, repo_id: str, dest: Path, token: str | None, cancel: threading.Event,
                 allow_patterns: tuple[str, ...], also_needed: Callable | None) -> None:  # fmt: skip
        super().__init__()
        self.setObjectName("download")
        self.repo_id, self.dest, self.token, self.cancel = repo_id, dest, token, cancel
        self.allow_patterns, self.also_needed = allow_patterns, also_needed
        self._marked = False

    def run(self) -> None:
        try:
            path = _hub().download(
                self.repo_id,
                self.dest,
                token=self.token,
                on_progress=self._on_progress,
                cancel=self.cancel,
                allow_patterns=self.allow_patterns,
                also_needed=self.also_needed,
            )
        except _hub().DownloadCancelled:
            self.cancelled.emit("Download paused. What has arrived is kept.")
        except _hub().DownloadError as e:
            self.failedWith.emit(Failure(e.kind, sentence(str(e)), self.repo_id))
        except Exception as e:  # noqa: BLE001 - a message in the panel, never a crash
            log.warning("download of %s failed", self.repo_id, exc_info=True)
            message = f"The download failed: {type(e).__name__}: {e}"
            self.failedWith.emit(Failure("error", message, self.repo_id))
        else:
            (path / ".cache" / MARKER).unlink(missing_ok=True)
            self.succeeded.emit(str(path))

    def _on_progress(self, p: DownloadProgress) -> None:
        if not self._marked:  # remember the total, so that a restart can say "2.1 of 6.9 GB"
            marker = self.dest / ".cache" / MARKER
            marker.write_text(json.dumps({"repo_id": self.repo_id, "total_bytes": p.total_bytes}))
            self._marked = True
        self.progressed.emit(_flow().from_download(p))


class Downloader(QObject):
    """GUI-side: starts and cancels downloads, forwards progress; one job at a time."""

    progress = Signal(object)  # Progress: phase, done, total, speed_bps, eta_s, detail
    finished = Signal(str)  # the model folder, ready to load
    failed = Signal(object)  # Failure
    cancelled = Signal(str)
    runningChanged = Signal(bool)

    def __init__(
        self,
        controller: Any = None,
        library: ModelLibrary | None = None,
        repo_id: str = DEFAULT_REPO,
        original_repo: str = ORIGINAL_REPO,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller  # EngineController: runs the MLX conversion
        self._convert_job: QtJob | None = None
        self.library = library or ModelLibrary()
        self.repo_id, self.original_repo = repo_id, original_repo
        self._thread: _DownloadThread | None = None
        self._cancel = threading.Event()
        self._convert: tuple[int, int] | None = None  # (bits, group) while converting
        self._running = False
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    @property
    def running(self) -> bool:
        return self._running

    def default_size(self) -> int:
        """For the button before the Hub is asked: the 4-bit model's size."""
        return DEFAULT_SIZE_BYTES

    def destination(self, convert: bool = False) -> Path:
        return self.library.folder_for(self.original_repo if convert else self.repo_id)

    def partial(self, convert: bool = False) -> PartialDownload | None:
        """An unfinished download of the default model (or of the original weights)."""
        return partial_download(self.destination(convert))

    def complete(self) -> Path | None:
        """The default model, when it is already whole on disk."""
        dest = self.destination()
        return dest if is_complete(dest) else None

    def download(self, token: str | None = None) -> None:
        """Download (or resume) the default MLX 4-bit model."""
        self._start(self.repo_id, token, _hub().MLX_ALLOW_PATTERNS, None)

    def download_and_convert(
        self, bits: int = 4, group_size: int = 64, token: str | None = None
    ) -> None:
        """Download (or resume) the bf16 original here, then quantize it on the engine thread."""
        if self.controller is None:
            raise RuntimeError("converting needs the engine controller")
        self._start(
            self.original_repo,
            token,
            _hub().ORIGINAL_ALLOW_PATTERNS,
            lambda n: (_flow().quantized_bytes(n, bits, group_size), f"the {bits}-bit copy"),
            convert=(bits, group_size),
        )

    def cancel(self) -> None:
        """Stops the transfer (or the conversion) within a chunk; the partial files stay."""
        self._cancel.set()
        if self._convert_job is not None:
            self._convert_job.stop()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel and wait for the download thread (called when the app quits)."""
        self._cancel.set()
        thread = self._thread
        return thread is None or thread.wait(timeout_ms)

    # --- internals (GUI thread) ---

    def _start(self, repo_id: str, token: str | None, patterns, also_needed, convert=None) -> None:
        if self._running:
            return
        self._cancel = threading.Event()
        self._token = token or None
        self._convert = convert
        dest = self.library.folder_for(repo_id)
        job = _DownloadThread(repo_id, dest, self._token, self._cancel, patterns, also_needed)
        job.progressed.connect(self.progress)
        job.succeeded.connect(self._on_downloaded)
        job.failedWith.connect(self._on_failed)
        job.cancelled.connect(self._on_cancelled)
        job.finished.connect(lambda: self._forget(job))
        if self._thread is not None:  # the last job has sent its result and is returning
            self._thread.wait()
        self._thread = job
        self._set_running(True)
        job.start()

    def _set_running(self, running: bool) -> None:
        if running != self._running:
            self._running = running
            self.runningChanged.emit(running)

    def _forget(self, job: _DownloadThread) -> None:
        # Its `finished` may arrive after the next job started: only ever drop this one.
        if self._thread is job:
            self._thread = None
        job.deleteLater()

    @Slot(str)
    def _on_downloaded(self, path: str) -> None:
        if self._convert is None:
            self._set_running(False)
            self.finished.emit(path)
            return
        if self._cancel.is_set():
            self._on_cancelled("Paused before converting. The download is complete and kept.")
            return
        bits, group = self._convert
        self.progress.emit(
            _flow().PullProgress("convert", 0, 1, 0.0, None, "waiting for the engine")
        )
        job = self._convert_job = self.controller.convert_model(
            str(self.library.root), self.original_repo, bits, group, self._token
        )
        job.progress.connect(self._on_convert_progress)
        job.finished.connect(self._on_converted)
        job.failed.connect(self._on_convert_failed)

    @Slot(object)
    def _on_failed(self, failure: Failure) -> None:
        self._set_running(False)
        self.failed.emit(failure)

    @Slot(str)
    def _on_cancelled(self, message: str) -> None:
        self._set_running(False)
        self.cancelled.emit(message)

    @Slot(object)
    def _on_convert_progress(self, p: Any) -> None:
        # pull_and_convert's own "download" events are its re-check of the finished download.
        if self._running and self._convert is not None and p.phase == "convert":
            self.progress.emit(p)

    def _on_converted(self, result: str | None) -> None:
        job, self._convert_job = self._convert_job, None
        if job is not None and job.cancelled:
            self._on_cancelled(sentence(result or "Converting was cancelled."))
        elif self._running and self._convert is not None:
            self._set_running(False)
            self.finished.emit(result)

    def _on_convert_failed(self, message: str) -> None:
        self._convert_job = None
        if self._running and self._convert is not None:
            self._on_failed(Failure("error", sentence(message), self.original_repo))

    def converted_dir(self, bits: int = 4, group_size: int = 64) -> Path:
        return _flow().converted_dir_for(self.destination(convert=True), bits, group_size)
