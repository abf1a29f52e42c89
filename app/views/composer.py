"""The message box: Enter sends, Shift+Enter is a new line, Esc (or the Stop button) stops."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QWidget,
)

from app.views.restyle import set_style_property

MAX_LINES = 10


class ComposerEdit(QPlainTextEdit):
    submitted = Signal()
    escapePressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            mods = event.modifiers()
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")  # Shift+Enter: a new line, not a send
            elif not mods & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
                self.submitted.emit()
            else:
                super().keyPressEvent(event)
            return
        if key == Qt.Key.Key_Escape:
            self.escapePressed.emit()
            return
        super().keyPressEvent(event)


class Composer(QFrame):
    """Emits sendRequested(text) and stopRequested(); the window decides what they do."""

    sendRequested = Signal(str)
    stopRequested = Signal()
    attachRequested = Signal()  # the + button: attach documents

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        self.edit = ComposerEdit()
        self.edit.setObjectName("composerEdit")
        self.edit.setPlaceholderText("Message Nemo (Shift+Enter for a new line)")
        self.edit.setFrameShape(QFrame.Shape.NoFrame)
        self.edit.setTabChangesFocus(True)
        self.edit.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.edit.submitted.connect(self.submit)
        self.edit.escapePressed.connect(self._escape)
        self.edit.document().contentsChanged.connect(self._grow)
        self.edit.textChanged.connect(self._update_button)
        self.button = QPushButton("Send")
        self.button.setObjectName("sendButton")
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.clicked.connect(self._button_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.setSpacing(8)
        self.attach_button = QToolButton()
        self.attach_button.setObjectName("attachButton")
        self.attach_button.setText("+")
        self.attach_button.setToolTip("Attach documents (or drop files on the window)")
        self.attach_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.attach_button.clicked.connect(self.attachRequested)
        layout.addWidget(self.attach_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignBottom)
        self._generating = False
        self._can_send = True
        self._grow()
        self._update_button()

    @property
    def generating(self) -> bool:
        return self._generating

    def text(self) -> str:
        return self.edit.toPlainText()

    def set_text(self, text: str) -> None:
        self.edit.setPlainText(text)

    def set_generating(self, generating: bool) -> None:
        """While an answer streams the button is Stop; Enter does not send a second message."""
        self._generating = generating
        self._update_button()

    def set_can_send(self, can_send: bool, reason: str = "") -> None:
        """Sending needs a loaded model; typing stays possible so nothing is lost."""
        self._can_send = can_send
        self.button.setToolTip(reason)
        self._update_button()

    def submit(self) -> None:
        text = self.text().strip()
        if not text or self._generating or not self._can_send:
            return
        self.edit.clear()
        self.sendRequested.emit(text)

    def _escape(self) -> None:
        if self._generating:
            self.stopRequested.emit()

    def _button_clicked(self) -> None:
        if self._generating:
            self.stopRequested.emit()
        else:
            self.submit()

    def _update_button(self) -> None:
        self.button.setText("Stop" if self._generating else "Send")
        set_style_property(self.button, "stop", self._generating)
        has_text = bool(self.edit.toPlainText().strip())
        self.button.setEnabled(self._generating or (self._can_send and has_text))

    def _grow(self) -> None:
        # One line when empty, up to MAX_LINES as the text grows, then it scrolls.
        wanted = int(self.edit.document().size().height())
        lines = max(1, min(MAX_LINES, wanted))
        policy = Qt.ScrollBarPolicy
        self.edit.setVerticalScrollBarPolicy(
            policy.ScrollBarAsNeeded if wanted > MAX_LINES else policy.ScrollBarAlwaysOff
        )
        line_height = self.edit.fontMetrics().lineSpacing()
        margins = self.edit.contentsMargins()
        doc_margin = int(self.edit.document().documentMargin()) * 2
        self.edit.setFixedHeight(
            lines * line_height + doc_margin + margins.top() + margins.bottom()
        )

    def focus(self) -> None:
        self.edit.setFocus()
