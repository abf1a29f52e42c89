"""The plan before a long run: how many parts, about how long, and a larger context when it
would cut the parts ("Use 32K context (6 parts, ~4 min)" / "Continue with 8K" / Cancel).

A passive view: the flow gives it plain values (app.chat.summarize_flow.PlanChoice wording)
and reads `choice` after it closes (`finished`): "larger", "current" or None (cancelled).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

LARGER, CURRENT = "larger", "current"


@dataclass(frozen=True)
class PlanFacts:
    """What the dialog says, already worded by the flow."""

    title: str  # "Summarize long.pdf"
    parts: int
    pages: str  # "312 pages in 2 documents"; "" when unknown
    time_text: str  # "~22 min"
    measured: bool  # from this machine's own answers, or a rough default
    num_ctx: int
    part_budget: int  # prompt tokens a part may use
    larger_ctx: int | None = None  # a larger num_ctx that fits memory and cuts the parts
    larger_parts: int = 0
    larger_time_text: str = ""


def ctx_label(num_ctx: int) -> str:
    return f"{num_ctx // 1024}K" if num_ctx % 1024 == 0 else f"{num_ctx:,}"


class SummaryPlanDialog(QDialog):
    def __init__(self, facts: PlanFacts, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("summaryPlanDialog")
        self.setWindowTitle("A long summary")
        self.facts = facts
        self.choice: str | None = None
        heading = QLabel(f"{facts.title}: {facts.parts} parts, about {facts.time_text}")
        heading.setObjectName("planHeading")
        heading.setWordWrap(True)
        font = heading.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        heading.setFont(font)
        source = "this Mac's speed so far" if facts.measured else "a typical Mac's speed"
        lines = [
            f"Every page is read: {facts.pages + ', in ' if facts.pages else 'in '}"
            f"{facts.parts} parts of up to {facts.part_budget:,} tokens at a context of "
            f"{ctx_label(facts.num_ctx)}, then the part summaries are combined.",
            f"The time is an estimate from {source}. You can stop at any time and continue "
            "later: finished parts are kept.",
        ]
        if facts.larger_ctx:
            lines.append(
                f"A context of {ctx_label(facts.larger_ctx)} fits in memory and reads it in "
                f"{facts.larger_parts} parts, about {facts.larger_time_text}."
            )
        body = QLabel("\n\n".join(lines))
        body.setObjectName("planBody")
        body.setWordWrap(True)
        body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QDialogButtonBox()
        self.larger_button: QPushButton | None = None
        if facts.larger_ctx:
            self.larger_button = QPushButton(
                f"Use {ctx_label(facts.larger_ctx)} context "
                f"({facts.larger_parts} parts, {facts.larger_time_text})"
            )
            self.larger_button.setObjectName("planLarger")
            buttons.addButton(self.larger_button, QDialogButtonBox.ButtonRole.AcceptRole)
            self.larger_button.clicked.connect(lambda: self._choose(LARGER))
        self.current_button = QPushButton(f"Continue with {ctx_label(facts.num_ctx)}")
        self.current_button.setObjectName("planCurrent")
        buttons.addButton(self.current_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.current_button.clicked.connect(lambda: self._choose(CURRENT))
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.clicked.connect(self.reject)
        (self.larger_button or self.current_button).setDefault(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 14)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addWidget(body)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)

    def _choose(self, choice: str) -> None:
        self.choice = choice
        self.accept()
