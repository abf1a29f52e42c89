"""The one way to change a dynamic property that resources/style.qss selects on."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget


def set_style_property(widget: QWidget, name: str, value: object) -> None:
    """Set `name` and restyle `widget` now: Qt does not re-match `[name="…"]` selectors by
    itself when a property changes."""
    widget.setProperty(name, value)
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)
