"""Rows in and out of SQLite for the Store: the columns read, row → record, JSON, transactions."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime
from typing import Any

from app.store.records import Attachment, Conversation, Message

CONVERSATION_COLUMNS = "id, title, created_at, updated_at, system_prompt, model, deleted_at"
MESSAGE_COLUMNS = (
    "id, conversation_id, position, role, content, status, error, stats, attachments, created_at"
)


def to_json(value: Any) -> str | None:
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, ensure_ascii=False)


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just wrote (sqlite3 types lastrowid as optional)."""
    if cur.lastrowid is None:
        raise sqlite3.InterfaceError("the INSERT wrote no row")
    return cur.lastrowid


class Transaction:
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


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def conversation_from_row(row: sqlite3.Row | tuple) -> Conversation:
    cid, title, created, updated, system_prompt, model, deleted = row
    deleted_at = parse_time(deleted) if deleted else None
    return Conversation(
        cid, title, parse_time(created), parse_time(updated), system_prompt, model, deleted_at
    )


def message_from_row(row: sqlite3.Row | tuple) -> Message:
    mid, cid, position, role, content, status, error, stats, atts, created = row
    attachments = tuple(Attachment.from_dict(a) for a in json.loads(atts)) if atts else ()
    stats_dict = json.loads(stats) if stats else None
    return Message(
        mid,
        cid,
        position,
        role,
        content,
        status,
        error,
        stats_dict,
        attachments,
        parse_time(created),
    )
