"""A Copy button that says "Copied" for a moment, so the user sees the click did something."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QAbstractButton

COPIED_TEXT = "Copied"
COPIED_MS = 1500


def flash_copied(button: QAbstractButton, ms: int = COPIED_MS) -> None:
    """Shows "Copied" on `button`, then its own text again; a second click restarts the wait."""
    timer = button.findChild(QTimer, "copiedTimer")
    if timer is None:
        idle = button.text()
        timer = QTimer(button)  # a child: it dies with the button, never fires on a dead one
        timer.setObjectName("copiedTimer")
        timer.setSingleShot(True)
        timer.timeout.connect(lambda: button.setText(idle))
        # Wide enough for both words, so the row around the button does not shift.
        button.setText(COPIED_TEXT)
        wide = button.sizeHint().width()
        button.setText(idle)
        button.setMinimumWidth(max(wide, button.sizeHint().width()))
    button.setText(COPIED_TEXT)
    timer.start(ms)
