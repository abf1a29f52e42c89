"""The local API in the app (issue 13): engine.serve.ApiServer over the window's own service.

The server serves whatever model the controller's EngineService has loaded, on the same engine
thread (no second copy of the weights): the window and API clients take turns in its one queue.
Starting, restarting and stopping happen here on the GUI thread; the service's activity
listeners (called on whichever thread changed the queue) reach the GUI as a queued signal.
engine.serve is imported only when the API is first turned on.
"""

from __future__ import annotations

import errno
import logging
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal

if TYPE_CHECKING:
    from app.bridge.engine_controller import EngineController
    from app.settings import ChatSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiStatus:
    """What the status bar and the settings page show (plain data)."""

    url: str | None  # the base URL while serving ("http://127.0.0.1:11435/v1"), else None
    error: str | None  # why the last start failed, else None
    running: int = 0  # API requests on the engine thread now
    waiting: int = 0  # API requests queued behind it


def origins_of(text: str) -> tuple[str, ...]:
    """ "https://a.example, https://b.example" -> the Origins, in order, without duplicates."""
    return tuple(dict.fromkeys(o for o in re.split(r"[\s,]+", text.strip()) if o))


def api_config(settings: ChatSettings) -> Any:
    """engine.serve.ApiConfig from the app's settings (its generation defaults included)."""
    from engine.serve import ApiConfig

    return ApiConfig(
        host=settings.api_host or "127.0.0.1",
        port=settings.api_port,
        api_key=settings.api_key.strip() or None,
        allowed_origins=origins_of(settings.api_origins),
        num_ctx=settings.num_ctx,
        kv_bits=settings.kv_bits,
        default_max_tokens=settings.max_tokens,
    )


def start_error(host: str, port: int, error: BaseException) -> str:
    """One line for the settings page: the port taken, an unsafe address, ..."""
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return (
            f"Port {port} is already in use by another program (or another Nemo Chat): "
            "choose another port."
        )
    if isinstance(error, OSError) and error.errno == errno.EACCES:
        return f"Not allowed to listen on port {port}: choose a port above 1024."
    if isinstance(error, OSError) and error.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this computer."
    if isinstance(error, ValueError):  # ApiConfig.check(): a network address without a key
        text = str(error).replace(" (--api-key)", "")
        return text[:1].upper() + text[1:] + "."
    return f"The local API could not start: {error}"


def _restart_needed(old: Any, new: Any) -> bool:
    """Address, key and origins are read at start; the generation fields change live."""
    keep = ("num_ctx", "kv_bits", "default_max_tokens", "model_name")
    return replace(old, **{k: getattr(new, k) for k in keep}) != new


class ApiControl(QObject):
    """Turns the local API on and off as the settings say; reports its status."""

    statusChanged = Signal(object)  # ApiStatus
    _activity = Signal()  # from any thread; delivered queued on the GUI thread

    def __init__(self, controller: EngineController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.server: Any = None  # engine.serve.ApiServer while serving
        self.error: str | None = None
        self._activity.connect(self._on_activity, Qt.ConnectionType.QueuedConnection)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)

    @property
    def serving(self) -> bool:
        return self.server is not None and self.server.running

    def status(self) -> ApiStatus:
        if self.server is None:
            return ApiStatus(None, self.error)
        activity = self.server.activity()
        return ApiStatus(self.server.base_url, None, activity.running, activity.waiting)

    def apply(self, settings: ChatSettings) -> str | None:
        """Serve, restart or stop as `settings` say; the error message (kept in .error)."""
        if not settings.api_enabled:
            self.error = None
            self.stop()
            self._emit()
            return None
        try:
            config = api_config(settings)
            if self.server is not None and not _restart_needed(self.server.config, config):
                self.server.config = config  # num_ctx, KV bits, answer cap: live
                return None
            self.stop()
            self.server = self._start(config)
        except (OSError, ValueError, RuntimeError) as e:
            self.error = start_error(settings.api_host, settings.api_port, e)
            log.warning("local API: %s", self.error)
        self._emit()
        return self.error

    def _start(self, config: Any) -> Any:
        from engine.serve import ApiServer

        server = ApiServer(self.controller.service, config).start()
        self.error = None
        self.controller.service.activity_listeners.append(self._on_engine_activity)
        return server

    def stop(self) -> None:
        """Stop serving: API jobs stop (queued ones never run), the port closes."""
        server, self.server = self.server, None
        listeners = self.controller.service.activity_listeners
        if self._on_engine_activity in listeners:
            listeners.remove(self._on_engine_activity)
        if server is not None:
            server.stop()

    # --- activity: any thread -> the GUI thread ---

    def _on_engine_activity(self, _activity: object) -> None:
        self._activity.emit()

    def _on_activity(self) -> None:
        if self.server is not None:
            self._emit()

    def _emit(self) -> None:
        self.statusChanged.emit(self.status())
