"""Failures of a remote server as one-line messages that name the server (issue 14, item 5).

RemoteError.kind is "remote" for engine.errors.failure_of; `reason` tells the app which kind of
failure it was (to offer "Retry", "Check the key", ...). The answer streamed before a failure has
already gone out as TextChunks, so whoever listens keeps it.
"""

from __future__ import annotations

import json
import ssl
from typing import Literal

import httpx2

Reason = Literal[
    "unreachable",
    "tls",
    "auth",
    "not_found",
    "rate_limited",
    "server",
    "rejected",
    "cut",
    "timeout",
]

_DETAIL_CHARS = 200


class RemoteError(Exception):
    """A request to the remote server failed; str(error) is one line for the user."""

    kind = "remote"

    def __init__(self, message: str, reason: Reason, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.status = status


def detail_of(body: bytes | str) -> str:
    """The server's own explanation from an error body (OpenAI, FastAPI or plain text), one line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        data = text
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message", "")))
        if isinstance(err, dict):
            err = err.get("message") or err.get("msg") or err
        data = err
    line = " ".join(str(data).split())
    return line[:_DETAIL_CHARS] + ("…" if len(line) > _DETAIL_CHARS else "")


def status_error(
    server: str, status: int, body: bytes | str, model: str | None, retry_after: str | None = None
) -> RemoteError:
    """The RemoteError for an HTTP error status."""
    detail = detail_of(body)
    said = f": {detail}" if detail else ""
    if status in (401, 403):
        return RemoteError(
            f"The server at {server} refused the request (HTTP {status}): check the API key{said}",
            "auth",
            status,
        )
    if status == 404:
        what = f"no model {model!r}" if model else "no such model or endpoint"
        return RemoteError(
            f"The server at {server} has {what} (HTTP 404){said}", "not_found", status
        )
    if status == 429:
        wait = f"; try again in {retry_after} s" if retry_after and retry_after.isdigit() else ""
        return RemoteError(
            f"The server at {server} is busy or rate-limited (HTTP 429){said}{wait}",
            "rate_limited",
            status,
        )
    if status >= 500:
        return RemoteError(f"The server at {server} failed (HTTP {status}){said}", "server", status)
    return RemoteError(
        f"The server at {server} rejected the request (HTTP {status}){said}", "rejected", status
    )


def _tls_cause(error: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def transport_error(
    server: str, error: httpx2.TransportError, timeout: float, answering: bool
) -> RemoteError:
    """The RemoteError for a network failure; `answering`: the answer had begun streaming."""
    tls = _tls_cause(error)
    if tls is not None or "SSL" in str(error) or "CERTIFICATE" in str(error):
        why = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or str(error)
        return RemoteError(
            f"TLS failure talking to the server at {server}: {why} "
            "(check http:// vs https:// and the server's certificate)",
            "tls",
        )
    if isinstance(error, httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return RemoteError(
            f"The server at {server} did not accept a connection within {timeout:g} s", "timeout"
        )
    if isinstance(error, httpx2.TimeoutException):
        if answering:
            return RemoteError(
                f"The server at {server} stopped sending for {timeout:g} s mid-answer "
                "(the answer so far is kept)",
                "timeout",
            )
        return RemoteError(f"The server at {server} did not answer within {timeout:g} s", "timeout")
    if isinstance(error, httpx2.ConnectError):
        text = str(error)
        why = "connection refused — is it running?" if "refused" in text.lower() else text
        return RemoteError(f"Can't reach the server at {server}: {why}", "unreachable")
    if answering:
        return cut(server)
    return RemoteError(
        f"The connection to the server at {server} failed: {error or type(error).__name__}",
        "unreachable",
    )


def cut(server: str) -> RemoteError:
    return RemoteError(
        f"The server at {server} closed the connection mid-answer (the answer so far is kept)",
        "cut",
    )
