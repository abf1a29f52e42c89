"""A request to the engine thread is a handle: a Job with its own events and its own stop().

Only the job's owner hears its events: the engine thread hands each one to the job's sink (a
queue by default; the Qt bridge passes a sink that emits the job's own signals, the local API one
that feeds its asyncio queue). Nothing is filtered by id. Models: mlx-lm server's per-request
response queue, superqt's GeneratorWorker, Anki's CollectionOp.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class JobStarted:
    """The engine thread took the job off the queue."""


@dataclass(frozen=True)
class JobDone:
    """The job ended; `cancelled` when it was stopped (before or while running)."""

    result: Any  # plain data: GenerationStats for answers, ModelInfo for loads, ...
    cancelled: bool = False


@dataclass(frozen=True)
class JobFailed:
    """The job raised. `message` is for the user; `kind` lets callers map it (HTTP status, ...)."""

    message: str
    kind: str = "error"  # "overflow" | "no_model" | "invalid" | "remote" | "error"
    prompt_tokens: int = 0  # for "overflow": what the prompt needs ...
    num_ctx: int = 0  # ... and what the context allows


Terminal = JobDone | JobFailed
Sink = Callable[[object], None]

_ids = itertools.count(1)


class Job:
    """One unit of engine work. `stop()` may be called from any thread, at any time."""

    def __init__(self, kind: str, run: Callable[[Job], Any], sink: Sink | None = None):
        self.id = next(_ids)  # for logs only: routing is by object, never by id
        self.kind = kind
        self.cancel = threading.Event()
        self.state = JobState.QUEUED
        self.outcome: Terminal | None = None
        self._run = run
        self._queue: queue.SimpleQueue[object] | None = None
        if sink is None:
            self._queue = queue.SimpleQueue()
            sink = self._queue.put
        self._sink = sink
        self._ended = threading.Event()

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self.state}>"

    def stop(self) -> None:
        """Stop now: a queued job never starts; a running one ends within a token or chunk."""
        self.cancel.set()

    @property
    def stopped(self) -> bool:
        return self.cancel.is_set()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def emit(self, event: object) -> None:
        """Hand one event to the owner (engine thread)."""
        self._sink(event)

    def wait(self, timeout: float | None = None) -> Terminal | None:
        """Block until the job ends; its outcome, or None on timeout."""
        self._ended.wait(timeout)
        return self.outcome

    def events(self, timeout: float | None = None) -> Iterator[object]:
        """The job's events up to and including its JobDone/JobFailed (default sink only).

        `timeout` bounds the wait for each next event; queue.Empty is raised past it.
        """
        if self._queue is None:
            raise RuntimeError("this job's events go to its own sink")
        while True:
            event = self._queue.get(timeout=timeout)
            yield event
            if isinstance(event, (JobDone, JobFailed)):
                return

    # --- called by the engine thread (engine.service) ---

    def _execute(self, failure_of: Callable[[Exception], JobFailed]) -> None:
        """Run the job; `failure_of` turns what it raises into the owner's JobFailed."""
        if self.cancel.is_set():
            self._end(JobDone(None, cancelled=True), JobState.CANCELLED)
            return
        self.state = JobState.RUNNING
        self.emit(JobStarted())
        try:
            result = self._run(self)
        except Exception as e:  # noqa: BLE001 - reported to the owner, the thread lives on
            self._end(failure_of(e), JobState.FAILED)
            return
        cancelled = self.cancel.is_set() or getattr(result, "finish_reason", "") == "cancelled"
        self._end(JobDone(result, cancelled), JobState.CANCELLED if cancelled else JobState.DONE)

    def _end(self, outcome: Terminal, state: JobState) -> None:
        self.outcome, self.state = outcome, state
        try:
            self.emit(outcome)
        finally:
            self._ended.set()
