"""The app's name, organization and resources: shared by main, the self-test and the packaging,
so none of them imports another for it."""

from __future__ import annotations

import sys
from pathlib import Path

APP_NAME = "Nemo Chat"
ORG_NAME = "Nemo Chat"
ORG_DOMAIN = "nemochat.app"


def resources_dir() -> Path:
    """resources/ next to the package, or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"
