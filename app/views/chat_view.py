"""The conversation: a scrolling column of MessageWidgets, with throttled streaming updates."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from app.views.message import MessageWidget

COLUMN_WIDTH = 780  # a readable line length, centred like a Mac chat app
MIN_RENDER_INTERVAL_MS = 100  # at most ~10 Markdown renders a second while streaming
MAX_RENDER_INTERVAL_MS = 1000


class ChatView(QScrollArea):
    """Shows one conversation. Appending a chunk re-renders only the streaming message."""

    editSubmitted = Signal(int, str)
    regenerateRequested = Signal(int)
    columnWidthChanged = Signal(int)  # the composer below follows the message column

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conversation_id: int | None = None
        self._widgets: list[MessageWidget] = []
        self._streaming: MessageWidget | None = None
        self._pending_text: str | None = None
        self._busy = False
        self._stick_to_bottom = True

        page = QWidget()
        page.setObjectName("chatPage")
        page.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        outer = QVBoxLayout(page)
        outer.setContentsMargins(24, 16, 24, 16)
        self.column = QWidget()
        self.column.setObjectName("chatColumn")
        self.column.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.column.setMaximumWidth(COLUMN_WIDTH)
        self._layout = QVBoxLayout(self.column)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(8)
        self.empty_label = QLabel("Ask Nemo anything.")
        self.empty_label.setObjectName("emptyChat")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._layout.addWidget(self.empty_label)
        self._layout.addStretch(1)
        outer.addWidget(self.column, 1, Qt.AlignmentFlag.AlignHCenter)
        self.setWidget(page)

        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(self._render_pending)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._remember_position)
        bar.rangeChanged.connect(self._follow_bottom)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        # The column takes the available width up to COLUMN_WIDTH (AlignHCenter would shrink it).
        width = min(COLUMN_WIDTH, max(200, self.viewport().width() - 48))
        self.column.setFixedWidth(width)
        self.columnWidthChanged.emit(width)

    # -- whole conversation

    def show_conversation(
        self, conversation_id: int | None, messages: list, streaming_id: int | None = None
    ) -> None:
        """Replaces the view; `streaming_id` marks the answer still being written, if any."""
        self._render_timer.stop()
        self._pending_text = None
        self._streaming = None
        for w in self._widgets:
            self._layout.removeWidget(w)
            w.deleteLater()
        self._widgets = []
        self.conversation_id = conversation_id
        for m in messages:
            w = self._append(m.id, m.role, m.content, m.status, m.stats, m.error, m.attachments)
            if m.id == streaming_id:
                self._streaming = w
        self._update_actions()
        self._stick_to_bottom = True
        self.scroll_to_bottom()

    def add_message(self, message) -> MessageWidget:
        w = self._append(
            message.id, message.role, message.content, message.status, message.stats,
            message.error, message.attachments,
        )  # fmt: skip
        if message.status == "streaming":
            self._streaming = w
        self._update_actions()
        self._stick_to_bottom = True
        return w

    def remove_messages_from(self, message_id: int) -> None:
        """Drops the widget for `message_id` and everything after it (edit, regenerate)."""
        index = next((i for i, w in enumerate(self._widgets) if w.message_id == message_id), None)
        if index is None:
            return
        for w in self._widgets[index:]:
            self._layout.removeWidget(w)
            w.deleteLater()
            if w is self._streaming:
                self._streaming = None
        del self._widgets[index:]
        self._update_actions()

    def widgets(self) -> list[MessageWidget]:
        return list(self._widgets)

    def message_widget(self, message_id: int) -> MessageWidget | None:
        return next((w for w in self._widgets if w.message_id == message_id), None)

    def _append(self, mid, role, content, status, stats, error, attachments=()) -> MessageWidget:
        w = MessageWidget(mid, role, content, status, stats, error, attachments)
        w.editSubmitted.connect(self.editSubmitted)
        w.regenerateRequested.connect(self.regenerateRequested)
        self._layout.insertWidget(self._layout.count() - 1, w)
        self._widgets.append(w)
        self.empty_label.setVisible(False)
        return w

    # -- streaming

    @property
    def streaming_id(self) -> int | None:
        return self._streaming.message_id if self._streaming is not None else None

    def stream_text(self, message_id: int, text: str) -> None:
        """The answer so far; rendered at most every MIN_RENDER_INTERVAL_MS (more for long ones)."""
        if self._streaming is None or self._streaming.message_id != message_id:
            return
        self._pending_text = text
        if not self._render_timer.isActive():
            cost_ms = self._streaming.last_render_s * 1000
            interval = min(MAX_RENDER_INTERVAL_MS, max(MIN_RENDER_INTERVAL_MS, int(cost_ms * 4)))
            self._render_timer.start(interval)

    def set_streaming_note(self, text: str) -> None:
        if self._streaming is not None:
            self._streaming.set_note(text)

    def _render_pending(self) -> None:
        if self._streaming is not None and self._pending_text is not None:
            self._streaming.set_note("")
            self._streaming.stream(self._pending_text)
        self._pending_text = None

    def finish_streaming(self, message) -> None:
        """Final render of a finished, stopped or failed answer, with its stats line."""
        self._render_timer.stop()
        self._pending_text = None
        w = self.message_widget(message.id)
        if w is not None:
            if w.content != message.content:
                w.stream(message.content)  # the tail that came after the last render
            w.set_status(message.status, message.stats, message.error)
        if self._streaming is w:
            self._streaming = None
        self._update_actions()

    # -- state

    def set_busy(self, busy: bool) -> None:
        """While any answer is being written, edit and regenerate are unavailable."""
        self._busy = busy
        self._update_actions()

    def _update_actions(self) -> None:
        last = self._widgets[-1] if self._widgets else None
        for w in self._widgets:
            w.set_actions_enabled(not self._busy)
            w.set_regenerate_visible(
                w is last and w.role == "assistant" and w.status != "streaming"
            )
        self.empty_label.setVisible(not self._widgets)

    def refresh_theme(self) -> None:
        for w in self._widgets:
            w.refresh_theme()

    # -- scrolling: follow the answer unless the reader scrolled up

    def scroll_to_message(self, message_id: int) -> None:
        w = self.message_widget(message_id)
        if w is not None:
            self._stick_to_bottom = False
            self.ensureWidgetVisible(w, 0, 40)

    def scroll_to_bottom(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _remember_position(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._stick_to_bottom = value >= bar.maximum() - 24

    def _follow_bottom(self, _min: int, maximum: int) -> None:
        if self._stick_to_bottom:
            self.verticalScrollBar().setValue(maximum)
