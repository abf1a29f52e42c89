"""Shown when no model is loaded: what is needed, and a way to open a model folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.views.restyle import set_style_property

if TYPE_CHECKING:
    from app.views.download_panel import DownloadPanel

REQUIREMENTS = (
    "A Mac with Apple Silicon (M1 or newer)",
    "About 7 GB of free disk space for the 4-bit model",
    "16 GB of memory recommended",
)


class WelcomeView(QWidget):
    openModelRequested = Signal()
    settingsRequested = Signal()  # "Server Settings…" when the model runs on a server

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        title = QLabel("Nemo Chat")
        title.setObjectName("welcomeTitle")
        subtitle = QLabel("Chat with Mistral Nemo 12B, privately, on your Mac.")
        subtitle.setObjectName("welcomeSubtitle")
        needs = QLabel(
            "<p>To start, download the model or open a folder with it "
            "(Mistral-Nemo-Instruct-2407, MLX 4-bit or original weights). You will need:</p>"
            "<ul>" + "".join(f"<li>{r}</li>" for r in REQUIREMENTS) + "</ul>"
            "<p>Nothing leaves this computer. Your past chats stay readable in the sidebar.</p>"
        )
        needs.setObjectName("welcomeText")
        needs.setWordWrap(True)
        needs.setTextFormat(Qt.TextFormat.RichText)
        self.open_button = QPushButton("Open Model Folder…")
        self.open_button.setObjectName("openModelButton")
        self.open_button.setDefault(True)
        self.open_button.clicked.connect(self.openModelRequested)
        self.status = QLabel()
        self.status.setObjectName("welcomeStatus")
        self.status.setWordWrap(True)
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status.setVisible(False)
        later = QLabel("Downloading the model from inside the app is coming in a later version.")
        later.setObjectName("welcomeFootnote")
        later.setWordWrap(True)
        self._footnote = later
        self.download_panel: DownloadPanel | None = None
        self._needs, self._subtitle = needs, subtitle
        self.remote_note = QLabel()  # set_remote: no download is needed for a server
        self.remote_note.setObjectName("welcomeText")
        self.remote_note.setWordWrap(True)
        self.remote_note.setVisible(False)
        self.settings_button = QPushButton("Server Settings…")
        self.settings_button.setObjectName("serverSettingsButton")
        self.settings_button.clicked.connect(self.settingsRequested)
        self.settings_button.setVisible(False)

        column = QWidget()
        column.setFixedWidth(460)  # wrapped rich text needs a definite width to size itself
        inner = QVBoxLayout(column)
        inner.setSpacing(10)
        for w in (title, subtitle):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            inner.addWidget(w)
        inner.addSpacing(12)
        inner.addWidget(needs)
        inner.addSpacing(8)
        self._panel_slot = QVBoxLayout()  # the download panel goes here (set_download_panel)
        inner.addLayout(self._panel_slot)
        inner.addWidget(self.remote_note)
        inner.addWidget(self.settings_button, 0, Qt.AlignmentFlag.AlignCenter)
        inner.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignCenter)
        inner.addWidget(self.status)
        inner.addSpacing(8)
        later.setAlignment(Qt.AlignmentFlag.AlignCenter)
        inner.addWidget(later)

        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()  # centred by stretches: an alignment flag would size the column
        row.addStretch(1)  # for the full width, clipping its wrapped text
        row.addWidget(column)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)

    def set_status(self, text: str, error: bool = False) -> None:
        """Loading progress or why the last model folder failed (names the folder)."""
        self.status.setText(text)
        set_style_property(self.status, "error", error)
        self.status.setVisible(bool(text))

    def set_loading(self, loading: bool) -> None:
        self.open_button.setEnabled(not loading)
        if self.download_panel is not None:
            self.download_panel.set_loading(loading)

    def set_download_panel(self, panel: DownloadPanel) -> None:
        """app.views.download_panel: Download/Resume and "Use a folder I already have"."""
        self.download_panel = panel
        self._panel_slot.addWidget(panel)
        panel.openModelRequested.connect(self.openModelRequested)
        self.open_button.setVisible(False)  # the panel has its own, next to Download
        self._footnote.setVisible(False)

    def set_remote(self, location: str | None) -> None:
        """The model runs on a server (`location`, "the server at …"): nothing to download;
        None brings back the model folder and the download."""
        remote = location is not None
        self.remote_note.setText(
            f"<p>The model runs on {location}. Your messages and documents are sent to it; "
            "your chats stay on this computer.</p>"
            "<p>Change the server, or go back to a model on this computer, in Settings.</p>"
            if remote
            else ""
        )
        self.remote_note.setVisible(remote)
        self.settings_button.setVisible(remote)
        self._needs.setVisible(not remote)
        self._subtitle.setText(
            "Chat with Mistral Nemo on your own server." if remote
            else "Chat with Mistral Nemo 12B, privately, on your Mac."
        )  # fmt: skip
        if self.download_panel is not None:
            self.download_panel.setVisible(not remote)
            self.open_button.setVisible(False)
        else:
            self.open_button.setVisible(not remote)
            self._footnote.setVisible(not remote)
