"""The conversation: a scrolling column of MessageWidgets, with throttled streaming updates.

It also shows where a search hit is (scrolled to, highlighted) and where the model stops
reading: a divider above the first message it still sees when earlier ones were left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QSyntaxHighlighter, QTextCharFormat, QTextDocument
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.views.message import MessageWidget

COLUMN_WIDTH = 780  # a readable line length, centred like a Mac chat app
MIN_RENDER_INTERVAL_MS = 100  # at most ~10 Markdown renders a second while streaming
MAX_RENDER_INTERVAL_MS = 1000
HIT_MARGIN = 40  # px above a search hit when it is scrolled to


def search_terms(query: str) -> list[str]:
    """The words of a search box query worth marking in a message (FTS syntax dropped)."""
    words = re.findall(r"\w[\w'-]*", query)
    return [w for w in words if len(w) > 1 and w.upper() not in ("AND", "OR", "NOT", "NEAR")]


class TermMarks(QSyntaxHighlighter):
    """Marks the search words in a message; it outlives re-renders (same QTextDocument)."""

    def __init__(self, document: QTextDocument, terms: list[str]) -> None:
        super().__init__(document)
        self._pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
        self._format = QTextCharFormat()
        self._format.setBackground(QColor(255, 214, 10, 150))  # a marker pen, light and dark
        self._format.setForeground(QColor(0, 0, 0))

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt override)
        for match in self._pattern.finditer(text):
            self.setFormat(match.start(), match.end() - match.start(), self._format)

    def marked(self) -> list[str]:
        """The words marked now (for tests and accessibility checks)."""
        out = []
        block = self.document().begin()
        while block.isValid():
            for r in block.layout().formats():
                out.append(block.text()[r.start : r.start + r.length])
            block = block.next()
        return out


class LeftOutDivider(QFrame):
    """A rule with a note: the messages above it are not in the model's context."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("leftOutDivider")
        self.label = QLabel()
        self.label.setObjectName("leftOutLabel")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setToolTip(
            "The chat is longer than the context length: the model does not see the messages "
            "above this line. Raise the context length in Settings to keep more."
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 6)
        layout.setSpacing(10)
        for i in range(2):
            rule = QFrame()
            rule.setObjectName("leftOutRule")
            rule.setFixedHeight(1)
            layout.addWidget(rule, 1)
            if i == 0:
                layout.addWidget(self.label, 0)

    def set_count(self, count: int) -> None:
        noun = "message" if count == 1 else "messages"
        self.label.setText(f"{count} earlier {noun} left out · the model reads from here")


class ChatView(QScrollArea):
    """Shows one conversation. Appending a chunk re-renders only the streaming message."""

    editSubmitted = Signal(int, str)
    regenerateRequested = Signal(int)
    columnWidthChanged = Signal(int)  # the composer below follows the message column
    conversationShown = Signal(object)  # conversation id or None, after show_conversation

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
        self._anchor: MessageWidget | None = None  # a search hit kept in view while laid out
        self._highlighted: MessageWidget | None = None
        self._marks: list[TermMarks] = []

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
        self.divider = LeftOutDivider(self.column)
        self.divider.setVisible(False)
        self.left_out_before: int | None = None  # the message the divider stands above
        outer.addWidget(self.column, 1, Qt.AlignmentFlag.AlignHCenter)
        self.setWidget(page)
        self._page, self._page_layout = page, outer

        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(self._render_pending)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._remember_position)
        bar.rangeChanged.connect(self._follow_bottom)
        bar.sliderPressed.connect(self._release_anchor)

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
        self._anchor = self._highlighted = None
        self._place_divider(None, 0)
        self.conversation_id = conversation_id
        for m in messages:
            w = self._append(m.id, m.role, m.content, m.status, m.stats, m.error, m.attachments)
            if m.id == streaming_id:
                self._streaming = w
        self._update_actions()
        self._stick_to_bottom = True
        self.scroll_to_bottom()
        self.conversationShown.emit(conversation_id)

    def add_message(self, message) -> MessageWidget:
        w = self._append(
            message.id, message.role, message.content, message.status, message.stats,
            message.error, message.attachments,
        )  # fmt: skip
        if message.status == "streaming":
            self._streaming = w
        self._update_actions()
        self._anchor = None
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
            if w is self._anchor or w is self._highlighted:
                self._anchor = self._highlighted = None
            if w.message_id == self.left_out_before:
                self._place_divider(None, 0)
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

    def append_text(self, message_id: int, text: str) -> None:
        """New text of the answer being written, straight from its job (QtJob.text): shown
        when that answer is the one on screen, rendered like stream_text."""
        w = self._streaming
        if w is None or w.message_id != message_id:
            return
        so_far = self._pending_text if self._pending_text is not None else w.content
        self.stream_text(message_id, so_far + text)

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

    def scroll_to_message(
        self, message_id: int, highlight: bool = True, terms: Iterable[str] = ()
    ) -> bool:
        """Bring a message (a search hit) to the top of the view and highlight it, with its
        matching words marked. It stays in view while the messages above are laid out."""
        w = self.message_widget(message_id)
        if w is None:
            return False
        self._anchor = w
        self._stick_to_bottom = False
        if highlight:
            self._set_highlight(w, list(terms))
        self._scroll_to_anchor()
        QTimer.singleShot(0, self._scroll_to_anchor)  # once the new widgets have their heights
        return True

    @property
    def highlighted_id(self) -> int | None:
        return self._highlighted.message_id if self._highlighted is not None else None

    def _scroll_to_anchor(self) -> None:
        w = self._anchor
        if w is None or w not in self._widgets:
            return
        self._page_layout.activate()
        top = w.mapTo(self._page, QPoint(0, 0)).y()
        bar = self.verticalScrollBar()
        bar.blockSignals(True)  # not the reader's scroll: keep following the anchor
        bar.setValue(max(bar.minimum(), min(bar.maximum(), top - HIT_MARGIN)))
        bar.blockSignals(False)
        self.viewport().update()

    def _release_anchor(self) -> None:
        self._anchor = None

    def wheelEvent(self, event) -> None:  # noqa: N802
        self._anchor = None  # the reader scrolls: stop holding the hit in place
        super().wheelEvent(event)

    def _set_highlight(self, w: MessageWidget, terms: list[str]) -> None:
        old = self._highlighted
        if old is not None and old in self._widgets:
            old.setProperty("searchHit", False)
            old.setStyleSheet("")
        for marks in self._marks:
            marks.setDocument(None)
            marks.deleteLater()
        self._marks = []
        self._highlighted = w
        w.setProperty("searchHit", True)
        w.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        hl = self.palette().color(self.palette().ColorRole.Highlight)
        w.setStyleSheet(
            f"#{w.objectName()} {{ background: rgba({hl.red()}, {hl.green()}, {hl.blue()}, 38);"
            " border-radius: 10px; }"
        )
        if terms:
            self._marks = [TermMarks(b.document(), terms) for b in w.segments]

    def marked_terms(self) -> list[str]:
        """The words marked in the highlighted message."""
        return [word for marks in self._marks for word in marks.marked()]

    # -- where the model stops reading

    def set_left_out(self, first_seen_id: int | None, count: int) -> None:
        """A divider above `first_seen_id` saying `count` earlier messages were left out of
        the model's context; none when nothing was left out."""
        self._place_divider(first_seen_id if count > 0 else None, count)

    def _place_divider(self, message_id: int | None, count: int) -> None:
        w = self.message_widget(message_id) if message_id is not None else None
        self._layout.removeWidget(self.divider)
        if w is None:
            self.divider.setVisible(False)
            self.left_out_before = None
            return
        self.divider.set_count(count)
        self._layout.insertWidget(self._layout.indexOf(w), self.divider)
        self.divider.setVisible(True)
        self.left_out_before = message_id

    def scroll_to_bottom(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _remember_position(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._stick_to_bottom = value >= bar.maximum() - 24

    def _follow_bottom(self, _min: int, maximum: int) -> None:
        if self._anchor is not None:
            self._scroll_to_anchor()
        elif self._stick_to_bottom:
            self.verticalScrollBar().setValue(maximum)
