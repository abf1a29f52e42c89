"""A long-document run you can see: parts done of total, time left, and one cell per part.

Shown above the composer while a summary (or a question over a whole document) runs. Each
cell is a part, in order: pending, reading, done or failed; its tooltip names the file and
pages. A passive view: the flow (app.chat.summarize_flow) feeds it plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import QEvent, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QHelpEvent, QPainter
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

PENDING, READING, DONE, FAILED = "pending", "reading", "done", "failed"
STATE_NAMES = {PENDING: "not read yet", READING: "reading", DONE: "done", FAILED: "failed"}
DONE_COLOUR, FAILED_COLOUR = QColor("#30a14e"), QColor("#d70015")
CELL_MAX, CELL_GAP, CELL_HEIGHT = 18, 2, 10  # px; many parts shrink the cells, never wrap


class PartCells(QWidget):
    """One small cell per part, coloured by state; hover for its pages."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("summaryCells")
        self.states: list[str] = []
        self.labels: list[str] = []
        self.setMinimumHeight(CELL_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(max(1, len(self.states)) * (CELL_MAX + CELL_GAP), CELL_HEIGHT)

    def _cell_width(self) -> float:
        n = max(1, len(self.states))
        return min(CELL_MAX, (self.width() - CELL_GAP * (n - 1)) / n)

    def colour(self, state: str) -> QColor:
        pal = self.palette()
        if state == DONE:
            return DONE_COLOUR
        if state == FAILED:
            return FAILED_COLOUR
        if state == READING:
            return pal.color(pal.ColorRole.Highlight)
        pending = QColor(pal.color(pal.ColorRole.PlaceholderText))
        pending.setAlphaF(0.45)  # visible on light and dark backgrounds alike
        return pending

    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        width = self._cell_width()
        step = width + (CELL_GAP if width >= 3 else 0)  # hundreds of parts: a solid bar
        for i, state in enumerate(self.states):
            rect = QRectF(i * step, 0, max(1.0, width), CELL_HEIGHT)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self.colour(state))
            radius = min(3.0, width / 2)
            painter.drawRoundedRect(rect, radius, radius)
        painter.end()

    def index_at(self, x: float) -> int | None:
        width = self._cell_width()
        step = width + (CELL_GAP if width >= 3 else 0)
        i = int(x // step) if step > 0 else -1
        return i if 0 <= i < len(self.states) else None

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            i = self.index_at(event.x())
            if i is None:
                QToolTip.hideText()
            else:
                label = self.labels[i] if i < len(self.labels) else ""
                text = (
                    f"Part {i + 1}{f' · {label}' if label else ''}: {STATE_NAMES[self.states[i]]}"
                )
                QToolTip.showText(event.globalPos(), text, self)
            return True
        return super().event(event)


class SummaryStrip(QFrame):
    """Progress of one long-document run: a title, a bar (parts done / total), time left and
    the per-part cells."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("summaryStrip")
        self.title = QLabel()
        self.title.setObjectName("summaryStripTitle")
        self.detail = QLabel()
        self.detail.setObjectName("summaryStripDetail")
        self.detail.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.bar = QProgressBar()
        self.bar.setObjectName("summaryProgress")
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        self.cells = PartCells()
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(self.detail)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.cells)
        self._eta = ""
        self._stage = ""
        self.setVisible(False)

    # -- fed by the flow

    def start(self, title: str) -> None:
        """A new run: no parts known until its plan arrives."""
        self.title.setText(title)
        self.cells.states, self.cells.labels = [], []
        self._eta, self._stage = "", "Planning…"
        self.bar.setRange(0, 0)  # busy until the plan says how many parts
        self._update()
        self.setVisible(True)

    def set_parts(self, labels: Sequence[str], done: Iterable[int] = ()) -> None:
        """Every part up front (1-based `done`: read by an earlier run)."""
        finished = set(done)
        self.cells.labels = list(labels)
        self.cells.states = [DONE if i + 1 in finished else PENDING for i in range(len(labels))]
        self.bar.setRange(0, max(1, len(labels)))
        self._stage = ""
        self._update()

    def set_state(self, index: int, state: str) -> None:
        """Part `index` (1-based) is now pending, reading, done or failed."""
        if 1 <= index <= len(self.cells.states):
            self.cells.states[index - 1] = state
            self._update()

    def set_eta(self, text: str) -> None:
        """Time left, as the flow words it ("~2 min"); "" when unknown."""
        self._eta = text
        self._update()

    def set_stage(self, text: str) -> None:
        """After the parts: "Combining…", "Writing the summary…"."""
        self._stage = text
        self._update()

    def end(self, stopped: bool) -> None:
        """The run ended: parts still being read were not finished (stopped) or failed."""
        leftover = PENDING if stopped else FAILED
        self.cells.states = [leftover if s == READING else s for s in self.cells.states]
        self._eta = ""
        self._update()

    # -- state, for the flow and tests

    def states(self) -> list[str]:
        return list(self.cells.states)

    def done_count(self) -> int:
        return self.cells.states.count(DONE)

    def detail_text(self) -> str:
        return self.detail.text()

    def _update(self) -> None:
        total = len(self.cells.states)
        done = self.done_count()
        if total:
            self.bar.setValue(done)
        bits = [f"{done} of {total} part{'s' if total != 1 else ''}"] if total else []
        if self._stage:
            bits.append(self._stage)
        if self._eta:
            bits.append(f"{self._eta} left")
        self.detail.setText(" · ".join(bits))
        self.cells.update()
