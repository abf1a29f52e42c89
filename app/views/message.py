"""One chat message: Markdown body, quiet stats line, and its actions (copy, edit, regenerate)."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, Qt, QUrl, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.identity import resources_dir
from app.markdown import (
    document_css,
    first_strong_direction,
    last_block_boundary,
    render_markdown,
    render_plain,
)
from app.views.copy_feedback import flash_copied
from app.views.restyle import set_style_property
from app.views.text_browser import SafeTextBrowser
from app.views.theme import faint_text, is_dark

if TYPE_CHECKING:
    from app.store.records import Attachment

DOCUMENT_ICON = "icons/document.svg"  # under resources/
COLLAPSE_CHARS = 4000  # a pasted document shows its start until "Show all" is clicked
LENGTH_CUT_NOTE = "cut at the length limit"


def prompt_cache_parts(stats: dict[str, Any]) -> list[str]:
    """["8,112 cached", "14 new"]: the prompt tokens the KV cache held and those read for this
    answer (GenerationStats.reused_tokens, prefilled_tokens); [] for stats without them."""
    reused, new = stats.get("reused_tokens"), stats.get("prefilled_tokens")
    if reused is None or new is None or reused + new == 0:
        return []
    return [f"{reused:,} cached", f"{new:,} new"]


def format_stats(stats: dict[str, Any] | None, status: str) -> str:
    """The quiet line under an answer: tokens · N cached · M new (prompt tokens) · time to
    first token · tok/s · stopped, or
    "cut at the length limit" when the answer ran into its longest-answer setting."""
    parts = []
    if stats:
        tokens = stats.get("generated_tokens")
        if tokens is not None:
            parts.append(f"{tokens:,} tokens")
        parts += prompt_cache_parts(stats)
        ttft = stats.get("ttft_s")
        if ttft:
            parts.append(f"{ttft:.2f} s to first token")
        tps = stats.get("decode_tps")
        if tps:
            parts.append(f"{tps:.1f} tok/s")
    if status == "stopped":
        parts.append("stopped")
    elif stats and stats.get("finish_reason") == "length":
        parts.append(LENGTH_CUT_NOTE)
    return " · ".join(parts)


def _attachment_text(a: Attachment) -> str:
    bits = [a.name]
    count = a.count_label()  # None: DOCX, TXT (no pages)
    if count:
        bits.append(count)
    if a.tokens:
        bits.append(f"{a.tokens:,} tokens")
    return " · ".join(bits)


def attachment_line(attachments: Sequence[Attachment]) -> str:
    """The documents sent with a message, e.g. "report.pdf · 12 pages · 8,431 tokens"."""
    return "   ".join(_attachment_text(a) for a in attachments)


def document_icon_url() -> str:
    return QUrl.fromLocalFile(str(resources_dir() / DOCUMENT_ICON)).toString()


def attachment_html(attachments: Sequence[Attachment], icon_url: str) -> str:
    """The same line, each document after a page icon: an SVG, so no emoji font is needed.
    The SVG is drawn at twice the size it is shown at, so it stays sharp on Retina screens."""
    icon = (
        f'<img src="{html.escape(icon_url)}" width="14" height="14" style="vertical-align: middle">'
    )
    items = (f"{icon}&nbsp;{html.escape(_attachment_text(a))}" for a in attachments)
    return "&nbsp;&nbsp;&nbsp; ".join(items)


class MessageWidget(QWidget):
    """A user bubble (right-aligned, editable) or an answer (full width, regenerable)."""

    editSubmitted = Signal(int, str)  # message id, new text
    regenerateRequested = Signal(int)  # answer message id

    def __init__(
        self,
        message_id: int,
        role: str,
        content: str,
        status: str = "complete",
        stats: dict[str, Any] | None = None,
        error: str | None = None,
        attachments: Sequence[Attachment] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.message_id = message_id
        self.role = role
        self.content = content
        self.status = status
        self._theme: tuple = ()
        self._frozen_len = 0  # streaming: text before this offset is rendered for good
        self.last_render_s = 0.0
        self.setObjectName("userMessage" if role == "user" else "assistantMessage")

        self.bubble = QFrame()
        self.bubble.setObjectName("userBubble" if role == "user" else "answerBody")
        bubble_layout = self._bubble_layout = QVBoxLayout(self.bubble)
        pad = 10 if role == "user" else 0
        bubble_layout.setContentsMargins(pad + 2, pad // 2 + 2, pad + 2, pad // 2 + 2)
        bubble_layout.setSpacing(0)
        # One browser normally; a long streaming answer adds one per frozen stretch of blocks.
        self.segments: list[SafeTextBrowser] = []
        self._add_segment()
        self.editor: QPlainTextEdit | None = None

        self.note = QLabel()  # progress placeholder or error text
        self.note.setObjectName("messageNote")
        self.note.setWordWrap(True)
        self.note.setVisible(False)

        self.stats_label = QLabel()
        self.stats_label.setObjectName("messageStats")
        self.stats_label.setWordWrap(True)  # a narrow window wraps the line, never clips it
        self.copy_button = self._action("Copy", "Copy this message")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        self.edit_button = self._action("Edit", "Edit this message and send it again")
        self.edit_button.clicked.connect(self.begin_edit)
        self.regenerate_button = self._action("Regenerate", "Write this answer again")
        self.regenerate_button.clicked.connect(
            lambda: self.regenerateRequested.emit(self.message_id)
        )
        self.expand_button = self._action("Show all", "Show the whole message")
        self.expand_button.clicked.connect(self.expand)
        self.expand_button.setVisible(False)
        self._expanded = False
        self.edit_button.setVisible(role == "user")
        self.regenerate_button.setVisible(False)

        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.setSpacing(2)
        if role == "user":
            footer.addStretch(1)
        footer.addWidget(self.stats_label, 0 if role == "user" else 1)  # wraps only when it must
        for b in (self.expand_button, self.copy_button, self.edit_button, self.regenerate_button):
            footer.addWidget(b)

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        if role == "user":
            row.addStretch(1)
        row.addWidget(self.bubble, 0 if role == "user" else 1)

        outer = self._outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 6, 0, 2)
        outer.setSpacing(2)
        if attachments:  # the documents sent with this message, stored with it
            self.attachments_label = QLabel(attachment_html(attachments, document_icon_url()))
            self.attachments_label.setTextFormat(Qt.TextFormat.RichText)
            self.attachments_label.setAccessibleName(attachment_line(attachments))
            self.attachments_label.setObjectName("messageAttachments")
            self.attachments_label.setWordWrap(True)
            self.attachments_label.setAlignment(Qt.AlignmentFlag.AlignRight)
            outer.addWidget(self.attachments_label)
        outer.addLayout(row)
        outer.addWidget(self.note)
        outer.addLayout(footer)

        self.set_content(content)
        self.set_status(status, stats, error)

    def _action(self, text: str, tip: str) -> QToolButton:
        # Parented at once: one shown before the footer takes it would flash up as a window.
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.setObjectName("messageAction")
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        return b

    # -- content

    @property
    def browser(self) -> SafeTextBrowser:
        return self.segments[0]

    def _add_segment(self) -> SafeTextBrowser:
        browser = SafeTextBrowser(snug=self.role == "user")
        self._bubble_layout.insertWidget(len(self.segments), browser)
        self.segments.append(browser)
        return browser

    def _render(self, browser: SafeTextBrowser, text: str) -> None:
        dark = self._theme[0]
        # Answers are Markdown; the user's own text is shown exactly as typed.
        rendered = render_plain(text) if self.role == "user" else render_markdown(text, dark)
        browser.show_rendered(text, rendered, document_css(*self._theme))
        rtl = first_strong_direction(text) == "rtl"
        browser.setLayoutDirection(
            Qt.LayoutDirection.RightToLeft if rtl else Qt.LayoutDirection.LeftToRight
        )

    def set_content(self, text: str) -> None:
        """Renders the whole message into one browser."""
        started = time.perf_counter()
        self.content = text
        self._theme = self._theme_key()
        for extra in self.segments[1:]:
            extra.deleteLater()
        del self.segments[1:]
        self._frozen_len = 0
        collapse = self.role == "user" and not self._expanded and len(text) > COLLAPSE_CHARS
        self.expand_button.setVisible(collapse)
        if collapse:
            self.expand_button.setText(f"Show all {len(text):,} characters")
            text = text[:COLLAPSE_CHARS].rstrip() + " …"
        self._render(self.segments[0], text)
        self.bubble.setVisible(bool(text) or self.role == "user")
        self.last_render_s = time.perf_counter() - started

    def stream(self, text: str) -> None:
        """The answer so far: completed blocks are frozen, only the tail is rendered again.

        So a render costs about the size of the newest blocks, not of the whole answer.
        """
        started = time.perf_counter()
        if not text.startswith(self.content[: self._frozen_len]):
            self.set_content(text)  # not a continuation: start over
            return
        self.content = text
        if not self._theme:
            self._theme = self._theme_key()
        boundary = last_block_boundary(text, self._frozen_len)
        if boundary > self._frozen_len:
            self._render(self.segments[-1], text[self._frozen_len : boundary])
            self._add_segment()
            self._frozen_len = boundary
        self._render(self.segments[-1], text[self._frozen_len :])
        self.bubble.setVisible(bool(text))
        self.last_render_s = time.perf_counter() - started

    def set_note(self, text: str, error: bool = False) -> None:
        self.note.setText(text)
        set_style_property(self.note, "error", error)
        self.note.setVisible(bool(text))

    def set_status(
        self, status: str, stats: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        self.status = status
        streaming = status == "streaming"
        self.stats_label.setText("" if streaming else format_stats(stats, status))
        self.copy_button.setVisible(not streaming)
        self.edit_button.setEnabled(not streaming)
        if status == "failed":
            self.set_note(error or "The answer failed.", error=True)
        elif not streaming:
            self.set_note("")

    def add_below(self, widget: QWidget) -> None:
        """A widget under the message, on the left (a summary's "Continue summary")."""
        self._outer.addWidget(widget, 0, Qt.AlignmentFlag.AlignLeft)

    def set_regenerate_visible(self, visible: bool) -> None:
        self.regenerate_button.setVisible(visible and self.role == "assistant")

    def set_actions_enabled(self, enabled: bool) -> None:
        """Edit and regenerate are off while an answer is being written."""
        self.edit_button.setEnabled(enabled)
        self.regenerate_button.setEnabled(enabled)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.role == "user":  # a bubble leaves room on its left, like Messages
            self.bubble.setMaximumWidth(max(120, int(self.width() * 0.8)))

    def _theme_key(self) -> tuple[bool, str, str, str]:
        pal = self.palette()
        return (
            is_dark(pal),
            pal.color(pal.ColorRole.Link).name(),
            pal.color(pal.ColorRole.WindowText).name(),
            faint_text(pal).name(),
        )

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        # Light/dark switch: code and link colours live in the rendered HTML, so render again.
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self.refresh_theme()

    def refresh_theme(self) -> None:
        if self._theme and self._theme_key() != self._theme:
            self._theme = self._theme_key()
            for browser in self.segments:
                self._render(browser, browser.markdown)

    # -- actions

    def expand(self) -> None:
        self._expanded = True
        self.set_content(self.content)

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.content)
        flash_copied(self.copy_button)

    def begin_edit(self) -> None:
        if self.role != "user" or self.editor is not None:
            return
        self.editor = QPlainTextEdit(self.content)
        self.editor.setObjectName("editBox")
        self.editor.setMinimumWidth(360)
        self.editor.setFixedHeight(max(80, min(240, self.browser.height() + 40)))
        self.editor.setFixedWidth(max(360, self.bubble.width()))
        save = QPushButton("Send")
        save.setDefault(True)
        cancel = QPushButton("Cancel")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(save)
        self._bubble_layout.addWidget(self.editor)
        self._bubble_layout.addLayout(buttons)
        self._edit_buttons = (buttons, save, cancel)
        self.browser.setVisible(False)
        save.clicked.connect(self.submit_edit)
        cancel.clicked.connect(self.cancel_edit)
        self.editor.setFocus()

    def submit_edit(self) -> None:
        if self.editor is None:
            return
        text = self.editor.toPlainText().strip()
        self.cancel_edit()
        if text:
            self.editSubmitted.emit(self.message_id, text)

    def cancel_edit(self) -> None:
        if self.editor is None:
            return
        buttons, save, cancel = self._edit_buttons
        for w in (self.editor, save, cancel):
            w.deleteLater()
        self._bubble_layout.removeItem(buttons)
        self.editor = None
        self.browser.setVisible(True)
