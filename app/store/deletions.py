"""Deleting is undoable: "Recently Deleted", restore, purge, and the on_purged hooks.

delete_conversation() only marks the conversation deleted (it leaves the list and search);
restore_conversation() brings it back; purge_conversation() and purge_expired() (older than
DELETED_KEEP_DAYS) remove it for good, and only then are the on_purged() callbacks called, e.g.
to delete the conversation's KV-cache snapshot on disk. A part of app.store.store.Store.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from app.store.records import DELETED_KEEP_DAYS, Conversation
from app.store.rows import CONVERSATION_COLUMNS, Transaction, conversation_from_row

_log = logging.getLogger("app.store.store")  # where these messages were always logged


class Deletions:
    """The Store's deleting methods (a mixin: Store opens the database and keeps the clock)."""

    _db: sqlite3.Connection
    _purged_callbacks: list[Callable[[int], None]]

    def _now(self) -> str: ...  # Store's strictly increasing clock

    def delete_conversation(self, conversation_id: int) -> bool:
        """Moves the conversation to "Recently deleted" (restore_conversation undoes it).

        Its messages stay until it is purged; an answer still streaming into it is kept as
        'stopped' (nobody finishes it now). False if there was no such live conversation.
        """
        with Transaction(self._db):
            cur = self._db.execute(
                "UPDATE conversations SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (self._now(), conversation_id),
            )
            if cur.rowcount == 1:
                self._db.execute(
                    "UPDATE messages SET status = 'stopped'"
                    " WHERE conversation_id = ? AND status = 'streaming'",
                    (conversation_id,),
                )
        return cur.rowcount == 1

    def restore_conversation(self, conversation_id: int) -> bool:
        """Brings a deleted conversation back to its place in the list; False if not deleted."""
        cur = self._db.execute(
            "UPDATE conversations SET deleted_at = NULL WHERE id = ? AND deleted_at IS NOT NULL",
            (conversation_id,),
        )
        return cur.rowcount == 1

    def list_deleted(self) -> list[Conversation]:
        """The "Recently deleted" list, most recently deleted first."""
        rows = self._db.execute(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE deleted_at IS NOT NULL"
            " ORDER BY deleted_at DESC, id DESC"
        )
        return [conversation_from_row(r) for r in rows]

    def purge_conversation(self, conversation_id: int) -> bool:
        """Deletes the conversation and (by cascade) its messages for good; runs on_purged."""
        cur = self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        if cur.rowcount == 0:
            return False
        self._notify_purged([conversation_id])
        return True

    def purge_expired(self, now: datetime | None = None) -> list[int]:
        """Purges conversations deleted more than DELETED_KEEP_DAYS ago (at start-up)."""
        now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)  # text compares
        cutoff = (now - timedelta(days=DELETED_KEEP_DAYS)).isoformat(timespec="microseconds")
        with Transaction(self._db):
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM conversations WHERE deleted_at <= ?", (cutoff,)
                )
            ]
            self._db.executemany("DELETE FROM conversations WHERE id = ?", [(i,) for i in ids])
        self._notify_purged(ids)
        return ids

    def on_purged(self, callback: Callable[[int], None]) -> None:
        """Calls callback(conversation_id) after a conversation is purged for good.

        For what lives outside this file (e.g. the conversation's KV-cache snapshot on disk).
        Called on the GUI thread, after the delete is committed; never for a soft delete.
        An exception in one callback is logged and does not stop the others.
        """
        self._purged_callbacks.append(callback)

    def _notify_purged(self, ids: Sequence[int]) -> None:
        for conversation_id in ids:
            for callback in list(self._purged_callbacks):
                try:
                    callback(conversation_id)
                except Exception:  # a cleanup hook must not undo or break the purge
                    _log.exception("on_purged callback failed for %s", conversation_id)
