"""Undoable deleting, "Recently Deleted", and the automatic history backups, for the window.

Deleting a chat moves it to Recently Deleted (Store.delete_conversation); the status bar then
offers Undo, and Edit ▸ Undo Delete (Ctrl/Cmd+Z) restores the latest deletion. Qt gives the key
to a focused text field first (its ShortcutOverride), so Ctrl+Z in the composer or the search box
undoes typing there, never a deletion. At start-up chats deleted more than DELETED_KEEP_DAYS
ago are purged; the history is backed up a few seconds after start and then whenever the newest
backup is older than backup.MAX_AGE (checked hourly), off the launch path.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from app.store.store import DELETED_KEEP_DAYS, Store, StoreError
from app.views.recently_deleted import DeletedChat, RecentlyDeletedDialog
from app.views.undo_notice import UndoNotice

if TYPE_CHECKING:
    from app.chat.chat_parts import Navigator
    from app.views.sidebar import Sidebar
    from app.views.status_bar import ChatStatusBar

FIRST_BACKUP_MS = 3_000
BACKUP_CHECK_MS = 60 * 60 * 1000
_ERRORS = (sqlite3.Error, StoreError, OSError)


class DeletionFlow(QObject):
    """Undo, Recently Deleted and backups; the window puts its actions and notice in place."""

    def __init__(
        self,
        store: Store,
        status: ChatStatusBar,
        sidebar: Sidebar,
        navigator: Navigator,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.store, self.status, self.sidebar = store, status, sidebar
        self.navigator = navigator  # refresh_sidebar, open_conversation (after a restore)
        self._dialog_parent = parent
        self._undo_ids: list[int] = []  # this session's deletions, latest last
        self.dialog: RecentlyDeletedDialog | None = None

        self.notice = UndoNotice()  # for the status bar
        self.notice.undoRequested.connect(self.undo)
        self.undo_action = QAction("Undo Delete", self)
        self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        self.undo_action.setEnabled(False)
        self.undo_action.triggered.connect(self.undo)
        self.recently_deleted_action = QAction("Recently Deleted…", self)
        self.recently_deleted_action.triggered.connect(self.open_recently_deleted)
        sidebar.recentlyDeletedRequested.connect(self.open_recently_deleted)

        QTimer.singleShot(0, self.purge_expired)  # after on_purged hooks made with the window
        QTimer.singleShot(FIRST_BACKUP_MS, self.backup)
        self._backup_timer = QTimer(self)
        self._backup_timer.setInterval(BACKUP_CHECK_MS)
        self._backup_timer.timeout.connect(self.backup)
        self._backup_timer.start()
        self._refresh()

    # -- deleting and undo

    def deleted(self, conversation_id: int) -> None:
        """The window moved this chat to Recently Deleted: offer Undo."""
        try:
            title = self.store.get_conversation(conversation_id, include_deleted=True).title
        except _ERRORS:
            title = "the chat"
        if conversation_id in self._undo_ids:
            self._undo_ids.remove(conversation_id)
        self._undo_ids.append(conversation_id)
        shortcut = self.undo_action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if len(title) > 28:  # short: the status bar keeps room for the context meter at 720 px
            title = title[:27].rstrip() + "…"
        self.notice.show_message(f"Deleted “{title}”.", shortcut)
        self._refresh()

    def undo(self) -> None:
        """Restores the latest deletion of this session that is still in Recently Deleted."""
        while self._undo_ids:
            conversation_id = self._undo_ids.pop()
            if self.restore([conversation_id]):
                return
        self._refresh()

    def restore(self, ids: list[int]) -> list[int]:
        """Restores these chats and opens the last of them; returns the ids restored."""
        restored = []
        try:
            for conversation_id in ids:
                if self.store.restore_conversation(conversation_id):
                    restored.append(conversation_id)
        except _ERRORS as e:
            self.status.set_message(f"Could not restore the chat: {e}", True)
        self._undo_ids = [i for i in self._undo_ids if i not in restored]
        self.notice.hide()
        self.navigator.refresh_sidebar()
        if restored:
            self.navigator.open_conversation(restored[-1])
        self._refresh()
        return restored

    def purge(self, ids: list[int]) -> None:
        """Delete Now: for good (Store.on_purged hooks run)."""
        try:
            for conversation_id in ids:
                self.store.purge_conversation(conversation_id)
        except _ERRORS as e:
            self.status.set_message(f"Could not delete the chat: {e}", True)
        self._undo_ids = [i for i in self._undo_ids if i not in ids]
        self._refresh()

    def purge_expired(self) -> None:
        try:
            self.store.purge_expired()
        except _ERRORS as e:
            self.status.set_message(f"Could not clean up Recently Deleted: {e}", True)
        self._refresh()

    # -- Recently Deleted

    def open_recently_deleted(self) -> RecentlyDeletedDialog:
        if self.dialog is None:
            self.dialog = RecentlyDeletedDialog(DELETED_KEEP_DAYS, self._dialog_parent)
            self.dialog.restoreRequested.connect(self.restore)
            self.dialog.purgeRequested.connect(self.purge)
        self._refresh()
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def _refresh(self) -> None:
        """The Undo action, the sidebar's count and an open dialog follow the store."""
        try:
            deleted = self.store.list_deleted()
        except _ERRORS:
            deleted = []
        still = {c.id for c in deleted}
        self._undo_ids = [i for i in self._undo_ids if i in still]
        self.undo_action.setEnabled(bool(self._undo_ids))
        if not self._undo_ids:
            self.notice.hide()
        self.sidebar.set_deleted_count(len(deleted))
        if self.dialog is not None:
            now = datetime.now(timezone.utc)
            rows = [
                DeletedChat(c.id, c.title, c.deleted_at, c.days_left(now))
                for c in deleted
                if c.deleted_at is not None  # always set in Recently Deleted
            ]
            self.dialog.set_chats(rows, now)

    # -- backups

    def backup(self) -> None:
        try:
            self.store.backup_if_due()
        except _ERRORS as e:  # the history itself is fine; say so without alarm
            self.status.set_message(f"Could not back up the chat history: {e}", True)
