"""The settings dialog's "Local API" group: serve the loaded model to other apps (issue 13).

Passive: applying is a function handed in (the window's app.bridge.api_control.ApiControl):
`apply(values) -> error or None`. The dialog calls commit() on OK; an error (the port taken, a
network address without a key) is shown here and the dialog stays open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.views.copy_feedback import flash_copied
from app.views.restyle import set_style_property
from app.views.settings_section import SettingsSection

LOOPBACK, ANY_ADDRESS = "127.0.0.1", "0.0.0.0"
ApplyFn = Callable[[dict], "str | None"]


def base_url(host: str, port: int) -> str:
    """What OpenAI clients are given (Ollama clients drop the /v1)."""
    return f"http://{LOOPBACK if host in (ANY_ADDRESS, '') else host}:{port}/v1"


class ApiSettings(SettingsSection):
    """Edits the api_* fields of ChatSettings; `values()` gives them back as keywords."""

    def __init__(
        self,
        settings: Any,
        apply: ApplyFn | None = None,
        status: Any = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Local API", parent)
        self.setObjectName("apiSettings")
        self._apply = apply
        self.enabled = QCheckBox("Serve the model to other apps (OpenAI and Ollama APIs)")
        self.enabled.setObjectName("apiEnabled")
        self.enabled.setChecked(settings.api_enabled)
        self.enabled.setToolTip(
            "Editor plugins, scripts and agents on this computer can then use the model "
            "the window has loaded; they take turns with the window."
        )
        self.port = QSpinBox()
        self.port.setObjectName("apiPort")
        self.port.setRange(1, 65535)
        self.port.setValue(settings.api_port)
        self.network = QCheckBox("Also reachable from other devices (needs an API key)")
        self.network.setChecked(settings.api_host not in (LOOPBACK, "localhost", "::1"))
        self.key = QLineEdit(settings.api_key)
        self.key.setObjectName("apiKey")
        self.key.setPlaceholderText("Optional on this computer only")
        self.key.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.origins = QLineEdit(settings.api_origins)
        self.origins.setObjectName("apiOrigins")
        self.origins.setPlaceholderText("None (e.g. https://app.example.com)")
        self.origins.setToolTip(
            "Web pages from these origins may call the API from a browser; others are refused."
        )
        self.url = QLabel()
        self.url.setObjectName("apiUrl")
        self.copy_button = QPushButton("Copy Base URL")
        self.copy_button.setObjectName("copyApiUrl")
        self.copy_button.clicked.connect(self.copy_url)
        url_row = QHBoxLayout()
        url_row.addWidget(self.url, 1)
        url_row.addWidget(self.copy_button)
        self.status = QLabel()
        self.status.setObjectName("memoryEstimate")  # the dialog's quiet note style
        self.status.setWordWrap(True)

        form = QFormLayout(self)
        form.addRow(self.enabled)
        form.addRow("Port:", self.port)
        form.addRow("", self.network)
        form.addRow("API key:", self.key)
        form.addRow("Browser origins:", self.origins)
        form.addRow("Base URL:", url_row)
        form.addRow("", self.status)

        for signal in (self.enabled.toggled, self.network.toggled, self.port.valueChanged):
            signal.connect(lambda *_: self._update())
        self._update()
        if status is not None:
            self.show_status(status)

    def host(self) -> str:
        return ANY_ADDRESS if self.network.isChecked() else LOOPBACK

    def base_url(self) -> str:
        return base_url(self.host(), self.port.value())

    def values(self) -> dict[str, Any]:
        """Keyword arguments for ChatSettings."""
        return {
            "api_enabled": self.enabled.isChecked(),
            "api_port": self.port.value(),
            "api_host": self.host(),
            "api_key": self.key.text().strip(),
            "api_origins": self.origins.text().strip(),
        }

    def commit(self) -> bool:
        """On OK: start, restart or stop the API now; False (and the error shown) if it failed."""
        if self._apply is None:
            return True
        error = self._apply(self.values())
        self.show_error(error)
        return error is None

    def show_status(self, status: Any) -> None:
        """app.bridge.api_control.ApiStatus: serving at …, or why it could not start."""
        if status.error:
            self.show_error(status.error)
        elif status.url:
            self._note(f"On: serving at {status.url}", error=False)

    def show_error(self, error: str | None) -> None:
        self._note(error or "", error=bool(error))

    def copy_url(self) -> None:
        QGuiApplication.clipboard().setText(self.base_url())
        flash_copied(self.copy_button)

    def _update(self) -> None:
        on = self.enabled.isChecked()
        for w in (self.port, self.network, self.key, self.origins):
            w.setEnabled(on)
        self.url.setText(self.base_url())
        if not on:
            self._note("Off: nothing listens on the network.", error=False)
        elif self.network.isChecked():
            self._note(
                "Other devices on your network can reach the model with the API key.",
                error=False,
            )
        else:
            self._note("Only apps on this computer can reach it.", error=False)

    def _note(self, text: str, error: bool) -> None:
        self.status.setText(text)
        set_style_property(self.status, "fits", not error)  # the note style's red
