"""The settings dialog's "Caches" group (issue 12): disk used, a disk budget, Clear, an off switch.

Passive: `control` is the window's app.bridge.cache_control.CacheControl (usage() -> DiskUsage,
clear(), and a `changed` signal carrying the DiskUsage after a clear). Clear acts at once; the
budget and the switch apply with the dialog's OK, as values() of ChatSettings.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.bridge.units import format_size
from app.settings import CACHE_DISK_GB_MAX
from app.views.settings_section import SettingsSection

MEMORY_ONLY = "Kept in memory only: nothing is written to disk."
ABOUT = (
    "A chat's cache holds what Nemo has already read of it, documents included: switching "
    "back or restarting reads only the new message. Caches are saved when memory runs short, "
    "after a chat rests a while and at quit."
)


def usage_text(usage: Any) -> str:
    """ "12.3 MB in 4 saved chats (up to 10 GB)"; "0 B" once cleared."""
    if usage is None or usage.folder is None:
        return MEMORY_ONLY
    count = usage.snapshots
    chats = f"{count} saved chat{'s' if count != 1 else ''}"
    text = f"{format_size(usage.disk_bytes)} in {chats} (up to {format_size(usage.disk_budget)})"
    if not usage.enabled:
        text += ": saving is off"
    return text


class CacheSettingsView(SettingsSection):
    """Edits the cache_* fields of ChatSettings; `values()` gives them back as keywords."""

    def __init__(self, settings: Any, control: Any = None, parent: QWidget | None = None) -> None:
        super().__init__("Caches", parent)
        self.setObjectName("cacheSettings")
        self._control = control
        self.enabled = QCheckBox("Save chats' caches on disk, for an instant resume")
        self.enabled.setObjectName("cacheEnabled")
        self.enabled.setChecked(settings.cache_enabled)
        self.enabled.setToolTip("Off: nothing is written; caches stay in memory until quit.")
        self.budget = QSpinBox()
        self.budget.setObjectName("cacheDiskBudget")
        self.budget.setRange(1, CACHE_DISK_GB_MAX)
        self.budget.setSuffix(" GB")
        self.budget.setValue(settings.cache_disk_gb)
        self.budget.setToolTip("Past this, the chats used least recently lose their saved cache.")
        self.used = QLabel()
        self.used.setObjectName("cacheUsage")
        self.used.setWordWrap(True)
        self.clear_button = QPushButton("Clear Caches")
        self.clear_button.setObjectName("clearCaches")
        self.clear_button.setToolTip("Forget every cache, in memory and on disk. Chats stay.")
        self.clear_button.clicked.connect(self.clear)
        used_row = QHBoxLayout()
        used_row.addWidget(self.used, 1)
        used_row.addWidget(self.clear_button)
        self.about = QLabel(ABOUT)
        self.about.setObjectName("memoryEstimate")  # the dialog's quiet note style
        self.about.setWordWrap(True)

        form = QFormLayout(self)
        form.addRow(self.enabled)
        form.addRow("Disk budget:", self.budget)
        form.addRow("Disk used:", used_row)
        form.addRow("", self.about)

        self.enabled.toggled.connect(self.budget.setEnabled)
        self.budget.setEnabled(settings.cache_enabled)
        if control is not None:
            control.changed.connect(self.show_usage)
        self.refresh()

    def values(self) -> dict[str, Any]:
        """Keyword arguments for ChatSettings."""
        return {"cache_enabled": self.enabled.isChecked(), "cache_disk_gb": self.budget.value()}

    def refresh(self) -> None:
        self.show_usage(self._control.usage() if self._control is not None else None)

    def show_usage(self, usage: Any) -> None:
        self.used.setText(usage_text(usage))
        self.used.setToolTip(usage.folder if usage is not None and usage.folder else "")
        self.clear_button.setEnabled(self._control is not None)

    def clear(self) -> None:
        """Runs on the engine thread; the label says what is left once it is done."""
        if self._control is None:
            return
        self.clear_button.setEnabled(False)
        self.used.setText("Clearing…")
        self._control.clear()
