"""Models on disk, for the settings dialog: path, size, quantization; use, reveal, delete.

It reads an app.bridge.downloader.ModelLibrary handed in (models() -> LocalModel-like rows, delete(path));
no engine import here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.views.download_panel import format_size

REVEAL_LABEL = "Reveal in Finder" if sys.platform == "darwin" else "Show in File Manager"
PATH_ROLE = Qt.ItemDataRole.UserRole


def reveal(path: str) -> None:
    """Show the folder: selected in Finder on macOS, opened in the file manager elsewhere."""
    if sys.platform == "darwin":
        QProcess.startDetached("open", ["-R", path])
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def same_path(a: str | None, b: str | Path) -> bool:
    if not a:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


class ModelsPage(QWidget):
    """A list of the models folder; "Use This Model" asks the dialog to switch to one."""

    useRequested = Signal(str)

    def __init__(
        self, library: Any, current: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("modelsPage")
        self.library = library
        self.current = current  # the model in use: it cannot be deleted from under the engine

        title = QLabel("Models on disk")
        title.setObjectName("modelsTitle")
        self.tree = QTreeWidget()
        self.tree.setObjectName("modelsList")
        self.tree.setHeaderLabels(["Model", "Quantization", "Size", ""])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setFixedHeight(120)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.path_label = QLabel()
        self.path_label.setObjectName("modelPath")
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.use_button = QPushButton("Use This Model")
        self.reveal_button = QPushButton(REVEAL_LABEL)
        self.delete_button = QPushButton("Delete…")
        self.use_button.clicked.connect(self._use)
        self.reveal_button.clicked.connect(lambda: reveal(self.selected_path() or ""))
        self.delete_button.clicked.connect(self.delete_selected)
        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.reveal_button)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(title)
        layout.addWidget(self.tree)
        layout.addWidget(self.path_label)
        layout.addLayout(buttons)
        self.tree.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.refresh()

    def refresh(self) -> None:
        self.tree.clear()
        try:
            models = self.library.models()
        except OSError as e:
            models = []
            self.path_label.setText(f"Cannot read {self.library.root}: {e}")
        for m in models:
            status = "in use" if same_path(self.current, m.path) else ""
            if not m.complete:
                status = "incomplete"
            item = QTreeWidgetItem([m.name, m.quantization, format_size(m.size_bytes), status])
            item.setData(0, PATH_ROLE, str(m.path))
            item.setToolTip(0, str(m.path))
            self.tree.addTopLevelItem(item)
        first = self.tree.topLevelItem(0)
        if first is not None:
            self.tree.setCurrentItem(first)
        elif not self.path_label.text():
            self.path_label.setText(f"No models yet. Downloads go to {self.library.root}")
        self._update_buttons()

    def selected_path(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, PATH_ROLE) if item is not None else None

    def delete_selected(self) -> None:
        item = self.tree.currentItem()
        path = self.selected_path()
        if item is None or path is None or same_path(self.current, path):
            return
        answer = QMessageBox.question(
            self,
            "Delete model",
            f"Delete {item.text(0)} ({item.text(2)})?\n\n{path}\n\n"
            "The files are removed from disk; downloading it again takes a while.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.library.delete(path)
        except (OSError, ValueError) as e:
            QMessageBox.warning(self, "Delete model", f"Could not delete {path}: {e}")
        self.path_label.setText("")
        self.refresh()

    def _use(self) -> None:
        path = self.selected_path()
        if path:
            self.useRequested.emit(path)

    def _update_buttons(self) -> None:
        item = self.tree.currentItem()
        path = self.selected_path()
        if path:
            self.path_label.setText(path)
        in_use = same_path(self.current, path) if path else False
        complete = item is not None and item.text(3) != "incomplete"
        self.use_button.setEnabled(bool(path) and complete and not in_use)
        self.reveal_button.setEnabled(bool(path))
        self.delete_button.setEnabled(bool(path) and not in_use)
        self.delete_button.setToolTip("In use: choose another model first." if in_use else "")
