"""The HTTP side of the remote backend: /v1/models and streamed /v1/*completions over httpx2.

Stop must be immediate even while a read blocks (a long prefill on the server, a stalled
stream): a watcher thread shuts the request's socket when the cancel event is set, which wakes
the read; the server sees the connection close and stops generating. Each streamed request gets
its own connection (no keep-alive) so the socket is known from the moment it is opened.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx2

from engine.remote.config import RemoteConfig, RemoteModel
from engine.remote.errors import RemoteError, cut, detail_of, status_error, transport_error

_KEEPALIVE = re.compile(r"keepalive\s+(\d+)\s*/\s*(\d+)")  # mlx_lm.server's prefill progress
_MAX_ERROR_BODY = 64 * 1024
_MAX_LINE = 1 << 20  # one SSE line; a server sending more is broken, not a long answer


@dataclass(frozen=True)
class Progress:
    """The server's prefill progress, when it reports it (mlx_lm.server's keepalive comments)."""

    done: int
    total: int


class RemoteClient:
    """One server: plain requests for metadata, streams for answers. Engine thread only,
    except `list_models`, which any thread may call on its own client."""

    def __init__(self, config: RemoteConfig):
        self.config = config
        headers = {"Accept": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._http = httpx2.Client(
            base_url=config.api_root,
            headers=headers,
            timeout=httpx2.Timeout(config.read_timeout, connect=config.timeout),
            limits=httpx2.Limits(max_keepalive_connections=0),
            follow_redirects=True,
            trust_env=False,  # a proxy from the environment must not see a local server's traffic
        )

    def close(self) -> None:
        self._http.close()

    @property
    def server(self) -> str:
        return self.config.server

    def list_models(self) -> list[RemoteModel]:
        """The server's /v1/models; [] when it has no such endpoint (404)."""
        try:
            r = self._http.get("/models", timeout=self.config.timeout)
        except httpx2.TransportError as e:
            raise transport_error(self.server, e, self.config.timeout, answering=False) from e
        if r.status_code == 404:
            return []
        if r.status_code >= 400:
            raise status_error(self.server, r.status_code, r.content[:_MAX_ERROR_BODY], None)
        try:
            data = r.json()
        except ValueError as e:
            raise RemoteError(
                f"The server at {self.server} is not an OpenAI-compatible API "
                "(/v1/models did not answer JSON)",
                "rejected",
                r.status_code,
            ) from e
        entries = data.get("data") if isinstance(data, dict) else data
        return [m for m in map(_model_of, entries or []) if m is not None]

    def stream(
        self, path: str, body: dict[str, Any], cancel: threading.Event
    ) -> Iterator[dict[str, Any] | Progress]:
        """POST `body` with stream=true; yields each data payload (parsed JSON) and Progress.

        Ends at "data: [DONE]" or at the end of the stream; returns quietly when `cancel` is set.
        Raises RemoteError for HTTP and network failures (and for a stream cut before [DONE]
        while no finish_reason was seen: the caller decides that from what it received).
        """
        socks: list[socket.socket] = []

        def trace(name: str, info: dict[str, Any]) -> None:
            # Capture the socket as soon as it is connected: stop works during the prefill too.
            if name.endswith(("connect_tcp.complete", "start_tls.complete")):
                stream = info.get("return_value")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    socks.append(sock)

        request = self._http.build_request("POST", path, json=body, extensions={"trace": trace})
        answering = False
        with _hang_up_on_cancel(socks, cancel):
            try:
                response = self._http.send(request, stream=True)
            except httpx2.TransportError as e:
                if cancel.is_set():
                    return
                raise transport_error(self.server, e, self._timeout_of(e), False) from e
            try:
                if response.status_code >= 400:
                    raw = _read_some(response)
                    raise status_error(
                        self.server,
                        response.status_code,
                        raw,
                        body.get("model"),
                        response.headers.get("retry-after"),
                    )
                for item in _events(response.iter_lines()):
                    if cancel.is_set():
                        return
                    if isinstance(item, dict):
                        answering = True
                        if "error" in item and not item.get("choices"):
                            raise RemoteError(
                                f"The server at {self.server} reported an error mid-answer: "
                                f"{detail_of(json.dumps(item))}",
                                "server",
                            )
                    yield item
            except httpx2.TransportError as e:
                if cancel.is_set():
                    return
                raise transport_error(self.server, e, self._timeout_of(e), answering) from e
            finally:
                response.close()

    def _timeout_of(self, error: httpx2.TransportError) -> float:
        connecting = isinstance(error, httpx2.ConnectTimeout | httpx2.PoolTimeout)
        return self.config.timeout if connecting else self.config.read_timeout

    def cut(self) -> RemoteError:
        return cut(self.server)


def _read_some(response: httpx2.Response) -> bytes:
    data = b""
    with suppress(httpx2.TransportError):
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= _MAX_ERROR_BODY:
                break
    return data[:_MAX_ERROR_BODY]


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any] | Progress]:
    """Server-sent events: JSON payloads of `data:` fields, Progress from keepalive comments."""
    data: list[str] = []
    for line in lines:
        if len(line) > _MAX_LINE:
            raise RemoteError("the server sent a line of over 1 MiB: not an answer stream", "cut")
        if line.startswith(":"):
            m = _KEEPALIVE.search(line)
            if m:
                yield Progress(int(m.group(1)), int(m.group(2)))
            continue
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line.strip() == "" and data:
            payload = "\n".join(data)
            data = []
            if payload.strip() == "[DONE]":
                return
            try:
                parsed = json.loads(payload)
            except ValueError:
                continue  # not ours to understand (a vendor's extra event)
            if isinstance(parsed, dict):
                yield parsed
    if data and "".join(data).strip() not in ("", "[DONE]"):
        with suppress(ValueError):
            parsed = json.loads("\n".join(data))
            if isinstance(parsed, dict):
                yield parsed


@contextmanager
def _hang_up_on_cancel(socks: list[socket.socket], cancel: threading.Event) -> Iterator[None]:
    """A read blocked on the server never sees the event: shut the socket to wake it."""
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            if cancel.wait(0.05):
                for sock in list(socks):
                    with suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return

    watcher = threading.Thread(target=watch, name="remote-cancel-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _model_of(entry: Any) -> RemoteModel | None:
    if isinstance(entry, str):
        return RemoteModel(entry)
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return None
    meta = entry.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    # vLLM: max_model_len; LM Studio / OpenRouter: context_length; llama.cpp: meta.n_ctx(_train)
    context = next(
        (
            _int(v)
            for v in (
                entry.get("max_model_len"),
                entry.get("max_context_length"),
                entry.get("context_length"),
                entry.get("max_context"),
                meta.get("n_ctx"),
                meta.get("n_ctx_train"),
            )
            if _int(v)
        ),
        None,
    )
    return RemoteModel(entry["id"], context, str(entry.get("owned_by") or ""))
