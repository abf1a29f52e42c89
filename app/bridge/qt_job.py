"""QtJob: one engine job as a QObject with its own signals (DESIGN "A request is a handle").

The engine thread hands the job's frozen events to `QtJob.sink`; the sink coalesces text to
~30 updates a second and posts each event to the QtJob, which lives on the GUI thread and emits
its public signals there. Only the job's owner hears them: nothing is filtered by id. `stop()`
sets the engine job's threading.Event directly; a job stopped before the engine took it ends at
once with finished(cancelled) and never runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from engine.docs.summarize_events import CombineStarted, PartDone, PartStarted, SummaryPlan
from engine.events import ContextTrimmed, GenerationStats, PrefillProgress, TextChunk
from engine.jobs import Job, JobDone, JobFailed, JobStarted
from engine.service import LoadProgress

CHUNK_INTERVAL_S = 0.033  # ~30 GUI updates a second: smooth to read, cheap to lay out
# Jobs whose result is GenerationStats.
ANSWER_KINDS = frozenset({"chat", "quick", "summary", "ask"})


def cancelled_stats() -> GenerationStats:
    """The stats of an answer stopped before it began."""
    return GenerationStats(0, 0, 0, 0, 0.0, 0.0, 0.0, 0, "cancelled")


class ChunkBatcher:
    """Coalesces streamed text: at most one GUI update per `interval` (the first goes at once)."""

    def __init__(
        self, interval: float = CHUNK_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ):
        self._interval, self._clock = interval, clock
        self._parts: list[str] = []
        self._last = float("-inf")

    def add(self, text: str) -> str | None:
        """Buffer `text`; return everything buffered when it is time to emit, else None."""
        self._parts.append(text)
        now = self._clock()
        if now - self._last < self._interval:
            return None
        self._last = now
        return self.flush()

    def flush(self) -> str:
        text, self._parts = "".join(self._parts), []
        return text


class QtJob(QObject):
    """A handle on one engine job, for its owner on the GUI thread."""

    started = Signal()  # the engine thread took it off the queue
    prefillProgress = Signal(int, int)  # prompt tokens done, total
    text = Signal(str)  # new answer text, at most ~30 a second; all of it before the end
    trimmed = Signal(int, int, int)  # dropped messages, prompt tokens, num_ctx
    summaryProgress = Signal(int, int, float, str)  # part, count, eta_s (-1: unknown), label
    loadProgress = Signal(int, int)  # per mille: a 7 GB byte count would overflow a C int
    progress = Signal(object)  # any other plain progress event (a conversion's PullProgress)
    finished = Signal(object)  # the result: GenerationStats (finish_reason "cancelled" when
    # stopped), ModelInfo for a load, a path for a conversion, ...
    failed = Signal(str)  # a message for the user

    def __init__(
        self,
        kind: str,
        on_event: Callable[[QtJob, object], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.kind = kind
        self.job: Job | None = None  # set by attach(), right after the engine queued it
        self.running = False
        self.ended = False
        self.cancelled = False
        self.result: Any = None
        self.failure: JobFailed | None = None
        self._on_event = on_event  # the controller's view of every job (state), GUI thread
        self._eta = -1.0  # a summary's time left after its last finished part

    def __repr__(self) -> str:
        return f"<QtJob {self.kind} {self.job!r}>"

    def attach(self, job: Job) -> QtJob:
        self.job = job
        return self

    def stop(self) -> None:
        """Stop now (any thread may call the Event; this method is for the GUI thread)."""
        if self.job is not None:
            self.job.stop()
        if not self.running and not self.ended:
            # Still queued: it will never run. Its owner hears the end now, not after the
            # answers ahead of it; the engine's own JobDone(cancelled) is then swallowed.
            self._end_cancelled(None)

    @property
    def stats(self) -> GenerationStats | None:
        return self.result if isinstance(self.result, GenerationStats) else None

    # --- the GUI thread ---

    def dispatch(self, event: object) -> None:
        """One of the engine job's events, delivered on the GUI thread (by JobRelay)."""
        if self._on_event is not None:
            self._on_event(self, event)
        if self.ended:
            return  # stopped while queued: its owner already heard the end
        if isinstance(event, TextChunk):
            self.text.emit(event.text)
        elif isinstance(event, PrefillProgress):
            self.prefillProgress.emit(event.done, event.total)
        elif isinstance(event, ContextTrimmed):
            self.trimmed.emit(event.dropped_messages, event.prompt_tokens, event.num_ctx)
        elif isinstance(event, LoadProgress):
            self.loadProgress.emit(event.done * 1000 // max(1, event.total), 1000)
        elif isinstance(event, JobStarted):
            self.running = True
            self.started.emit()
        elif isinstance(event, JobDone):
            if event.cancelled:
                self._end_cancelled(event.result)
            else:
                self._end(event.result)
                self.finished.emit(event.result)
        elif isinstance(event, JobFailed):
            self._end(None)
            self.failure = event
            self.failed.emit(event.message)
        else:
            self._summary_progress(event)
            self.progress.emit(event)  # every plain event: a summary's strip and stored parts

    def _summary_progress(self, event: object) -> bool:
        if isinstance(event, SummaryPlan):
            label = "single" if event.single_pass else "plan"
            self.summaryProgress.emit(0, event.parts, -1.0, label)
        elif isinstance(event, PartStarted):
            self.summaryProgress.emit(event.index, event.count, self._eta, "part")
        elif isinstance(event, PartDone):
            self._eta = event.eta_s
        elif isinstance(event, CombineStarted):
            label = "final" if event.final else "combine"
            self.summaryProgress.emit(event.index, event.count, event.eta_s, label)
        else:
            return False
        return True

    def _end(self, result: Any) -> None:
        self.running, self.ended, self.result = False, True, result

    def _end_cancelled(self, result: Any) -> None:
        self.cancelled = True
        if self.kind in ANSWER_KINDS and not isinstance(result, GenerationStats):
            result = cancelled_stats()
        self._end(result)
        self.finished.emit(result)


class JobRelay(QObject):
    """Carries every job's events from the engine thread to its QtJob on the GUI thread.

    It lives as long as the controller, so the engine thread never holds the last reference to
    a QtJob (a QObject must be destroyed on its own thread); it keeps each QtJob until the
    engine's last event for it has been delivered.
    """

    _posted = Signal(object, object)  # the job's _Poster, the event

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: dict[_Poster, QtJob] = {}
        self._posted.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def sink_for(self, job: QtJob, chunk_interval: float = CHUNK_INTERVAL_S) -> Callable:
        poster = _Poster(self._posted.emit, chunk_interval)
        self._jobs[poster] = job
        return poster.sink

    @Slot(object, object)
    def _deliver(self, poster: _Poster, event: object) -> None:
        job = self._jobs[poster] if not isinstance(event, (JobDone, JobFailed)) else None
        if job is None:
            job = self._jobs.pop(poster)
        job.dispatch(event)


class _Poster:
    """The engine-thread side of one job: coalesces its text, posts its events."""

    def __init__(self, post: Callable[[object, object], None], interval: float) -> None:
        self._post = post
        self._batcher = ChunkBatcher(interval)

    def sink(self, event: object) -> None:
        if isinstance(event, TextChunk):
            text = self._batcher.add(event.text)
            if text:
                self._post(self, TextChunk(text))
            return
        if isinstance(event, (JobDone, JobFailed)):
            rest = self._batcher.flush()  # what was generated is kept, even on failure
            if rest:
                self._post(self, TextChunk(rest))
        self._post(self, event)
