"""The quick prompt's look: a frameless, always-on-top card near the menu-bar icon.

Widgets, placement, Markdown display and hiding (Esc, clicking away); what the buttons do and
how the answer is asked for live in app/quick_prompt.py (QuickPromptPanel subclasses this).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.markdown import document_css, render_markdown
from app.views.copy_feedback import flash_copied
from app.views.restyle import set_style_property
from app.views.scroll import frameless_scroll_area
from app.views.text_browser import SafeTextBrowser
from app.views.theme import faint_text, is_dark

PANEL_WIDTH = 480
MAX_ANSWER_HEIGHT = 360  # then the answer scrolls
SCREEN_MARGIN = 8


def panel_position(size: QSize, available: QRect, anchor: QRect | None = None) -> QPoint:
    """Top-left for the panel: centred under the menu-bar icon when its geometry is known (above
    it when the icon sits low, e.g. a Linux panel at the bottom), else the top-right corner."""
    w, h = size.width(), size.height()
    left, right = available.left() + SCREEN_MARGIN, available.right() - SCREEN_MARGIN - w + 1
    top, bottom = available.top() + SCREEN_MARGIN, available.bottom() - SCREEN_MARGIN - h + 1
    if anchor is None or anchor.isEmpty():
        return QPoint(max(left, right), top)
    x = anchor.center().x() - w // 2
    below = anchor.center().y() < available.center().y()
    y = anchor.bottom() + 1 + SCREEN_MARGIN if below else anchor.top() - SCREEN_MARGIN - h
    return QPoint(max(left, min(x, right)), max(top, min(y, max(top, bottom))))


class QuickPromptView(QWidget):
    """Frameless, always on top; Esc or clicking away hides it. Subclasses wire the buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("quickPrompt")
        self.setWindowTitle("Quick Prompt")
        flags = Qt.WindowType
        self.setWindowFlags(flags.Tool | flags.FramelessWindowHint | flags.WindowStaysOnTopHint)
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)  # the card's round corners
        self.setFixedWidth(PANEL_WIDTH)
        self.anchor: QRect | None = None  # the menu-bar icon's geometry, when the platform tells
        self._build()

    def _build(self) -> None:
        self.input = QLineEdit()
        self.input.setObjectName("quickPromptInput")
        self.input.setPlaceholderText("Ask Nemo…")
        self.clipboard_button = self._tool("Use clipboard", "Send the clipboard's text along")
        top = QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(self.input, 1)
        top.addWidget(self.clipboard_button)

        self.chip = QLabel()
        self.chip.setObjectName("quickPromptChip")
        self.chip_clear = self._tool("×", "Don't send the clipboard")
        chip_row = QHBoxLayout()
        chip_row.setSpacing(2)
        chip_row.addWidget(self.chip)
        chip_row.addWidget(self.chip_clear)
        chip_row.addStretch(1)
        self.chip_row = QWidget()
        self.chip_row.setLayout(chip_row)
        chip_row.setContentsMargins(0, 0, 0, 0)

        self.note = QLabel()
        self.note.setObjectName("quickPromptNote")
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.RichText)

        self.answer_view = SafeTextBrowser()
        self.answer_view.setObjectName("quickPromptAnswer")
        self.scroll_area = frameless_scroll_area(self.answer_view, "quickPromptScroll")
        self.scroll_area.viewport().setAutoFillBackground(False)
        self.answer_view.document().documentLayout().documentSizeChanged.connect(self._fit_answer)

        self.stats_label = QLabel()
        self.stats_label.setObjectName("quickPromptStats")
        self.stop_button = QPushButton("Stop")
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(lambda: flash_copied(self.copy_button))
        self.continue_button = QPushButton("Continue in Nemo Chat")
        self.continue_button.setDefault(False)
        footer = QHBoxLayout()
        footer.addStretch(1)
        for b in (self.stop_button, self.copy_button, self.continue_button):
            b.setAutoDefault(False)
            footer.addWidget(b)
        self.footer = QWidget()
        self.footer.setLayout(footer)
        footer.setContentsMargins(0, 0, 0, 0)

        self.rule = QFrame()
        self.rule.setObjectName("quickPromptRule")
        self.rule.setFrameShape(QFrame.Shape.HLine)

        self.card = QFrame()
        self.card.setObjectName("quickPromptCard")
        card = self._card_layout = QVBoxLayout(self.card)
        card.setContentsMargins(14, 10, 14, 10)
        card.setSpacing(6)
        card.addLayout(top)
        card.addWidget(self.chip_row)
        card.addWidget(self.rule)
        card.addWidget(self.footer)  # _dock_footer moves it to the edge that stays put
        card.addWidget(self.note)
        card.addWidget(self.scroll_area)
        card.addWidget(self.stats_label)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.card)

    def _tool(self, text: str, tip: str) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        return b

    # -- showing and hiding

    def show_panel(self, anchor: QRect | None = None) -> None:
        """Show under the menu-bar icon (or top-right), focused on the input line."""
        if anchor is not None:
            self.anchor = anchor
        self.refresh_controls()
        self.adjustSize()
        self._place()
        self.show()
        self.raise_()
        self.activateWindow()
        self.input.setFocus(Qt.FocusReason.ActiveWindowFocusReason)
        self.input.selectAll()

    def toggle(self, anchor: QRect | None = None) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.show_panel(anchor)

    def _place(self) -> None:
        screen = self.screen() or QGuiApplication.primaryScreen()
        if self.anchor is not None and not self.anchor.isEmpty():
            screen = QGuiApplication.screenAt(self.anchor.center()) or screen
        if screen is not None:
            available = screen.availableGeometry()
            anchor = self.anchor
            grows_up = (
                anchor is not None
                and not anchor.isEmpty()
                and anchor.center().y() >= available.center().y()
            )
            self._dock_footer(at_bottom=grows_up)
            self.move(panel_position(self.size(), available, self.anchor))

    def _dock_footer(self, at_bottom: bool) -> None:
        """The buttons sit on the panel's fixed edge (under the input when it grows downwards),
        so Stop stays under the pointer while the answer grows."""
        card = self._card_layout
        card.removeWidget(self.footer)
        card.insertWidget(card.count() if at_bottom else card.indexOf(self.rule) + 1, self.footer)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
            return
        super().keyPressEvent(event)

    def event(self, event: QEvent) -> bool:
        # Clicking anywhere else deactivates the panel: hide it, like a menu-bar popover.
        if event.type() == QEvent.Type.WindowDeactivate and self.isVisible():
            QTimer.singleShot(0, self._hide_if_inactive)
        return super().event(event)

    def _hide_if_inactive(self) -> None:
        if not self.isActiveWindow():
            self.hide()

    def refresh_controls(self) -> None:
        """Shows the buttons that apply now; the panel overrides it."""

    def render_answer(self, text: str, follow: bool) -> None:
        """Shows `text` as Markdown; `follow` keeps the end of a streaming answer in view."""
        pal = self.palette()
        css = document_css(
            is_dark(pal),
            pal.color(pal.ColorRole.Link).name(),
            pal.color(pal.ColorRole.WindowText).name(),
            faint_text(pal).name(),
        )
        self.answer_view.show_rendered(text, render_markdown(text, is_dark(pal)), css)
        self.scroll_area.setVisible(bool(text))
        if follow:
            bar = self.scroll_area.verticalScrollBar()
            QTimer.singleShot(0, lambda: bar.setValue(bar.maximum()))

    def _fit_answer(self) -> None:
        # Grow with the answer up to MAX_ANSWER_HEIGHT, then scroll; the panel grows along.
        self.scroll_area.setFixedHeight(min(self.answer_view.height() + 4, MAX_ANSWER_HEIGHT))
        if self.isVisible():
            self.card.updateGeometry()  # the card's new height counts now, not at the next event
            self.adjustSize()
            if self.anchor is not None and self.anchor.center().y() > self.pos().y():
                self._place()  # above a bottom panel's icon: grow upwards

    def set_note(self, text: str, error: bool = False) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))
        set_style_property(self.note, "error", error)
