"""The right-hand page of the window: the conversation above, the composer below it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.views.attachment_chips import AttachmentChips
from app.views.chat_view import ChatView
from app.views.composer import Composer


class ChatPage(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatArea")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.chat_view = ChatView()
        self.composer = Composer()
        self.chips = AttachmentChips()  # attached documents, above the composer
        # The composer lines up with the message column above it.
        self.chat_view.columnWidthChanged.connect(self.composer.setFixedWidth)
        self.chat_view.columnWidthChanged.connect(self.chips.setFixedWidth)
        holder = QWidget()
        holder_layout = self._holder = QVBoxLayout(holder)
        holder_layout.setContentsMargins(24, 4, 24, 14)
        holder_layout.addWidget(self.chips)
        holder_layout.addWidget(self.composer)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.chat_view, 1)
        layout.addWidget(holder, 0, Qt.AlignmentFlag.AlignHCenter)

    def add_above_composer(self, strip: QWidget, offer: QWidget) -> None:
        """A long document's progress strip on top; the "ask across" offer under the chips."""
        self._holder.insertWidget(0, strip)
        index = self._holder.indexOf(self.chips) + 1
        self._holder.insertWidget(index, offer, 0, Qt.AlignmentFlag.AlignLeft)
