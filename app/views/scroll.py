"""The borderless scroll area the views wrap their content in."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


def frameless_scroll_area(content: QWidget, name: str, *, sideways: bool = False) -> QScrollArea:
    """`content` in a borderless QScrollArea that resizes it: scrolling down, or only sideways
    (a row of chips)."""
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidget(content)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    policy = Qt.ScrollBarPolicy
    if sideways:
        area.setVerticalScrollBarPolicy(policy.ScrollBarAlwaysOff)
        area.setHorizontalScrollBarPolicy(policy.ScrollBarAsNeeded)
    else:
        area.setHorizontalScrollBarPolicy(policy.ScrollBarAlwaysOff)
    return area
