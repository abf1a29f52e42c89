"""One HTTP exchange around one engine job: a bounded JSON body in, the answer out, and the
client's disconnect stopping the job (queued or running) at once.

Responses are written as plain ASGI messages so a handler can choose the status after the job
has started (a prompt that does not fit is a 400, not a broken stream).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from engine.events import Finished, GenerationStats, TextChunk
from engine.jobs import JobDone, JobFailed
from engine.serve.bridge import JobStream
from engine.serve.errors import ApiError, Dialect, error_of_failure

Body = Callable[[Send], Awaitable[None]]


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request's JSON object; 413 past `limit` bytes (never reads more), 400 if malformed."""
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"The request body is over {limit:,} bytes.", code="body_too_large")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks) or b"null")
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ApiError(400, f"The request body is not valid JSON: {e}", code="invalid_json") from e
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


async def start(send: Send, status: int, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def write(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def send_json(send: Send, status: int, data: Any) -> None:
    await start(send, status, "application/json")
    await write(send, dumps(data), more=False)


async def send_error(send: Send, error: ApiError, dialect: Dialect) -> None:
    await send_json(send, error.status, error.body(dialect))


class JobResponse:
    """Runs `body(send)` while watching for the client's disconnect: a client that goes away
    stops its job (a queued job then never runs); a body that ends early stops it too."""

    def __init__(self, stream: JobStream, body: Body):
        self.stream, self.body = stream, body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tasks:

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if not self.stream.ended:
                        self.stream.stop()
                    tasks.cancel_scope.cancel()

                tasks.start_soon(watch)
                await self.body(send)
                tasks.cancel_scope.cancel()
        finally:
            if not self.stream.ended:
                self.stream.stop()


class JobAnswer:
    """One job's answer in a dialect: whole (one JSON body) or streamed (one frame per event).
    A dialect's subclass says what each event becomes; the job's plumbing is written once."""

    dialect: Dialect
    content_type: str  # of a streamed answer
    end: bytes  # a streamed answer's last bytes

    def __init__(self, stream: JobStream, max_tokens: int | None):
        self.stream, self.max_tokens = stream, max_tokens

    def frame(self, data: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def on_open(self) -> list[dict[str, Any]]:
        return []

    def on_text(self, text: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def on_finished(self, stats: GenerationStats) -> list[dict[str, Any]]:
        raise NotImplementedError

    def on_stopped(self) -> list[dict[str, Any]]:
        """The job ended before it began (the engine shut down)."""
        raise NotImplementedError

    def body_of(self, text: str, stats: GenerationStats) -> dict[str, Any]:
        """The body of a whole (not streamed) answer."""
        raise NotImplementedError

    def response(self, streamed: bool) -> JobResponse:
        return JobResponse(self.stream, self.write_streamed if streamed else self.write_whole)

    async def _opened(self, send: Send) -> bool:
        """Waits for the answer to start; if the job failed first, sends its error status."""
        failure = await self.stream.opening()
        if failure is not None:
            await send_error(send, error_of_failure(failure, self.max_tokens), self.dialect)
        return failure is None

    async def write_whole(self, send: Send) -> None:
        if not await self._opened(send):
            return
        text, stats, failed = [], None, None
        async for event in self.stream.events():
            if isinstance(event, TextChunk):
                text.append(event.text)
            elif isinstance(event, Finished):
                stats = event.stats
            elif isinstance(event, JobFailed):
                failed = event
        if failed is not None or stats is None:
            error = error_of_failure(failed) if failed else ApiError(503, "The answer was stopped.")
            return await send_error(send, error, self.dialect)
        await send_json(send, 200, self.body_of("".join(text), stats))

    async def write_streamed(self, send: Send) -> None:
        if not await self._opened(send):
            return
        await start(send, 200, self.content_type)
        for data in self.on_open():
            await write(send, self.frame(data))
        async for event in self.stream.events():
            for data in self._frames_of(event):
                await write(send, self.frame(data))
        await write(send, self.end, more=False)

    def _frames_of(self, event: object) -> list[dict[str, Any]]:
        if isinstance(event, TextChunk):
            return self.on_text(event.text)
        if isinstance(event, Finished):
            return self.on_finished(event.stats)
        if isinstance(event, JobFailed):
            return [error_of_failure(event).body(self.dialect)]
        if isinstance(event, JobDone) and event.result is None:
            return self.on_stopped()
        return []
