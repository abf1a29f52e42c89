"""Rich text for one piece of a message, which never loads anything on the text's behalf."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QCursor, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QFrame, QSizePolicy, QTextBrowser, QToolTip, QWidget

from app.markdown import COPY_SCHEME, Rendered
from app.views.copy_feedback import COPIED_MS, COPIED_TEXT

EXTERNAL_SCHEMES = ("http", "https", "mailto")


class SafeTextBrowser(QTextBrowser):
    """Read-only rich text that never fetches anything: no remote images, no local files.

    Links open in the system browser only when clicked; `nemo-copy:N` links copy code block N.
    """

    codeCopied = Signal(int)  # the index of the code block just copied

    def __init__(self, parent: QWidget | None = None, snug: bool = False) -> None:
        super().__init__(parent)
        self._snug = snug  # size hint = the unwrapped text width (user bubbles)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.setAutoFillBackground(False)
        self.document().setDocumentMargin(2)
        self.anchorClicked.connect(self._on_anchor)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)
        self._natural_width = 200
        self.markdown = ""  # the Markdown (or plain text) shown here (source() is Qt's URL)
        self.rendered = Rendered("", ())

    def show_rendered(self, source: str, rendered: Rendered, css: str) -> None:
        self.markdown, self.rendered = source, rendered
        self.document().setDefaultStyleSheet(css)
        self.setHtml(rendered.html)
        if self._snug:
            self._natural_width = self.natural_width()
            self.updateGeometry()

    def loadResource(self, kind: int, url: QUrl) -> Any:  # noqa: N802 (Qt override)
        return None  # messages are untrusted text: nothing is ever loaded on their behalf

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == COPY_SCHEME:
            index = int(url.path()) if url.path().isdigit() else -1
            if 0 <= index < len(self.rendered.code_blocks):
                QGuiApplication.clipboard().setText(self.rendered.code_blocks[index])
                # The link is part of the rendered text: a tooltip is the feedback that fits.
                QToolTip.showText(
                    QCursor.pos(), COPIED_TEXT, self.viewport(), msecShowTime=COPIED_MS
                )
                self.codeCopied.emit(index)
        elif url.scheme() in EXTERNAL_SCHEMES:
            QDesktopServices.openUrl(url)

    def _fit_height(self) -> None:
        doc_height = math.ceil(self.document().size().height())
        margins = self.contentsMargins()
        self.setFixedHeight(doc_height + margins.top() + margins.bottom())

    def natural_width(self) -> int:
        """Width of the text laid out without wrapping (for snug user bubbles)."""
        doc = self.document().clone(self)
        doc.setTextWidth(-1)
        width = math.ceil(doc.idealWidth())
        doc.deleteLater()
        margins = self.contentsMargins()
        return width + margins.left() + margins.right() + 2

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self._natural_width, self.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(40, self.height())
