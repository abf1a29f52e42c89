"""Conversation history in SQLite: conversations, messages, answer checkpoints, recovery.

Plain sqlite3, no Qt. The GUI thread owns the Store (DESIGN rule 5); sqlite3's default
check_same_thread guards that. Timestamps are ISO-8601 UTC text in the file, aware datetimes here.
The schema is in store_schema, search in store_search, Markdown export in store_export.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from app.store import export as store_export
from app.store import search as store_search
from app.store.schema import SCHEMA_VERSION, MigrationError, is_corruption, migrate
from app.store.search import SearchHit

APP_NAME = "Nemo Chat"
FILE_NAME = "history.sqlite3"
DEFAULT_TITLE = "New chat"
ROLES = ("user", "assistant", "system")
STATUSES = ("complete", "streaming", "stopped", "failed")

_CONVERSATION_COLUMNS = "id, title, created_at, updated_at, system_prompt, model"
_MESSAGE_COLUMNS = (
    "id, conversation_id, position, role, content, status, error, stats, attachments, created_at"
)


class StoreError(Exception):
    """The history file cannot be used; the message names the file and the problem."""


class CorruptStoreError(StoreError):
    """The file is damaged or not an SQLite database; open_or_recover() moves it aside."""


class NewerSchemaError(StoreError):
    """The file was written by a newer Nemo Chat; left untouched (never 'recovered')."""


class NotFoundError(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Attachment:
    name: str
    text: str
    path: str | None = None
    pages: int | None = None
    tokens: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Attachment:
        return cls(d["name"], d.get("text", ""), d.get("path"), d.get("pages"), d.get("tokens"))


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    created_at: datetime
    updated_at: datetime
    system_prompt: str | None
    model: str | None


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    position: int
    role: str
    content: str
    status: str
    error: str | None
    stats: dict[str, Any] | None  # e.g. GenerationStats fields: tokens, ttft_s, decode_tps
    attachments: tuple[Attachment, ...]
    created_at: datetime


def default_path() -> Path:
    return Path(user_data_dir(APP_NAME, appauthor=False)) / FILE_NAME


def title_from_message(text: str, max_chars: int = 48) -> str:
    """A conversation title from the first user message: its first line, cut at a word."""
    line = next((s for s in text.splitlines() if s.strip()), "")
    line = " ".join(line.lstrip("#>*-` \t").split())
    if not line:
        return DEFAULT_TITLE
    if len(line) <= max_chars:
        return line
    cut = line[: max_chars - 1]
    if " " in cut[max_chars // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, ensure_ascii=False)


class Store:
    """The history database. Open with Store(path) or Store.open_or_recover(path)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._last_time = datetime.min.replace(tzinfo=timezone.utc)
        self.recovered_answers = 0  # 'streaming' rows left by a killed app, now 'stopped'
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
        """Open the store; a damaged file is renamed aside and a fresh one started.

        Returns (store, message); message says what was moved where, for the user, or is None.
        A file from a newer app version raises NewerSchemaError instead: it is not damaged.
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
            message = f"{e}. It was moved to {aside} and a new, empty history was started."
            return cls(path), message

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

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

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
        return self.get_conversation(cur.lastrowid)

    def get_conversation(self, conversation_id: int) -> Conversation:
        row = self._db.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"No conversation with id {conversation_id}")
        return _conversation(row)

    def list_conversations(self) -> list[Conversation]:
        """Newest updated first."""
        rows = self._db.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations ORDER BY updated_at DESC, id DESC"
        )
        return [_conversation(r) for r in rows]

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self._update_conversation(conversation_id, "title", title)

    def set_system_prompt(self, conversation_id: int, system_prompt: str | None) -> None:
        self._update_conversation(conversation_id, "system_prompt", system_prompt)

    def set_model(self, conversation_id: int, model: str | None) -> None:
        self._update_conversation(conversation_id, "model", model)

    def _update_conversation(self, conversation_id: int, column: str, value: str | None) -> None:
        cur = self._db.execute(
            f"UPDATE conversations SET {column} = ? WHERE id = ?", (value, conversation_id)
        )
        if cur.rowcount == 0:
            raise NotFoundError(f"No conversation with id {conversation_id}")

    def delete_conversation(self, conversation_id: int) -> None:
        """Deletes the conversation and (by cascade) its messages."""
        self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

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
            atts = _to_json([dataclasses.asdict(a) for a in items])
        with self._transaction():
            if not self._db.execute(
                "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone():
                raise NotFoundError(f"No conversation with id {conversation_id}")
            now = self._now()
            cur = self._db.execute(
                "INSERT INTO messages (conversation_id, position, role, content, status, error,"
                " stats, attachments, created_at) VALUES (?, (SELECT coalesce(max(position), -1)"
                " + 1 FROM messages WHERE conversation_id = ?), ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, conversation_id, role, content, status, error,
                 _to_json(stats), atts, now),
            )  # fmt: skip
            self._db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
        return self.get_message(cur.lastrowid)

    def get_message(self, message_id: int) -> Message:
        row = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"No message with id {message_id}")
        return _message(row)

    def messages(self, conversation_id: int) -> list[Message]:
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        )
        return [_message(r) for r in rows]

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
                (content, status, _to_json(stats), error, message_id),
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


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error; joins an open transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        self._outer = not self._db.in_transaction
        if self._outer:
            self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._outer:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _conversation(row: sqlite3.Row | tuple) -> Conversation:
    cid, title, created, updated, system_prompt, model = row
    return Conversation(cid, title, _time(created), _time(updated), system_prompt, model)


def _message(row: sqlite3.Row | tuple) -> Message:
    mid, cid, position, role, content, status, error, stats, atts, created = row
    attachments = tuple(Attachment.from_dict(a) for a in json.loads(atts)) if atts else ()
    stats_dict = json.loads(stats) if stats else None
    return Message(
        mid, cid, position, role, content, status, error, stats_dict, attachments, _time(created)
    )
