"""The engine thread: one thread runs every job, one at a time, in order (DESIGN rule 1).

The chat window (through app/bridge), the quick prompt, summaries, the CLI and the local API all
submit jobs here and each hears only its own job's events (engine.jobs). MLX work — loading,
prefill, decoding, cache save/load and freeing — happens on this thread only.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.backend import Backend, ChatRequest, CompletionRequest, ModelInfo
from engine.errors import NoModel, failure_of
from engine.events import Finished, GenerationStats
from engine.jobs import Job, JobState, Sink

log = logging.getLogger(__name__)
E = TypeVar("E")  # the kind of event forward() keeps


@dataclass(frozen=True)
class LoadProgress:
    """Bytes of weights read so far while loading a model folder."""

    done: int
    total: int


@dataclass(frozen=True)
class Activity:
    """What the engine thread is doing: for the status bar ("API: 1 running, 2 waiting")."""

    running: str | None  # the running job's kind, or None when idle
    waiting: int


_STOP = object()  # the queue's end marker
IDLE_TICK_S = 30.0  # with nothing queued this long, the backend's idle() runs (cache snapshots)


class EngineService:
    """Owns the engine thread and the backend that runs on it."""

    def __init__(
        self, backend: Backend | None = None, *, name: str = "engine", prepare: bool = True
    ):
        self._backend = backend
        self._info: ModelInfo | None = backend.info if backend is not None else None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self._running: Job | None = None
        self._closed = False
        self.activity_listeners: list[Callable[[Activity], None]] = []
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        if prepare:
            self.submit("prepare", _prepare_tokenizer)

    # --- any thread ---

    @property
    def info(self) -> ModelInfo | None:
        """The model behind the current backend (frozen data), or None."""
        return self._info

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def activity(self) -> Activity:
        with self._lock:
            running = self._running.kind if self._running is not None else None
            return Activity(running, sum(not j.stopped for j in self._waiting))

    def submit(self, kind: str, run: Callable[[Job], Any], sink: Sink | None = None) -> Job:
        """Queue `run(job)` for the engine thread; its return value is the job's result."""
        job = Job(kind, run, sink)
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine has been shut down")
            self._waiting.append(job)
            self._queue.put(job)
        self._notify()
        return job

    def load(
        self, path: str, sink: Sink | None = None, factory: Callable[..., Backend] | None = None
    ) -> Job:
        """Load a local model folder (freeing the old model first); result: ModelInfo.
        Emits LoadProgress while the weights are read."""

        def run(job: Job) -> ModelInfo:
            from engine.local_backend import LocalBackend

            self._set_backend(None)  # two 12B models do not fit: drop the old one first
            make = factory or LocalBackend.load
            backend = make(path, lambda done, total: job.emit(LoadProgress(done, total)))
            self._set_backend(backend)
            return backend.info

        return self.submit("load", run, sink)

    def use(self, make: Callable[[], Backend | None], sink: Sink | None = None) -> Job:
        """Switch to the backend that `make()` builds on the engine thread (None: no model)."""

        def run(job: Job) -> ModelInfo | None:
            self._set_backend(None)
            self._set_backend(make())
            return self._info

        return self.submit("use", run, sink)

    def chat(self, request: ChatRequest, sink: Sink | None = None, kind: str = "chat") -> Job:
        """Answer a chat; events: ContextTrimmed?, PrefillProgress*, TextChunk*, Finished;
        result: GenerationStats."""
        return self.submit(
            kind, lambda job: self.stream(job, self.backend.chat(request, job.cancel)), sink
        )

    def complete(self, request: CompletionRequest, sink: Sink | None = None) -> Job:
        return self.submit(
            "complete",
            lambda job: self.stream(job, self.backend.complete(request, job.cancel)),
            sink,
        )

    def summarize(self, request: Any, sink: Sink | None = None) -> Job:
        """Summarize long documents (engine.docs.summary_jobs.SummaryRequest); events: the
        run's (SummaryPlan, PartStarted/PartDone, CombineStarted, TextChunk, SummaryDone);
        result: GenerationStats of everything generated."""
        return self._documents_job("summary", request, sink)

    def ask(self, request: Any, sink: Sink | None = None) -> Job:
        """A question over every part of long documents (engine.docs.summary_jobs.AskRequest)."""
        return self._documents_job("ask", request, sink)

    def _documents_job(self, kind: str, request: Any, sink: Sink | None) -> Job:
        from engine.docs.summary_jobs import run_job  # the planner: loaded on first use

        return self.submit(kind, lambda job: run_job(self, request, job), sink)

    def forget(self, key: str) -> Job:
        """A conversation was deleted: drop its cache (and its snapshot on disk)."""

        def run(job: Job) -> None:
            if self._backend is not None:
                self._backend.forget(key)

        return self.submit("forget", run)

    def shutdown(self, timeout: float | None = 60.0) -> bool:
        """Stop every job, let the backend write what must survive, end the thread."""
        with self._lock:
            if self._closed:
                return not self._thread.is_alive()
            self._closed = True
            for job in self._waiting:
                job.stop()
            if self._running is not None:
                self._running.stop()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the engine thread did not stop within %s s", timeout)
            return False
        return True

    # --- the engine thread ---

    @property
    def backend(self) -> Backend:
        """The current backend; raises NoModel when there is none (engine thread)."""
        if self._backend is None:
            raise NoModel()
        return self._backend

    def stream(self, job: Job, events: Iterator[Any]) -> GenerationStats:
        """Forward an answer's events to `job`; its stats."""
        finished = self.forward(job, events, Finished)
        if finished is None:
            raise RuntimeError("the engine ended the answer without its stats")
        return finished.stats

    def forward(self, job: Job, events: Iterator[Any], last: type[E]) -> E | None:
        """Forward every event to `job`; the last one of type `last`. Closes the generator here,
        on this thread: one left to the garbage collector could free MLX arrays on another
        thread. A failure lets the backend recover (its active cache may hold half a chunk)."""
        kept = None
        try:
            for event in events:
                if isinstance(event, last):
                    kept = event
                job.emit(event)
        except BaseException:
            recover = getattr(self._backend, "recover", None)
            if recover is not None:
                recover()
            raise
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
        return kept

    def _set_backend(self, backend: Backend | None) -> None:
        old, self._backend = self._backend, backend
        self._info = backend.info if backend is not None else None
        if old is not None and old is not backend:
            try:
                old.close()
            except Exception:  # noqa: BLE001 - a failed close must not block the next model
                log.warning("closing the backend failed", exc_info=True)

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=IDLE_TICK_S)
            except queue.Empty:
                self._idle()
                continue
            if item is _STOP:
                break
            job: Job = item
            with self._lock:
                self._waiting.remove(job)
                self._running = job
            self._notify()
            try:
                job._execute(failure_of)
            finally:
                with self._lock:
                    self._running = None
                self._notify()
        # Jobs queued before shutdown end as cancelled; then the backend writes and frees.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _STOP:
                item.stop()
                item._execute(failure_of)
        self._set_backend(None)
        _release_thread_streams()

    def _idle(self) -> None:
        """Nothing queued for a while: let the backend do its background chores (snapshots)."""
        idle = getattr(self._backend, "idle", None)
        if idle is not None:
            try:
                idle()
            except Exception:  # noqa: BLE001 - a chore must never stop the engine thread
                log.warning("the backend's idle chores failed", exc_info=True)

    def _notify(self) -> None:
        if not self.activity_listeners:
            return
        activity = self.activity()
        for listener in list(self.activity_listeners):
            try:
                listener(activity)
            except Exception:  # noqa: BLE001
                log.warning("activity listener failed", exc_info=True)


def _release_thread_streams() -> None:
    """Destroy the MLX streams this thread made. MLX's streams are thread-local since 0.31:
    left to thread and process teardown they abort the process at exit ("terminate called
    without an active exception", mlx#3126); mx.clear_streams is the documented cleanup."""
    import sys

    mx = sys.modules.get("mlx.core")  # a remote-only engine never imported MLX
    clear = getattr(mx, "clear_streams", None)
    if clear is not None:
        clear()


def _prepare_tokenizer(job: Job) -> None:
    """Build the bundled Nemo tokenizer once at start-up: building it holds the GIL ~0.4 s, which
    would stall a GUI if it happened during a model load (loads reuse this one)."""
    from engine.tokenizer import TokenizerError, load_tokenizer

    try:
        load_tokenizer(None)
    except TokenizerError:
        log.warning("the bundled tokenizer could not be built", exc_info=True)


__all__ = ["Activity", "EngineService", "JobState", "LoadProgress"]
