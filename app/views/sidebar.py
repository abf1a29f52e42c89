"""Conversations list with new, rename, delete, and full-text search over the history.

Deleting asks no question: it is undoable (Undo, and the "Recently Deleted" button at the foot).
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.views.restyle import set_style_property

CONVERSATION_ROLE = Qt.ItemDataRole.UserRole
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 1
SEARCH_DELAY_MS = 150


class Sidebar(QFrame):
    """Shows conversations, or search hits while the search box has text.

    The sidebar never touches the store: it asks (signals) and is told (set_* methods).
    """

    conversationSelected = Signal(int, object)  # conversation id, message id or None
    newChatRequested = Signal()
    renameRequested = Signal(int, str)
    deleteRequested = Signal(int)  # moves it to Recently Deleted (undoable)
    recentlyDeletedRequested = Signal()
    searchChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.search_box = QLineEdit()
        self.search_box.setObjectName("searchBox")
        self.search_box.setPlaceholderText("Search chats")
        self.search_box.setClearButtonEnabled(True)
        self.new_button = QPushButton("New Chat")
        self.new_button.setObjectName("newChatButton")
        self.new_button.setToolTip("New chat")
        self.new_button.clicked.connect(self.newChatRequested)

        self.list = QListWidget()
        self.list.setObjectName("conversationList")
        self.list.setFrameShape(QFrame.Shape.NoFrame)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_renamed)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setWordWrap(False)
        # A long title is elided ("Quarterly budget revi…"), never scrolled sideways.
        self.list.setItemDelegate(_FitWidthDelegate(self.list))
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)

        for key in (QKeySequence.StandardKey.Delete, QKeySequence("Ctrl+Backspace")):
            shortcut = QShortcut(QKeySequence(key), self.list)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(self._delete_current)

        self.hint = QLabel()
        self.hint.setObjectName("sidebarHint")
        self.hint.setWordWrap(True)
        self.hint.setVisible(False)

        self.deleted_button = QPushButton()
        self.deleted_button.setObjectName("recentlyDeletedButton")
        self.deleted_button.setFlat(True)
        self.deleted_button.setToolTip("Deleted chats, kept for a while: restore or delete now")
        self.deleted_button.clicked.connect(self.recentlyDeletedRequested)
        self.set_deleted_count(0)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.search_box, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 12, 10, 10)
        layout.setSpacing(8)
        layout.addWidget(self.new_button)
        layout.addLayout(top)
        layout.addWidget(self.hint)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.deleted_button)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(lambda: self.searchChanged.emit(self.query()))
        self.search_box.textChanged.connect(lambda _: self._search_timer.start())
        self._filling = False
        self._searching = False

    def query(self) -> str:
        return self.search_box.text().strip()

    @property
    def searching(self) -> bool:
        return self._searching

    def set_deleted_count(self, count: int) -> None:
        """The foot button: "Recently Deleted (3)"; hidden while nothing is there."""
        self.deleted_button.setText(f"Recently Deleted ({count})")
        self.deleted_button.setVisible(count > 0)

    def focus_search(self) -> None:
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    # -- contents

    def set_conversations(self, conversations: list, current_id: int | None) -> None:
        self._searching = False
        self._fill()
        for conv in conversations:
            item = QListWidgetItem(conv.title)
            item.setData(CONVERSATION_ROLE, conv.id)
            item.setToolTip(conv.title)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.list.addItem(item)
            if conv.id == current_id:
                self.list.setCurrentItem(item)
        self.hint.setVisible(False)
        self._filling = False

    def set_search_results(self, query: str, hits: list) -> None:
        """Hits from Store.search: the title, and a snippet with the matches in bold."""
        self._searching = True
        self._fill()
        for hit in hits:
            item = QListWidgetItem()
            item.setData(CONVERSATION_ROLE, hit.conversation_id)
            item.setData(MESSAGE_ROLE, hit.message_id)
            label = QLabel(f"<b>{_escape(hit.title)}</b><br><span>{hit.snippet_html()}</span>")
            label.setObjectName("searchHit")
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.setContentsMargins(6, 4, 6, 4)
            item.setSizeHint(label.sizeHint().expandedTo(label.minimumSizeHint()))
            item.setToolTip(hit.title)
            self.list.addItem(item)
            self.list.setItemWidget(item, label)
        self.hint.setText(f"No chats contain “{query}”." if not hits else f"{len(hits)} found")
        self.hint.setVisible(True)
        self._filling = False

    def _fill(self) -> None:
        self._filling = True
        self.list.clear()

    def select_conversation(self, conversation_id: int | None) -> None:
        """Highlights the row without emitting conversationSelected."""
        self._filling = True
        try:
            self.list.setCurrentRow(-1)  # what setCurrentItem(None) does
            for i in range(self.list.count()):
                item = self.list.item(i)
                if item.data(CONVERSATION_ROLE) == conversation_id:
                    self.list.setCurrentItem(item)
                    break
        finally:
            self._filling = False

    def rename_item(self, conversation_id: int, title: str) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(CONVERSATION_ROLE) == conversation_id and not self._searching:
                self._filling = True
                item.setText(title)
                item.setToolTip(title)
                self._filling = False

    # -- user actions

    def _current_changed(self, current: QListWidgetItem | None, previous) -> None:
        for item, selected in ((previous, False), (current, True)):
            label = self.list.itemWidget(item) if item is not None else None
            if label is not None:  # search hits: the label follows the selection colours
                set_style_property(label, "selected", selected)
        if self._filling or current is None:
            return
        self.conversationSelected.emit(current.data(CONVERSATION_ROLE), current.data(MESSAGE_ROLE))

    def _item_renamed(self, item: QListWidgetItem) -> None:
        if self._filling or self._searching:
            return
        title = " ".join(item.text().split())
        if title:
            self.renameRequested.emit(item.data(CONVERSATION_ROLE), title)

    def _context_menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None or self._searching:
            return
        menu = QMenu(self)
        rename = menu.addAction("Rename")
        delete = menu.addAction("Delete")
        delete.setToolTip("Moves the chat to Recently Deleted; Undo brings it back")
        chosen = menu.exec(self.list.viewport().mapToGlobal(pos))
        if chosen is rename:
            self.list.editItem(item)
        elif chosen is delete:
            self.deleteRequested.emit(item.data(CONVERSATION_ROLE))

    def _delete_current(self) -> None:
        item = self.list.currentItem()
        if item is not None and not self._searching:
            self.deleteRequested.emit(item.data(CONVERSATION_ROLE))


class _FitWidthDelegate(QStyledItemDelegate):
    """Rows no wider than the list, so Qt elides long titles instead of widening the rows."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        hint = super().sizeHint(option, index)
        view = self.parent()
        width = view.viewport().width() if isinstance(view, QAbstractItemView) else hint.width()
        return QSize(min(hint.width(), width), hint.height())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
