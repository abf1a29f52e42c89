"""The history's plain data: conversations, messages, attachments, their states and errors.

No SQL here (app.store.rows reads and writes rows; app.store.store is the database).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

APP_NAME = "Nemo Chat"
FILE_NAME = "history.sqlite3"
DEFAULT_TITLE = "New chat"
ROLES = ("user", "assistant", "system")


class MessageStatus(StrEnum):
    """A stored message's state: an answer is 'streaming' until it ends one of the other ways."""

    COMPLETE = "complete"
    STREAMING = "streaming"
    STOPPED = "stopped"
    FAILED = "failed"


STATUSES = tuple(MessageStatus)
DELETED_KEEP_DAYS = 30  # "Recently deleted" keeps a conversation this long, then purges it


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
    # "page", "slide", "chapter", "sheet"; "" where pages are not real (DOCX, TXT); None in rows
    # stored before it existed: then the file's extension says.
    unit: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Attachment:
        return cls(
            d["name"], d.get("text", ""), d.get("path"), d.get("pages"), d.get("tokens"),
            d.get("unit"),
        )  # fmt: skip

    def count_label(self) -> str | None:
        """'12 pages', '3 slides' for paginated documents; None for DOCX, TXT and the like."""
        unit = self.unit
        if unit is None:
            unit = _UNIT_BY_SUFFIX.get(Path(self.name).suffix.lower(), "")
        if not unit or not self.pages:
            return None
        return f"{self.pages} {unit}{'s' if self.pages != 1 else ''}"


# What engine.docs.document.UNITS calls a page of each paginated kind, by file suffix.
_UNIT_BY_SUFFIX = {".pdf": "page", ".epub": "chapter", ".pptx": "slide", ".xlsx": "sheet"}


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    created_at: datetime
    updated_at: datetime
    system_prompt: str | None
    model: str | None
    deleted_at: datetime | None = None  # set while it waits in "Recently deleted"

    def days_left(self, now: datetime | None = None) -> int:
        """Whole days (rounded up) until a deleted conversation is purged; 0 when due."""
        if self.deleted_at is None:
            return DELETED_KEEP_DAYS
        now = now or datetime.now(timezone.utc)
        left = self.deleted_at + timedelta(days=DELETED_KEEP_DAYS) - now
        return max(0, -(-left // timedelta(days=1)))


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
