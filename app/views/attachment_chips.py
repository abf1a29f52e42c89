"""Attached documents above the composer: one chip each with pages, tokens and whether it fits.

A chip that does not fit the context says so and makes Summarize its main action; every chip
can be removed before sending. Errors for files that could not be read show under the chips.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.views.restyle import set_style_property
from app.views.scroll import frameless_scroll_area

NAME_WIDTH = 190  # px; longer names are elided in the middle, whole in the tooltip


def _after(a: int | None, b: int | None) -> bool:
    """Chip `a` stands after a new chip `b` (chips without an order keep their place)."""
    return a is not None and b is not None and a > b


def count_text(attachment: Any) -> str | None:
    """'3 pages', '12 slides', '2 sheets' where the format has real pages; None for DOCX, TXT."""
    document = getattr(attachment, "document", None)
    if document is not None and hasattr(document, "count_label"):
        return document.count_label()
    pages = attachment.pages
    return f"{pages} page{'s' if pages != 1 else ''}"


def detail_text(attachment: Any, budget: int | None, num_ctx: int | None) -> str:
    """'3 pages · 1,234 tokens · fits', or '· too long for 8,192 tokens' when it does not;
    '⚠ 2 notes · ...' first when extraction has something to say (the tooltip lists it)."""
    count = count_text(attachment)
    parts = [count] if count else []
    parts.append(f"{attachment.tokens:,} tokens")
    if attachment.warnings:
        n = len(attachment.warnings)
        parts.insert(0, f"⚠ {n} note{'s' if n != 1 else ''}")
    if budget is not None:
        parts.append("fits" if attachment.fits(budget) else f"too long for {num_ctx:,}")
    return " · ".join(parts)


class AttachmentChip(QFrame):
    removeRequested = Signal(object)  # PendingAttachment
    summarizeRequested = Signal(object)

    def __init__(self, attachment: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.attachment = attachment
        self.order: int | None = None  # when it was added (see AttachmentChips.add)
        self.setObjectName("attachmentChip")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.name_label = QLabel()
        self.name_label.setObjectName("chipName")
        metrics = QFontMetrics(self.name_label.font())
        self.name_label.setText(
            metrics.elidedText(attachment.name, Qt.TextElideMode.ElideMiddle, NAME_WIDTH)
        )
        self.detail_label = QLabel()
        self.detail_label.setObjectName("chipDetail")
        self.summarize_button = QToolButton()
        self.summarize_button.setObjectName("chipSummarize")
        self.summarize_button.setText("Summarize")
        self.summarize_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.summarize_button.clicked.connect(lambda: self.summarizeRequested.emit(attachment))
        self.remove_button = QToolButton()
        self.remove_button.setObjectName("chipRemove")
        self.remove_button.setText("✕")
        self.remove_button.setToolTip(f"Remove {attachment.name}")
        self.remove_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.remove_button.clicked.connect(lambda: self.removeRequested.emit(attachment))
        tip = [attachment.path, *attachment.warnings]
        self.setToolTip("\n".join(tip))

        text = QVBoxLayout()
        text.setSpacing(1)
        text.addWidget(self.name_label)
        text.addWidget(self.detail_label)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 5, 4, 5)
        layout.setSpacing(6)
        layout.addLayout(text)
        layout.addWidget(self.summarize_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.remove_button, 0, Qt.AlignmentFlag.AlignTop)
        self.fits = True
        self.set_budget(None, None)

    def set_budget(self, budget: int | None, num_ctx: int | None) -> None:
        a = self.attachment
        self.fits = budget is None or a.fits(budget)
        self.detail_label.setText(detail_text(a, budget, num_ctx))
        tip = "Summarize this document"
        if not self.fits:
            tip = (
                f"{a.name} needs {a.prompt_tokens:,} tokens, more than the {budget:,} a message "
                f"may use with a context of {num_ctx:,}: summarize it, or raise the context "
                "length in Settings."
            )
        if a.warnings:  # every warning reaches the chip: which pages, which encoding, what skipped
            tip = "\n".join([*a.warnings, "", tip])
        self.detail_label.setToolTip(tip)
        for w in (self, self.detail_label):
            set_style_property(w, "fits", self.fits)
        set_style_property(self.summarize_button, "primary", not self.fits)


class AttachmentChips(QWidget):
    """The row of chips and a one-line notice (reading…, or an error naming the file)."""

    summarizeRequested = Signal(object)  # PendingAttachment
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("attachmentChips")
        self._chips: list[AttachmentChip] = []
        self._budget: tuple[int | None, int | None] = (None, None)
        self._can_summarize, self._why_not = True, ""
        self.row = QWidget()
        self.row.setObjectName("chipsRow")
        self._row_layout = QHBoxLayout(self.row)
        self._row_layout.setContentsMargins(0, 0, 0, 0)
        self._row_layout.setSpacing(6)
        self._row_layout.addStretch(1)
        self.scroll_area = frameless_scroll_area(self.row, "chipsScroll", sideways=True)
        self.notice = QLabel()
        self.notice.setObjectName("chipsNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 6)
        layout.setSpacing(4)
        layout.addWidget(self.scroll_area)
        layout.addWidget(self.notice)
        self._update()

    # -- chips

    def attachments(self) -> list[Any]:
        return [c.attachment for c in self._chips]

    def chips(self) -> list[AttachmentChip]:
        return list(self._chips)

    def chip(self, name: str) -> AttachmentChip | None:
        return next((c for c in self._chips if c.attachment.name == name), None)

    def add(self, attachment: Any, order: int | None = None) -> AttachmentChip:
        """Adds a chip; the same file dropped again replaces its chip (it may have changed).

        `order`: when the file was added; files are read in parallel and finish in any order,
        but their chips stand in the order the user added them."""
        old = next((c for c in self._chips if c.attachment.path == attachment.path), None)
        chip = AttachmentChip(attachment)
        chip.order = order
        chip.removeRequested.connect(self.remove)
        chip.summarizeRequested.connect(self.summarizeRequested)
        chip.set_budget(*self._budget)
        chip.summarize_button.setEnabled(self._can_summarize)
        chip.summarize_button.setToolTip(self._why_not or chip.detail_label.toolTip())
        if old is not None:
            index = self._row_layout.indexOf(old)
            self._drop(old)
            self._row_layout.insertWidget(index, chip)
            self._chips.insert(min(index, len(self._chips)), chip)
        else:
            later = [i for i, c in enumerate(self._chips) if _after(c.order, order)]
            index = later[0] if later else len(self._chips)
            self._row_layout.insertWidget(index, chip)
            self._chips.insert(index, chip)
        self._update()
        self.changed.emit()
        return chip

    def remove(self, attachment: Any) -> None:
        chip = next((c for c in self._chips if c.attachment is attachment), None)
        if chip is not None:
            self._drop(chip)
            self._update()
            self.changed.emit()

    def clear(self) -> None:
        for chip in list(self._chips):
            self._drop(chip)
        self._update()
        self.changed.emit()

    def _drop(self, chip: AttachmentChip) -> None:
        self._chips.remove(chip)
        self._row_layout.removeWidget(chip)
        chip.hide()
        chip.deleteLater()

    # -- state

    def set_budget(self, budget: int, num_ctx: int) -> None:
        """Prompt tokens a message may use, and the context length it comes from."""
        self._budget = (budget, num_ctx)
        for chip in self._chips:
            chip.set_budget(budget, num_ctx)

    def set_summarize_enabled(self, enabled: bool, reason: str = "") -> None:
        self._can_summarize, self._why_not = enabled, reason
        for chip in self._chips:
            chip.summarize_button.setEnabled(enabled)
            chip.summarize_button.setToolTip(reason or chip.detail_label.toolTip())

    def set_notice(self, text: str, error: bool = False) -> None:
        self.notice.setText(text)
        self.notice.setToolTip(text)
        set_style_property(self.notice, "error", error)
        self._update()

    def _update(self) -> None:
        self.scroll_area.setVisible(bool(self._chips))
        if self._chips:
            bar = self.scroll_area.horizontalScrollBar().sizeHint().height()
            self.scroll_area.setFixedHeight(self.row.sizeHint().height() + bar)
        self.notice.setVisible(bool(self.notice.text()))
        self.setVisible(bool(self._chips) or bool(self.notice.text()))
