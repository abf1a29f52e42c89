"""Light/dark detection and the few colours the views derive from the palette."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette


def is_dark(palette: QPalette | None = None) -> bool:
    """Dark when the system says so, or when the window colour is dark (custom palettes)."""
    if palette is None:
        hints = QGuiApplication.styleHints()
        if hints.colorScheme() == Qt.ColorScheme.Dark:
            return True
        palette = QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def faint_text(palette: QPalette) -> QColor:
    """Secondary text: the text colour pulled halfway to the background."""
    fg = palette.color(QPalette.ColorRole.WindowText)
    bg = palette.color(QPalette.ColorRole.Window)
    return QColor(
        (fg.red() + bg.red()) // 2, (fg.green() + bg.green()) // 2, (fg.blue() + bg.blue()) // 2
    )


def dark_palette() -> QPalette:
    """A macOS-like dark palette (used when the platform gives none, e.g. screenshots)."""
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#1e1e20",
        QPalette.ColorRole.WindowText: "#e8e8ea",
        QPalette.ColorRole.Base: "#252528",
        QPalette.ColorRole.AlternateBase: "#2c2c30",
        QPalette.ColorRole.Text: "#e8e8ea",
        QPalette.ColorRole.Button: "#323236",
        QPalette.ColorRole.ButtonText: "#e8e8ea",
        QPalette.ColorRole.Highlight: "#0a84ff",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#4ea1ff",
        QPalette.ColorRole.PlaceholderText: "#8a8a90",
        QPalette.ColorRole.Mid: "#3a3a3e",
        QPalette.ColorRole.Midlight: "#48484c",
        QPalette.ColorRole.Dark: "#141416",
        QPalette.ColorRole.ToolTipBase: "#2c2c30",
        QPalette.ColorRole.ToolTipText: "#e8e8ea",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6a6a70"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6a6a70"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#6a6a70"))
    return p
