"""The settings dialog's "Model runs on" group: this computer's model folder, or a server.

Passive: the model list comes from a lister handed in (app.bridge.backend_control.ModelLister:
fetch(url, key) -> number, signals listed(number, rows) / failed(number, message),
server_of(url), this_machine()). The sentence at the bottom says plainly which machine runs
the model and what leaves this one.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QWidget,
)

from app.views.restyle import set_style_property
from app.views.settings_section import SettingsSection

SERVER_KINDS = "vLLM, Ollama, LM Studio, mlx_lm.server or another Nemo Chat"


def context_text(max_context: int | None) -> str:
    return f"{max_context // 1024}K context" if max_context else "context not reported"


class BackendSettings(SettingsSection):
    """Edits backend / server_* of ChatSettings; `values()` gives them back as keywords."""

    remoteChanged = Signal(str)  # "" when the model runs here, else "the server at …"
    contextLimitChanged = Signal(int)  # the chosen server model's context (0: not reported)

    def __init__(
        self,
        settings: Any,
        lister: Any,
        last_error: str | None = None,
        context_limit: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Model runs on", parent)
        self.setObjectName("backendSettings")
        self._lister = lister
        self._fetch = 0  # the number of the fetch whose answer is awaited
        machine = lister.this_machine()
        self.local_radio = QRadioButton(f"{machine[:1].upper()}{machine[1:]} (the model folder)")
        self.server_radio = QRadioButton("A server on the network")
        self.server_radio.setToolTip(f"An OpenAI-compatible server: {SERVER_KINDS}.")
        group = QButtonGroup(self)
        group.addButton(self.local_radio)
        group.addButton(self.server_radio)
        self.url_edit = QLineEdit(settings.server_url)
        self.url_edit.setObjectName("serverUrl")
        self.url_edit.setPlaceholderText("http://mac-studio.local:11435")
        self.key_edit = QLineEdit(settings.server_key)
        self.key_edit.setObjectName("serverKey")
        self.key_edit.setPlaceholderText("Optional")
        self.key_edit.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("serverModel")
        self.model_combo.setEditable(True)  # a model the list does not show can be typed
        line = self.model_combo.lineEdit()  # an editable combo always has one
        if line is not None:
            line.setPlaceholderText("The server's first Nemo model")
        if settings.server_model:
            self.model_combo.addItem(settings.server_model, context_limit)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("refreshModels")
        self.refresh_button.setToolTip("Ask the server for its models (/v1/models)")
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.refresh_button)
        self.list_status = QLabel(last_error or "")
        self.list_status.setObjectName("memoryEstimate")  # the dialog's quiet note style
        self.list_status.setWordWrap(True)
        self._set_error(self.list_status, bool(last_error))
        self.privacy = QLabel()
        self.privacy.setObjectName("modelLocation")
        self.privacy.setWordWrap(True)

        form = QFormLayout(self)
        form.addRow(self.local_radio)
        form.addRow(self.server_radio)
        form.addRow("Server address:", self.url_edit)
        form.addRow("API key:", self.key_edit)
        form.addRow("Model:", model_row)
        form.addRow("", self.list_status)
        form.addRow(self.privacy)
        self._server_fields = (self.url_edit, self.key_edit, self.model_combo, self.refresh_button)

        (self.server_radio if settings.backend == "server" else self.local_radio).setChecked(True)
        group.buttonToggled.connect(lambda _b, _on: self._update())
        self.url_edit.textChanged.connect(lambda _t: self._update())
        self.refresh_button.clicked.connect(self.refresh)
        self.model_combo.currentIndexChanged.connect(lambda _i: self._emit_limit())
        lister.listed.connect(self._on_listed)
        lister.failed.connect(self._on_failed)
        self._update()
        if self.remote and self.url_edit.text().strip() and not last_error:
            self.refresh()  # the list of a server already chosen, without asking

    # --- the dialog's view of it ---

    @property
    def remote(self) -> bool:
        return self.server_radio.isChecked()

    def location(self) -> str:
        """Where the model runs with these values ("this Mac", "the server at …")."""
        if self.remote and self.url_edit.text().strip():
            return f"the server at {self._lister.server_of(self.url_edit.text())}"
        return self._lister.this_machine()

    def context_limit(self) -> int | None:
        return self.model_combo.currentData() if self.remote else None

    def values(self) -> dict[str, Any]:
        """Keyword arguments for ChatSettings."""
        return {
            "backend": "server" if self.remote else "local",
            "server_url": self.url_edit.text().strip(),
            "server_key": self.key_edit.text().strip(),
            "server_model": self.model_combo.currentText().strip(),
        }

    def attach(self, dialog: Any) -> None:
        """Wire to the settings dialog: its model folder, memory estimate and num_ctx bound."""
        self.remoteChanged.connect(lambda where: dialog.set_remote(where or None))
        self.contextLimitChanged.connect(lambda n: dialog.set_context_limit(n or None))
        dialog.set_remote(self.location() if self.remote else None)
        dialog.set_context_limit(self.context_limit())
        page = getattr(dialog, "models_page", None)  # "Use This Model": a folder, so this Mac
        if page is not None:
            page.useRequested.connect(lambda _path: self.local_radio.setChecked(True))

    # --- the model list ---

    def refresh(self) -> None:
        self.list_status.setText(f"Asking {self._lister.server_of(self.url_edit.text())}…")
        self._set_error(self.list_status, False)
        self.refresh_button.setEnabled(False)
        self._fetch = self._lister.fetch(self.url_edit.text(), self.key_edit.text())

    def _on_listed(self, number: int, models: list) -> None:
        if number != self._fetch:
            return  # an older answer (the address changed since)
        self.refresh_button.setEnabled(self.remote)
        chosen = self.model_combo.currentText().strip()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for m in models:
            self.model_combo.addItem(m.id, m.max_context)
            self.model_combo.setItemData(
                self.model_combo.count() - 1,
                context_text(m.max_context),
                Qt.ItemDataRole.ToolTipRole,
            )
        index = self.model_combo.findText(chosen) if chosen else -1
        if chosen and index < 0:
            self.model_combo.setEditText(chosen)
        else:
            self.model_combo.setCurrentIndex(max(index, self._default_index(models)))
        self.model_combo.blockSignals(False)
        names = "model" if len(models) == 1 else "models"
        self.list_status.setText(
            f"{len(models)} {names} on {self._lister.server_of(self.url_edit.text())}."
            if models
            else "The server lists no models; it will answer with its default one."
        )
        self._emit_limit()

    @staticmethod
    def _default_index(models: list) -> int:
        # The remote backend picks the first Nemo, else the first model: show the same.
        return next((i for i, m in enumerate(models) if "nemo" in m.id.lower()), 0)

    def _on_failed(self, number: int, message: str) -> None:
        if number != self._fetch:
            return
        self.refresh_button.setEnabled(self.remote)
        self.list_status.setText(message)
        self._set_error(self.list_status, True)

    # --- state ---

    def _update(self) -> None:
        for w in self._server_fields:
            w.setEnabled(self.remote)
        if self.remote:
            self.privacy.setText(
                f"Model runs on {self.location()}. Your messages and documents are sent to "
                "it; your chat history stays on this computer."
            )
        else:
            self.privacy.setText(f"Model runs on {self.location()}. Nothing leaves this computer.")
        self.remoteChanged.emit(self.location() if self.remote else "")
        self._emit_limit()

    def _emit_limit(self) -> None:
        self.contextLimitChanged.emit(self.context_limit() or 0)

    @staticmethod
    def _set_error(label: QLabel, error: bool) -> None:
        set_style_property(label, "fits", not error)  # the note style's red
