"""Shown when no model is loaded: what is needed, and a way to open a model folder."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

REQUIREMENTS = (
    "A Mac with Apple Silicon (M1 or newer)",
    "About 7 GB of free disk space for the 4-bit model",
    "16 GB of memory recommended",
)


class WelcomeView(QWidget):
    openModelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        title = QLabel("Nemo Chat")
        title.setObjectName("welcomeTitle")
        subtitle = QLabel("Chat with Mistral Nemo 12B, privately, on your Mac.")
        subtitle.setObjectName("welcomeSubtitle")
        needs = QLabel(
            "<p>To start, open a folder with the model "
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
        inner.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignCenter)
        inner.addWidget(self.status)
        inner.addSpacing(8)
        later.setAlignment(Qt.AlignmentFlag.AlignCenter)
        inner.addWidget(later)

        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(column, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)

    def set_status(self, text: str, error: bool = False) -> None:
        """Loading progress or why the last model folder failed (names the folder)."""
        self.status.setText(text)
        self.status.setProperty("error", error)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.status.setVisible(bool(text))

    def set_loading(self, loading: bool) -> None:
        self.open_button.setEnabled(not loading)
