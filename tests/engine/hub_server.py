"""A local imitation of the Hugging Face Hub endpoints that engine.hub.download (and huggingface_hub) use.

Serves on 127.0.0.1 at a random port:
  GET  /api/models/{repo}[/revision/{rev}]   model info (siblings: size, blobId, lfs; ?blobs=true)
  HEAD/GET /{repo}/resolve/{rev}/{filename}  small files inline; LFS files 302 to /cdn/{sha256}
  GET  /cdn/{sha256}                         the bytes, with Range support (206)
Headers follow what huggingface_hub's file_download.py reads: ETag, X-Repo-Commit, X-Linked-Etag,
X-Linked-Size, Content-Length, Location, X-Error-Code. Knobs: drop a connection midway once, answer
401/404, require a token, throttle, and a log of every request to count GETs per file.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_LFS_SUFFIXES = (".safetensors", ".bin")
_SEND_CHUNK = 64 * 1024
_STALL_LIMIT_S = 120  # a stall outlives any test's deadline; HubServer's exit ends it at once


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    sha: str = "0123456789abcdef0123456789abcdef01234567"
    # (name, kind) -> (the bytes hashed, digest): the server hashes files on every request, and
    # a real tiny checkpoint's shard is ~200 MB; a test that swaps a file's bytes gets a new hash.
    _hashes: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict, repr=False)

    def _hash(self, name: str, kind: str) -> str:
        data = self.files[name]
        hit = self._hashes.get((name, kind))
        if hit is None or hit[0] is not data:
            digest = hashlib.sha256(data).hexdigest() if kind == "sha256" else git_blob_id(data)
            hit = self._hashes[(name, kind)] = (data, digest)
        return hit[1]

    def is_lfs(self, name: str) -> bool:
        return name.endswith(_LFS_SUFFIXES)

    def etag(self, name: str) -> str:
        return self._hash(name, "sha256" if self.is_lfs(name) else "git")

    def sibling(self, name: str) -> dict:
        data = self.files[name]
        s = {"rfilename": name, "size": len(data), "blobId": self._hash(name, "git")}
        if self.is_lfs(name):
            s["lfs"] = {"size": len(data), "sha256": self.etag(name), "pointerSize": 134}
        return s


@dataclass
class Request:
    method: str
    kind: str  # "api", "resolve" or "cdn"
    filename: str | None
    range: str | None
    status: int


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    status: int | None = None  # answer every request with this error status (401, 403, 404, 500)
    gated: bool = False  # the 401/403 carries X-Error-Code: GatedRepo
    token: str | None = None  # when set, requests without "Bearer <token>" get 401 GatedRepo
    drop_once: dict[str, int] = field(
        default_factory=dict
    )  # filename -> bytes sent before hanging up
    chunk_delay_s: float = 0.0  # sleep between 64 KiB chunks of file bodies
    # filename -> offset where the body stalls, once: the connection stays open and silent until
    # `release` is set (or the server stops); `stalled` is set when the server got there.
    stall_at: dict[str, int] = field(default_factory=dict)
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    ignore_range: bool = (
        False  # answer Range requests with the whole file (200), as some proxies do
    )
    url: str = ""

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def data_gets(self, filename: str) -> list[Request]:
        """GET requests that returned (part of) this file's bytes."""
        return [
            r
            for r in self.log
            if r.method == "GET" and r.filename == filename and r.status in (200, 206)
        ]

    def file_for_sha(self, sha256: str) -> tuple[FakeRepo, str] | None:
        for repo in self.repos.values():
            for name in repo.files:
                if repo.is_lfs(name) and repo.etag(name) == sha256:
                    return repo, name
        return None


def _make_handler(hub: FakeHub, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = (
            "HTTP/1.1"  # keep-alive, like the real Hub; every answer has a Content-Length
        )

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_HEAD(self) -> None:
            self._route(body=False)

        def do_GET(self) -> None:
            self._route(body=True)

        # --- routing -------------------------------------------------------------------------
        def _route(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            if path.startswith("/api/models/"):
                self._api(path[len("/api/models/") :])
            elif path.startswith("/cdn/"):
                found = hub.file_for_sha(path[len("/cdn/") :])
                if found is None:
                    self._error(404, "EntryNotFound", "cdn", None)
                else:
                    self._send_file(found[0], found[1], body, "cdn")
            elif "/resolve/" in path:
                repo_id, _, rest = path.lstrip("/").partition("/resolve/")
                _rev, _, filename = rest.partition("/")
                self._resolve(repo_id, filename, body)
            else:
                self._error(404, None, "other", None)

        def _denied(self, kind: str, filename: str | None) -> bool:
            if hub.status is not None:
                code = (
                    "GatedRepo"
                    if hub.gated
                    else ("RepoNotFound" if hub.status in (401, 404) else None)
                )
                self._error(hub.status, code, kind, filename)
                return True
            if hub.token is not None and self.headers.get("authorization") != f"Bearer {hub.token}":
                self._error(401, "GatedRepo", kind, filename)
                return True
            return False

        def _api(self, rest: str) -> None:
            repo_id, _, _rev = rest.partition("/revision/")
            if self._denied("api", None):
                return
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "api", None)
                return
            info = {
                "id": repo_id,
                "modelId": repo_id,
                "sha": repo.sha,
                "private": False,
                "gated": "auto" if hub.token else False,
                "siblings": [repo.sibling(n) for n in sorted(repo.files)],
            }
            payload = json.dumps(info).encode()
            self._log("api", None, 200)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _resolve(self, repo_id: str, filename: str, body: bool) -> None:
            if self._denied("resolve", filename):
                return
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "resolve", filename)
                return
            if filename not in repo.files:
                self._error(404, "EntryNotFound", "resolve", filename)
                return
            if repo.is_lfs(filename):
                # The Hub redirects LFS files to its CDN, telling the real size and hash.
                data = repo.files[filename]
                self._log("resolve", filename, 302)
                self.send_response(302)
                self.send_header("Location", f"{hub.url}/cdn/{repo.etag(filename)}")
                self.send_header("X-Repo-Commit", repo.sha)
                self.send_header("X-Linked-Etag", f'"{repo.etag(filename)}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("ETag", f'"{git_blob_id(data)}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send_file(repo, filename, body, "resolve")

        # --- responses ------------------------------------------------------------------------
        def _send_file(self, repo: FakeRepo, filename: str, body: bool, kind: str) -> None:
            data = repo.files[filename]
            start, status = 0, 200
            requested = self.headers.get("Range")
            if (
                requested
                and not hub.ignore_range
                and requested.startswith("bytes=")
                and requested.endswith("-")
            ):
                start = int(requested[len("bytes=") : -1])
                status = 206
                if start >= len(data):
                    self._error(416, None, kind, filename)
                    return
            if body:
                self._log(kind, filename, status, method="GET")
            else:
                self._log(kind, filename, status, method="HEAD")
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{repo.etag(filename)}"')
            self.send_header("X-Repo-Commit", repo.sha)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not body:
                return
            with lock:
                drop_at = hub.drop_once.pop(filename, None)
                stall_at = hub.stall_at.pop(filename, None)
            pos = start
            while pos < len(data):
                end = min(pos + _SEND_CHUNK, len(data))
                if drop_at is not None and end > drop_at:
                    self.wfile.write(data[pos:drop_at])
                    self.wfile.flush()
                    self.close_connection = True  # hang up mid-body: the client sees a short read
                    return
                if stall_at is not None and end > stall_at:
                    self.wfile.write(data[pos:stall_at])
                    self.wfile.flush()
                    hub.stalled.set()
                    hub.release.wait(_STALL_LIMIT_S)  # a stalled network: nothing arrives
                    self.close_connection = True
                    return
                try:
                    self.wfile.write(data[pos:end])
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (cancel)
                    return
                pos = end
                if hub.chunk_delay_s:
                    time.sleep(hub.chunk_delay_s)

        def _error(self, status: int, code: str | None, kind: str, filename: str | None) -> None:
            payload = json.dumps({"error": f"fake hub error {status}"}).encode()
            self._log(kind, filename, status)
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _log(
            self, kind: str, filename: str | None, status: int, method: str | None = None
        ) -> None:
            with lock:
                hub.log.append(
                    Request(
                        method or self.command, kind, filename, self.headers.get("Range"), status
                    )
                )

    return Handler


class HubServer:
    """Run a FakeHub on 127.0.0.1 in a background thread: `with HubServer() as hub: ...`."""

    def __init__(self, hub: FakeHub | None = None):
        self.hub = hub or FakeHub()
        self._httpd = ThreadingHTTPServer(
            ("127.0.0.1", 0), _make_handler(self.hub, threading.Lock())
        )
        self._httpd.daemon_threads = True
        self.hub.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-hub",
            daemon=True,
        )

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self.hub

    def __exit__(self, *exc) -> None:
        self.hub.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def isolate_huggingface_hub(monkeypatch) -> None:
    """Telemetry and xet off, and no real token from the developer's machine."""
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", "/nonexistent/hf-token")
    monkeypatch.setattr("huggingface_hub.constants.HF_STORED_TOKENS_PATH", "/nonexistent/hf-tokens")


def point_huggingface_hub_at(url: str, monkeypatch) -> None:
    # huggingface_hub reads HF_ENDPOINT once, at import, into these two constants: patch all three.
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", url)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr("huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE", template)
