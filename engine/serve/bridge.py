"""Engine jobs seen from the server's asyncio loop: each job's events land in its own queue.

The engine thread calls the sink; loop.call_soon_threadsafe hands the event to the loop, so the
server thread only ever waits on an asyncio queue and never touches MLX (DESIGN rule 1).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from engine.events import Finished, TextChunk
from engine.jobs import Job, JobDone, JobFailed, JobState
from engine.serve.errors import ApiError
from engine.serve.work import ApiGeneration, run_generation
from engine.service import EngineService

_TERMINAL = (JobDone, JobFailed)


@dataclass(frozen=True)
class ApiActivity:
    """API requests now on the engine thread: for the status bar."""

    running: int
    waiting: int


class JobStream:
    """One job's events, delivered into one asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._pending: deque[object] = deque()
        self.job: Job | None = None
        self.outcome: JobDone | JobFailed | None = None

    def sink(self, event: object) -> None:
        """Called on the engine thread; must never raise there."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop has closed: the server is gone, nobody listens
            pass

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    async def _next(self) -> object:
        event = self._pending.popleft() if self._pending else await self._queue.get()
        if isinstance(event, _TERMINAL):
            self.outcome = event
        return event

    async def opening(self) -> JobFailed | None:
        """Wait until the answer starts (first text, or its end); its failure if it failed
        first. Lets a handler pick the HTTP status before sending headers."""
        while True:
            event = await self._queue.get()
            self._pending.append(event)
            if isinstance(event, JobFailed):
                return event
            if isinstance(event, (TextChunk, Finished, JobDone)):
                return None

    async def events(self) -> AsyncIterator[object]:
        """Every event up to and including the terminal one."""
        while True:
            event = await self._next()
            yield event
            if isinstance(event, _TERMINAL):
                return

    def stop(self) -> None:
        if self.job is not None and not self.job.ended:
            self.job.stop()


class ApiJobs:
    """Submits API work to the engine service and keeps count of the jobs still alive."""

    def __init__(self, service: EngineService, recent: int = 64):
        self.service = service
        self._lock = threading.Lock()
        self._live: list[Job] = []
        self.recent: deque[Job] = deque(maxlen=recent)  # for tests and diagnostics

    def submit(self, spec: ApiGeneration) -> JobStream:
        stream = JobStream(asyncio.get_running_loop())
        try:
            job = self.service.submit(
                "api", lambda job: run_generation(self.service, spec, job), stream.sink
            )
        except RuntimeError as e:  # the engine has been shut down (the app is quitting)
            raise ApiError(503, str(e), code="shutting_down") from e
        stream.job = job
        with self._lock:
            self._live = [j for j in self._live if not j.ended]
            self._live.append(job)
            self.recent.append(job)
        return stream

    def activity(self) -> ApiActivity:
        with self._lock:
            self._live = [j for j in self._live if not j.ended]
            running = sum(j.state is JobState.RUNNING for j in self._live)
            waiting = sum(j.state is JobState.QUEUED and not j.stopped for j in self._live)
        return ApiActivity(running, waiting)

    def stop_all(self) -> None:
        with self._lock:
            live = list(self._live)
        for job in live:
            job.stop()
