"""Conversation history in SQLite: conversations, messages, answer checkpoints, recovery.

Plain sqlite3, no Qt. The GUI thread owns the Store (DESIGN rule 5); sqlite3's default
check_same_thread guards that. Timestamps are ISO-8601 UTC text in the file, aware datetimes here.
The records are in app.store.records, rows and transactions in app.store.rows, the schema in
app.store.schema, search in app.store.search, Markdown export in app.store.export, backups in
app.store.backup, and deleting (Recently Deleted, restore, purge) in app.store.deletions.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from app.store import backup as store_backup
from app.store import export as store_export
from app.store import search as store_search
from app.store.deletions import Deletions
from app.store.records import (
    APP_NAME,
    DEFAULT_TITLE,
    DELETED_KEEP_DAYS,
    FILE_NAME,
    ROLES,
    STATUSES,
    Attachment,
    Conversation,
    CorruptStoreError,
    Message,
    MessageStatus,
    NewerSchemaError,
    NotFoundError,
    StoreError,
    title_from_message,
)
from app.store.rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    Transaction,
    conversation_from_row,
    inserted_id,
    message_from_row,
    to_json,
)
from app.store.schema import SCHEMA_VERSION, MigrationError, is_corruption, migrate
from app.store.search import SearchHit
from app.store.summary_parts import SummaryParts

# The records are part of this module's face: callers import them from here.
__all__ = [
    "APP_NAME", "DEFAULT_TITLE", "DELETED_KEEP_DAYS", "FILE_NAME", "ROLES", "STATUSES",
    "Attachment", "Conversation", "CorruptStoreError", "Message", "MessageStatus",
    "NewerSchemaError", "NotFoundError", "SearchHit", "Store", "StoreError", "default_path",
    "title_from_message",
]  # fmt: skip


def default_path() -> Path:
    return Path(user_data_dir(APP_NAME, appauthor=False)) / FILE_NAME


class Store(Deletions):
    """The history database. Open with Store(path) or Store.open_or_recover(path)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._last_time = datetime.min.replace(tzinfo=timezone.utc)
        self.recovered_answers = 0  # 'streaming' rows left by a killed app, now 'stopped'
        self._purged_callbacks: list[Callable[[int], None]] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)  # we run BEGIN/COMMIT
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"Cannot open the chat history {self.path}: {e}") from e
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise
        self.summary_parts = SummaryParts(self._db)  # long-document parts, for resuming

    def _open(self) -> None:
        db = self._db
        try:
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise CorruptStoreError(f"The chat history {self.path} is damaged: {check}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise NewerSchemaError(
                    f"The chat history {self.path} was written by a newer version of "
                    f"{APP_NAME} (schema v{version}; this version reads up to v{SCHEMA_VERSION}). "
                    f"Update {APP_NAME} to open it."
                )
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable up to the last sync
            db.execute("PRAGMA foreign_keys = ON")
            store_search.register_functions(db)
            self._migrate(version)
            cur = db.execute("UPDATE messages SET status = 'stopped' WHERE status = 'streaming'")
            self.recovered_answers = cur.rowcount
        except sqlite3.DatabaseError as e:
            if is_corruption(e):
                raise CorruptStoreError(
                    f"The chat history {self.path} is damaged or is not a database: {e}"
                ) from e
            raise StoreError(f"Cannot open the chat history {self.path}: {e}") from e

    def _migrate(self, version: int) -> None:
        try:
            migrate(self._db, version)
        except MigrationError as e:
            raise StoreError(f"Cannot upgrade the chat history {self.path} to {e}") from e.__cause__

    @classmethod
    def open_or_recover(cls, path: Path | str | None = None) -> tuple[Store, str | None]:
        """Open the store; a damaged file is renamed aside and the newest good backup restored
        (store.backup), or a fresh one started when no backup is good.

        Returns (store, message); message says what was moved where and from when the restored
        backup is, for the user, or is None. A file from a newer app version raises
        NewerSchemaError instead: it is not damaged.
        """
        path = Path(path) if path is not None else default_path()
        try:
            return cls(path), None
        except CorruptStoreError as e:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            aside = path.with_name(f"{path.stem}.corrupt-{stamp}{path.suffix}")
            n = 1
            while aside.exists():
                n += 1
                aside = path.with_name(f"{path.stem}.corrupt-{stamp}-{n}{path.suffix}")
            path.rename(aside)
            for side in ("-wal", "-journal"):  # keep them with the file they belong to
                src = path.with_name(path.name + side)
                if src.exists():
                    src.rename(aside.with_name(aside.name + side))
            path.with_name(path.name + "-shm").unlink(missing_ok=True)
            fresh = f"{e}. It was moved to {aside} and a new, empty history was started."
            restored = store_backup.restore_newest_good(path)
            if restored is None:
                return cls(path), fresh
            try:
                store = cls(path)
            except CorruptStoreError:  # passed its check, still unusable: start empty
                path.unlink(missing_ok=True)
                return cls(path), fresh
            message = (
                f"{e}. It was moved to {aside}, and the history was restored from the automatic "
                f"backup of {store_backup.describe_time(restored.taken_at)}: chats and messages "
                f"written after that time are not in it."
            )
            return store, message

    def close(self) -> None:
        self._db.close()

    # -- helpers

    def _now(self) -> str:
        # Strictly increasing, so "newest updated first" is well defined for fast writes.
        now = max(datetime.now(timezone.utc), self._last_time + timedelta(microseconds=1))
        self._last_time = now
        return now.isoformat(timespec="microseconds")

    def _touch(self, conversation_id: int) -> None:
        self._db.execute(
            "UPDATE conversations SET updated_at = ? WHERE id = ?", (self._now(), conversation_id)
        )

    def _transaction(self) -> Transaction:
        return Transaction(self._db)

    # -- conversations

    def create_conversation(
        self, title: str = DEFAULT_TITLE, system_prompt: str | None = None
    ) -> Conversation:
        now = self._now()
        cur = self._db.execute(
            "INSERT INTO conversations (title, created_at, updated_at, system_prompt)"
            " VALUES (?, ?, ?, ?)",
            (title, now, now, system_prompt),
        )
        return self.get_conversation(inserted_id(cur))

    def get_conversation(
        self, conversation_id: int, *, include_deleted: bool = False
    ) -> Conversation:
        """A deleted conversation is NotFoundError unless include_deleted."""
        live = "" if include_deleted else " AND deleted_at IS NULL"
        row = self._db.execute(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?{live}",
            (conversation_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"No conversation with id {conversation_id}")
        return conversation_from_row(row)

    def list_conversations(self) -> list[Conversation]:
        """Newest updated first; deleted ones are not listed (see list_deleted)."""
        rows = self._db.execute(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE deleted_at IS NULL"
            " ORDER BY updated_at DESC, id DESC"
        )
        return [conversation_from_row(r) for r in rows]

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self._update_conversation(conversation_id, "title", title)

    def set_system_prompt(self, conversation_id: int, system_prompt: str | None) -> None:
        self._update_conversation(conversation_id, "system_prompt", system_prompt)

    def set_model(self, conversation_id: int, model: str | None) -> None:
        self._update_conversation(conversation_id, "model", model)

    def _update_conversation(self, conversation_id: int, column: str, value: str | None) -> None:
        cur = self._db.execute(
            f"UPDATE conversations SET {column} = ? WHERE id = ? AND deleted_at IS NULL",
            (value, conversation_id),
        )
        if cur.rowcount == 0:
            raise NotFoundError(f"No conversation with id {conversation_id}")

    # -- backups

    def backup_if_due(
        self,
        max_age: timedelta = store_backup.MAX_AGE,
        keep: int = store_backup.KEEP,
        now: datetime | None = None,
    ) -> Path | None:
        """A new rotating backup (folder "backups" next to the file) when the newest is older
        than max_age; returns its path, or None when none was due."""
        return store_backup.backup_if_due(self._db, self.path, max_age, keep, now)

    def add_question(
        self,
        conversation_id: int | None,
        text: str,
        attachments: Sequence[Attachment] | None = None,
        *,
        system_prompt: str | None = None,
        title: str | None = None,
    ) -> Message:
        """A user message, stored before its answer is asked for: the conversation is created
        first when `conversation_id` is None (with `system_prompt`), then titled (`title`, or
        from its first message). Returns the message; its conversation_id names the chat."""
        if conversation_id is None:
            conversation_id = self.create_conversation(
                title or DEFAULT_TITLE, system_prompt=system_prompt or None
            ).id
        message = self.add_message(conversation_id, "user", text, attachments=attachments)
        self.auto_title(conversation_id)
        return message

    def auto_title(self, conversation_id: int) -> str:
        """Titles a still-untitled conversation from its first user message; returns the title."""
        conv = self.get_conversation(conversation_id)
        if conv.title != DEFAULT_TITLE:
            return conv.title
        row = self._db.execute(
            "SELECT content FROM messages WHERE conversation_id = ? AND role = 'user'"
            " ORDER BY position LIMIT 1",
            (conversation_id,),
        ).fetchone()
        title = title_from_message(row[0]) if row else DEFAULT_TITLE
        if title != conv.title:
            self.rename_conversation(conversation_id, title)
        return title

    # -- messages

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        status: str = "complete",
        attachments: Sequence[Attachment | Mapping[str, Any]] | None = None,
        *,
        error: str | None = None,
        stats: Mapping[str, Any] | Any | None = None,
    ) -> Message:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        atts = None
        if attachments:
            items = [
                a if isinstance(a, Attachment) else Attachment.from_dict(a) for a in attachments
            ]
            atts = to_json([dataclasses.asdict(a) for a in items])
        with self._transaction():
            if not self._db.execute(
                "SELECT 1 FROM conversations WHERE id = ? AND deleted_at IS NULL",
                (conversation_id,),
            ).fetchone():
                raise NotFoundError(f"No conversation with id {conversation_id}")
            now = self._now()
            cur = self._db.execute(
                "INSERT INTO messages (conversation_id, position, role, content, status, error,"
                " stats, attachments, created_at) VALUES (?, (SELECT coalesce(max(position), -1)"
                " + 1 FROM messages WHERE conversation_id = ?), ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, conversation_id, role, content, status, error,
                 to_json(stats), atts, now),
            )  # fmt: skip
            self._db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
        return self.get_message(inserted_id(cur))

    def get_message(self, message_id: int) -> Message:
        row = self._db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"No message with id {message_id}")
        return message_from_row(row)

    def messages(self, conversation_id: int) -> list[Message]:
        rows = self._db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        )
        return [message_from_row(r) for r in rows]

    def begin_answer(self, conversation_id: int) -> Message:
        """An empty 'streaming' assistant row, stored before generation starts."""
        return self.add_message(conversation_id, "assistant", "", status="streaming")

    def update_answer(self, message_id: int, content: str) -> bool:
        """Checkpoints streaming text (one row write, no index work). False if not streaming."""
        cur = self._db.execute(
            "UPDATE messages SET content = ? WHERE id = ? AND status = 'streaming'",
            (content, message_id),
        )
        return cur.rowcount == 1

    def finish_answer(
        self,
        message_id: int,
        content: str,
        status: str = "complete",
        stats: Mapping[str, Any] | Any | None = None,
        error: str | None = None,
    ) -> Message:
        if status not in ("complete", "stopped", "failed"):
            raise ValueError(f"an answer finishes as complete, stopped or failed, not {status!r}")
        with self._transaction():
            msg = self.get_message(message_id)
            self._db.execute(
                "UPDATE messages SET content = ?, status = ?, stats = ?, error = ? WHERE id = ?",
                (content, status, to_json(stats), error, message_id),
            )
            self._touch(msg.conversation_id)
        return self.get_message(message_id)

    def edit_message(self, message_id: int, content: str) -> Message:
        with self._transaction():
            msg = self.get_message(message_id)
            self._db.execute("UPDATE messages SET content = ? WHERE id = ?", (content, message_id))
            self._touch(msg.conversation_id)
        return self.get_message(message_id)

    def delete_messages_from(self, conversation_id: int, position: int) -> int:
        """Deletes the messages at `position` and after (edit-and-resend, regenerate)."""
        with self._transaction():
            cur = self._db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND position >= ?",
                (conversation_id, position),
            )
            self._touch(conversation_id)
        return cur.rowcount

    # -- search and export

    def search(self, query: str, limit: int = 100) -> list[SearchHit]:
        """Conversations whose title, and messages whose text, contain every term of `query`.

        Arbitrary user text is safe: every term is quoted. Matching is by substring, ignoring
        case (accents count: "cafe" does not find "café"). Title hits come first, then messages
        by relevance.
        """
        return store_search.search(self._db, query, limit)

    def export_markdown(self, conversation_id: int) -> str:
        """The conversation as Markdown: title, system prompt, messages under role headings."""
        conv = self.get_conversation(conversation_id)
        return store_export.export_markdown(conv, self.messages(conversation_id), APP_NAME)
