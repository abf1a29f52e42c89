"""The "Recently deleted" dialog: deleted chats with the days they have left, Restore, Delete Now.

A passive view: it is given plain DeletedChat rows and asks through signals; the deletion flow
(app.chat.deletions) does the store work and calls set_chats() again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.views.restyle import set_style_property

ID_ROLE = Qt.ItemDataRole.UserRole


@dataclass(frozen=True)
class DeletedChat:
    id: int
    title: str
    deleted_at: datetime  # aware
    days_left: int


def deleted_when(deleted_at: datetime, now: datetime) -> str:
    """'Deleted today', 'Deleted yesterday', 'Deleted 5 days ago' (by calendar day, local)."""
    days = (now.astimezone().date() - deleted_at.astimezone().date()).days
    if days <= 0:
        return "Deleted today"
    if days == 1:
        return "Deleted yesterday"
    return f"Deleted {days} days ago"


def days_left_text(days: int) -> str:
    if days <= 0:
        return "deleted for good at the next start"
    return "1 day left" if days == 1 else f"{days} days left"


class RecentlyDeletedDialog(QDialog):
    restoreRequested = Signal(list)  # conversation ids
    purgeRequested = Signal(list)  # conversation ids, after the user confirmed

    def __init__(self, keep_days: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("recentlyDeleted")
        self.setWindowTitle("Recently Deleted")
        self.resize(460, 380)
        self.setMinimumSize(340, 260)
        intro = QLabel(
            f"Deleted chats stay here for {keep_days} days, then they are deleted for good."
        )
        intro.setObjectName("recentlyDeletedIntro")
        intro.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("deletedList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.list.itemDoubleClicked.connect(lambda _item: self._restore())
        self.empty = QLabel("No recently deleted chats.")
        self.empty.setObjectName("deletedEmpty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.purge_button = QPushButton("Delete Now…")
        self.purge_button.setObjectName("purgeButton")
        self.purge_button.setToolTip("Delete the selected chats for good; this cannot be undone")
        self.purge_button.clicked.connect(self._purge)
        self.restore_button = QPushButton("Restore")
        self.restore_button.setObjectName("restoreButton")
        self.restore_button.setDefault(True)
        self.restore_button.clicked.connect(self._restore)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.purge_button)
        buttons.addStretch(1)
        buttons.addWidget(self.restore_button)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty, 1)
        layout.addLayout(buttons)
        self.set_chats([], datetime.now().astimezone())

    def set_chats(self, chats: list[DeletedChat], now: datetime) -> None:
        """Shows these rows (most recently deleted first), keeping the selection where it can."""
        selected = set(self.selected_ids())
        self.list.clear()
        for chat in chats:
            item = QListWidgetItem()
            item.setData(ID_ROLE, chat.id)
            item.setToolTip(chat.title)
            label = QLabel(
                f"<b>{_escape(_shorten(chat.title))}</b><br>"
                f"<span>{deleted_when(chat.deleted_at, now)}"
                f" · {days_left_text(chat.days_left)}</span>"
            )
            label.setObjectName("deletedRow")
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.setContentsMargins(6, 4, 6, 4)
            item.setSizeHint(label.sizeHint())
            self.list.addItem(item)
            self.list.setItemWidget(item, label)
            item.setSelected(chat.id in selected)
        if self.list.count() and not self.list.selectedItems():
            self.list.setCurrentRow(0)
        self.list.setVisible(bool(chats))
        self.empty.setVisible(not chats)
        self._update_buttons()

    def selected_ids(self) -> list[int]:
        return [item.data(ID_ROLE) for item in self.list.selectedItems()]

    def titles(self) -> list[str]:
        return [self.list.item(i).toolTip() for i in range(self.list.count())]

    def _update_buttons(self) -> None:
        any_selected = bool(self.list.selectedItems())
        self.restore_button.setEnabled(any_selected)
        self.purge_button.setEnabled(any_selected)
        for i in range(self.list.count()):  # the row labels follow the selection colours
            item = self.list.item(i)
            label = self.list.itemWidget(item)
            if label is not None and label.property("selected") != item.isSelected():
                set_style_property(label, "selected", item.isSelected())

    def _restore(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.restoreRequested.emit(ids)

    def _purge(self) -> None:
        ids = self.selected_ids()
        if ids and self.confirm_purge(len(ids)):
            self.purgeRequested.emit(ids)

    def confirm_purge(self, count: int) -> bool:
        what = "this chat" if count == 1 else f"these {count} chats"
        answer = QMessageBox.question(
            self,
            "Delete now",
            f"Delete {what} for good? This cannot be undone.",
            QMessageBox.StandardButton.Cancel | QMessageBox.StandardButton.Yes,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes


def _shorten(title: str, max_chars: int = 60) -> str:
    # The row never scrolls sideways; the tooltip has the whole title.
    return title if len(title) <= max_chars else title[: max_chars - 1].rstrip() + "…"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
