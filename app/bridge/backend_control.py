"""Where the model runs (issue 14): this computer's MLX model folder, or an existing server.

Switching to a server is one engine job, `service.use(lambda: RemoteBackend.connect(config))`,
handed out by the controller like a model load (its state, modelLoaded / modelFailed). The
Settings page's model list comes from the server's /v1/models on a helper thread (it may block
for the connect timeout), never the GUI thread and never the engine thread. engine.remote is
imported only when a server is used: a server-only app never needs MLX's model code.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from app.bridge.engine_controller import EngineController
    from app.bridge.qt_job import QtJob
    from app.settings import ChatSettings

LIST_TIMEOUT_S = 10.0  # the model picker waits this long for a server to answer


def this_machine() -> str:
    # engine.local_backend.this_machine() says the same; importing it would load MLX.
    return "this Mac" if platform.system() == "Darwin" else "this computer"


def server_of(url: str) -> str:
    """scheme://host:port of a base URL, without path or credentials (engine.remote's naming)."""
    root = url.strip()
    if not root:
        return ""
    if "://" not in root:
        root = "http://" + root
    try:
        parts = urlsplit(root)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return root
    host = parts.hostname or "?"
    return f"{parts.scheme}://{'[' + host + ']' if ':' in host else host}{port}"


def location_of(settings: ChatSettings) -> str:
    """Where the chosen model runs, as the privacy notes say it."""
    if settings.backend == "server" and settings.server_url.strip():
        return f"the server at {server_of(settings.server_url)}"
    return this_machine()


def runs_on(location: str) -> str:
    """The status bar's and the Settings page's plain sentence."""
    return f"Model runs on {location}"


def remote_config(settings: ChatSettings) -> Any:
    from engine.remote import RemoteConfig

    return RemoteConfig(
        settings.server_url.strip(),
        api_key=settings.server_key.strip() or None,
        model=settings.server_model.strip() or None,
    )


def server_changed(old: ChatSettings, new: ChatSettings) -> bool:
    fields = ("backend", "server_url", "server_key", "server_model")
    return any(getattr(old, f) != getattr(new, f) for f in fields)


@dataclass(frozen=True)
class ServerModel:
    """One row of the model picker (plain data for the view)."""

    id: str
    max_context: int | None


class ModelLister(QObject):
    """Fetches a server's /v1/models on a helper thread; answers come back as queued signals.
    Each fetch gets a number; the view keeps only the answer to its latest one."""

    listed = Signal(int, object)  # fetch number, list[ServerModel]
    failed = Signal(int, str)  # fetch number, the one-line message naming the server

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._count = 0

    def fetch(self, url: str, api_key: str = "") -> int:
        self._count += 1
        number = self._count
        if not url.strip():
            self.failed.emit(number, "Enter the server's address first.")
            return number
        thread = threading.Thread(
            target=self._run, args=(number, url.strip(), api_key.strip() or None),
            name="list-models", daemon=True,
        )  # fmt: skip
        thread.start()
        return number

    def _run(self, number: int, url: str, api_key: str | None) -> None:
        # Signals emitted here reach the view queued, on the GUI thread.
        try:
            from engine.remote import RemoteConfig, RemoteError, list_models

            try:
                models = list_models(RemoteConfig(url, api_key, timeout=LIST_TIMEOUT_S))
            except RemoteError as e:
                self.failed.emit(number, str(e))
                return
            self.listed.emit(number, [ServerModel(m.id, m.max_context) for m in models])
        except Exception as e:  # noqa: BLE001 - a bad URL must never take the app down
            self.failed.emit(number, f"Can't list the models of {server_of(url)}: {e}")

    @staticmethod
    def server_of(url: str) -> str:
        return server_of(url)

    @staticmethod
    def this_machine() -> str:
        return this_machine()


class BackendControl(QObject):
    """Applies the "Model runs on" choice through the controller."""

    def __init__(self, controller: EngineController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.lister = ModelLister(self)
        self.error: str | None = None  # the last connect's failure, for the Settings page
        self.job: QtJob | None = None

    def connect_server(self, settings: ChatSettings) -> QtJob:
        """Use the server the settings name (answers in flight stop first, as for a load)."""
        from engine.remote import RemoteBackend

        config = remote_config(settings)
        self.error = None
        job = self.job = self.controller.use_backend(lambda: RemoteBackend.connect(config))
        job.failed.connect(self._on_failed)
        return job

    def apply(
        self, old: ChatSettings, new: ChatSettings, load_local: Callable[[str], object]
    ) -> None:
        """After Settings → OK: switch machines, or reconnect when the server changed."""
        if new.backend == "server":
            if server_changed(old, new) or self.controller.model_info is None:
                self.connect_server(new)
        elif old.backend == "server" or new.model_dir != old.model_dir:
            if new.model_dir:
                load_local(new.model_dir)
            elif old.backend == "server":
                self.controller.unload_model()  # back to this computer, no folder yet

    def _on_failed(self, message: str) -> None:
        self.error = message
