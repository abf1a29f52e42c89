"""A fake OpenAI-compatible server on 127.0.0.1 that misbehaves on request, for the remote
backend's fault tests. The first path segment names the behaviour, so one server serves all:
base URL http://127.0.0.1:PORT/<scenario>, e.g. /cut3/v1/chat/completions.

    ok        streams WORDS, finish_reason "stop", usage
    401 404 429 500    that status with an OpenAI-style error body (on every endpoint but
                       /models for 404/429/500: the model list works, answers fail)
    cutN      N chunks, then the connection drops mid-chunk (HTTP/1.1 chunked, no end)
    eofN      N chunks, then a clean end of stream without finish_reason or [DONE]
    stallN    N chunks, then silence until the client hangs up or the server stops
    errorN    N chunks, then an error event in the stream (as vLLM sends)
    hang      no answer at all, not even headers (a server stuck before it starts)
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = ["Hello", " from", " the", " fake", " server", "."]
MODEL = "fake-nemo-12b"


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any] | None]] = []
        self.hangups = 0  # stalled streams whose client hung up
        self.stopping = threading.Event()
        fake = self

        class Handler(_Handler):
            owner = fake

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, scenario: str = "ok") -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _chunk(text: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _route(self) -> tuple[str, str]:
        _, scenario, rest = self.path.split("/", 2)
        return scenario, "/" + rest

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] = {}) -> None:  # noqa: B006
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int) -> None:
        message = {
            401: "Invalid API key provided",
            404: f"The model '{MODEL}' does not exist",
            429: "Rate limit reached",
            500: "CUDA out of memory",
        }[status]
        self._json(status, {"error": {"message": message}}, {"Retry-After": "7"})

    def do_GET(self) -> None:
        scenario, path = self._route()
        self.owner.requests.append((self.path, dict(self.headers), None))
        if scenario == "401":
            return self._error(401)
        if path == "/v1/models":
            return self._json(
                200, {"object": "list", "data": [{"id": MODEL, "max_model_len": 4096}]}
            )
        self._json(404, {"error": "Not Found"})

    def do_POST(self) -> None:
        scenario, path = self._route()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.owner.requests.append((self.path, dict(self.headers), body))
        if scenario.isdigit():
            return self._error(int(scenario))
        if scenario == "hang":
            return self._stall()
        kind, n = re.fullmatch(r"([a-z]+)(\d*)", scenario).groups()
        n = int(n) if n else len(WORDS)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if kind == "eof":
            self.send_header("Connection", "close")
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        send = self._raw if kind == "eof" else self._chunked
        for i in range(n):
            send(f"data: {json.dumps(_chunk(WORDS[i % len(WORDS)]))}\n\n")
        if kind == "ok":
            send(f"data: {json.dumps(_chunk(None, 'stop'))}\n\n")
            usage = {"prompt_tokens": 11, "completion_tokens": n, "total_tokens": 11 + n}
            send(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n")
            send("data: [DONE]\n\n")
            self._chunked("")
        elif kind == "cut":
            self.wfile.write(b'40\r\ndata: {"choices"')  # half a chunk, then the line drops
            self.wfile.flush()
            self.close_connection = True
        elif kind == "eof":
            self.close_connection = True
        elif kind == "stall":
            self._stall()
        elif kind == "error":
            send('data: {"error": {"message": "the worker crashed", "code": 500}}\n\n')
            self._chunked("")

    def _raw(self, text: str) -> None:
        self.wfile.write(text.encode())
        self.wfile.flush()

    def _chunked(self, text: str) -> None:
        raw = text.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()

    def _stall(self) -> None:
        """Send nothing; notice when the client hangs up (a read returns EOF)."""
        self.connection.settimeout(0.05)
        while not self.owner.stopping.is_set():
            try:
                if self.connection.recv(1) == b"":
                    self.owner.hangups += 1
                    break
            except TimeoutError:
                continue
            except OSError:
                self.owner.hangups += 1
                break
            time.sleep(0.01)
        self.close_connection = True
