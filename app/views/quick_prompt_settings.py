"""The settings dialog's "Quick Prompt" group: answer cap, history, menu bar start, hotkey."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QKeySequenceEdit,
    QLabel,
    QSpinBox,
    QSystemTrayIcon,
    QWidget,
)

from app.hotkey import UNAVAILABLE_NOTE, system_hotkey_supported
from app.settings import ChatSettings

NO_TRAY_NOTE = "No menu bar icon is available on this desktop: closing the window quits."


class QuickPromptSettings(QGroupBox):
    """Edits the quick_* fields of ChatSettings; `values()` gives them back as keywords."""

    def __init__(self, settings: ChatSettings, parent: QWidget | None = None) -> None:
        super().__init__("Quick Prompt", parent)
        self.setObjectName("quickPromptSettings")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(16, 32768)
        self.max_tokens.setSingleStep(128)
        self.max_tokens.setSuffix(" tokens")
        self.max_tokens.setValue(settings.quick_max_tokens)
        self.history = QCheckBox("Keep quick prompts in the chat history")
        self.history.setToolTip('Each one is stored as a chat titled "Quick: …".')
        self.history.setChecked(settings.quick_history)
        self.start_in_menu_bar = QCheckBox("Start in the menu bar")
        self.start_in_menu_bar.setChecked(settings.start_in_menu_bar)
        self.hotkey = QKeySequenceEdit(QKeySequence.fromString(settings.quick_hotkey))
        self.hotkey.setMaximumSequenceLength(1)
        self.hotkey.setClearButtonEnabled(True)
        self.hotkey_note = QLabel()
        self.hotkey_note.setObjectName("memoryEstimate")  # the dialog's quiet note style
        self.hotkey_note.setWordWrap(True)

        form = QFormLayout(self)
        form.addRow("Longest answer:", self.max_tokens)
        form.addRow("", self.history)
        form.addRow("", self.start_in_menu_bar)
        form.addRow("System-wide shortcut:", self.hotkey)
        form.addRow("", self.hotkey_note)
        notes = []
        if not system_hotkey_supported():
            self.hotkey.setEnabled(False)
            notes.append(UNAVAILABLE_NOTE + ".")
        if not QSystemTrayIcon.isSystemTrayAvailable():
            self.start_in_menu_bar.setEnabled(False)
            notes.append(NO_TRAY_NOTE)
        self.hotkey_note.setText("\n".join(notes))
        self.hotkey_note.setVisible(bool(notes))

    def values(self) -> dict:
        """Keyword arguments for ChatSettings."""
        sequence = self.hotkey.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
        return {
            "quick_max_tokens": self.max_tokens.value(),
            "quick_history": self.history.isChecked(),
            "start_in_menu_bar": self.start_in_menu_bar.isChecked(),
            "quick_hotkey": sequence,
        }
