"""ApiServer: uvicorn on its own thread, serving an EngineService in two dialects.

The server thread runs an asyncio loop that only parses HTTP and waits on job events; every
model call is a job on the engine thread (DESIGN rule 1), so the window and API clients take
turns in the service's one queue.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn

from engine.jobs import Job
from engine.serve.app import build_app
from engine.serve.bridge import ApiActivity
from engine.serve.config import ApiConfig
from engine.serve.state import ApiState
from engine.service import EngineService

log = logging.getLogger(__name__)


class ApiServer:
    """`ApiServer(service, ApiConfig(...)).start()` serves until `.stop()`.

    start() raises OSError when the port is taken and ValueError for unsafe settings (a public
    host without a key). `config` may be replaced while serving for the generation fields
    (num_ctx, kv_bits, default_max_tokens, model_name); address, key and origins need a restart.
    """

    def __init__(self, service: EngineService, config: ApiConfig = ApiConfig()):
        config.check()
        self.service = service
        self._config = config
        self._app = build_app(service, config)
        self._state: ApiState = self._app.state.api
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def config(self) -> ApiConfig:
        return self._config

    @config.setter
    def config(self, config: ApiConfig) -> None:
        config.check()
        self._config = self._state.config = config

    # --- lifecycle (any thread but the server's) ---

    def start(self, timeout: float = 30.0) -> ApiServer:
        if self._thread is not None:
            raise RuntimeError("the API server is already running")
        self._socket = _bind(self._config.host, self._config.port)
        uv_config = uvicorn.Config(
            self._app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=5,
            access_log=False,
        )
        self._server = uvicorn.Server(uv_config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)
        log.info("local API at %s", self.base_url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every API job (queued ones never run), close connections, end the thread."""
        self._state.jobs.stop_all()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                assert self._server is not None
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- what the app shows ---

    @property
    def port(self) -> int:
        if self._socket is None:
            return self._config.port
        return self._socket.getsockname()[1]

    @property
    def base_url(self) -> str:
        """For OpenAI clients: "http://127.0.0.1:11435/v1" (Ollama clients drop the /v1)."""
        host = self._config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def model_name(self) -> str:
        return self._state.model_name

    def activity(self) -> ApiActivity:
        """API requests running on the engine thread and waiting for it (status bar)."""
        return self._state.jobs.activity()

    def requests_active(self) -> int:
        a = self.activity()
        return a.running + a.waiting

    def recent_jobs(self) -> list[Job]:
        """The latest API jobs, oldest first (tests, diagnostics)."""
        return list(self._state.jobs.recent)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock
