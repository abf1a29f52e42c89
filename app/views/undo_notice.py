"""A short-lived status notice with an Undo button ("Deleted “x”.  [Undo]")."""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

SHOW_MS = 12_000  # long enough to read and reach for the button; Ctrl/Cmd+Z works after too


class UndoNotice(QWidget):
    undoRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("undoNotice")
        self.label = QLabel()
        self.label.setObjectName("undoNoticeText")
        self.button = QPushButton("Undo")
        self.button.setObjectName("undoButton")
        self.button.clicked.connect(self._undo)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 8, 0)
        layout.setSpacing(6)
        layout.addWidget(self.label)
        layout.addWidget(self.button)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, text: str, shortcut_text: str = "") -> None:
        self.label.setText(text)
        self.button.setToolTip(
            f"Restore it from Recently Deleted ({shortcut_text})" if shortcut_text else "Undo"
        )
        self.show()
        self._timer.start(SHOW_MS)

    def _undo(self) -> None:
        self.hide()
        self.undoRequested.emit()
