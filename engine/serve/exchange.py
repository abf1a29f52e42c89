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

from engine.serve.bridge import JobStream
from engine.serve.errors import ApiError, Dialect

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
