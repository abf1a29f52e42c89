"""Documents handed to the app by the OS: a Dock drop or "Open With" on macOS, argv on Linux.

macOS delivers them as QFileOpenEvent to the QApplication (also before the window exists);
Linux desktops start `nemo-chat FILE...` (the .desktop file's %F). The window offers Summarize.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QFileOpenEvent


class FileOpenFilter(QObject):
    """Install on the QApplication; emits fileOpened(path) for every QEvent.FileOpen."""

    fileOpened = Signal(str)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            path = event.file() or event.url().toLocalFile()
            if path:
                self.fileOpened.emit(path)
                return True  # handled: Qt's default would ignore it anyway
        return super().eventFilter(watched, event)


# The app's options that take a value (app/main.py): that value is never a document.
VALUE_OPTIONS = ("--model", "--history")


def paths_from_argv(argv: list[str], value_options: tuple[str, ...] = VALUE_OPTIONS) -> list[str]:
    """The existing files among the positional arguments (argv without the program name)."""
    paths: list[str] = []
    skip_next = after_dashes = False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif after_dashes or not arg.startswith("-"):
            if os.path.isfile(arg):
                paths.append(os.path.abspath(arg))
        elif arg == "--":
            after_dashes = True
        else:
            skip_next = arg in value_options  # "--model DIR", not "--model=DIR"
    return paths
