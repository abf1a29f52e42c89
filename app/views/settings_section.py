"""A group of settings that SettingsDialog.add_section places (server, local API, caches)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QGroupBox


class SettingsSection(QGroupBox):
    """values() feeds the dialog's ChatSettings; attach() and commit() where a group needs them."""

    def values(self) -> dict[str, Any]:
        return {}

    def attach(self, dialog: Any) -> None:
        """Wire the group to the rest of the dialog (the backend's context limit)."""

    def commit(self) -> bool:
        """Act at OK, before the dialog closes (the local API); False keeps the dialog open."""
        return True
