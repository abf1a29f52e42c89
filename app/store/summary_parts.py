"""Part summaries of long-document runs (schema v3 table summary_parts), kept as they finish.

A summary (or a question over a whole document) stops, or the app quits: the parts it read stay
here under the user message that asked for them, so "Continue summary" reads only the rest.
Rows are plain dicts with the keys engine.docs.summary_estimate.stored_parts() takes (digest,
text, index, first_page, last_page, source), plus the num_ctx and part cap they were read at:
parts are matched by content digest, and a run at another num_ctx or cap reuses nothing.
Deleting the question (edit, delete for good) deletes its parts by cascade.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, cast

_COLUMNS = "digest, part_index, first_page, last_page, source, text, num_ctx, part_cap, kind"


@dataclasses.dataclass(frozen=True)
class RunShape:
    """What a stored part was read with: resuming needs the same (else nothing matches)."""

    kind: str  # "summary" or "ask"
    num_ctx: int
    part_cap: int


def _row(value: Any) -> Mapping[str, Any]:
    if hasattr(value, "stored"):  # a PartDone: what it keeps to resume
        value = value.stored()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return cast(Mapping[str, Any], value)  # already a row (a dict read back)


class SummaryParts:
    """The summary_parts table of one open history database (GUI thread, like the Store)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def save(self, question_id: int, part: Any, shape: RunShape) -> None:
        """Keep one finished part (PartDone.stored(), or its dict); the same part replaces."""
        r = _row(part)
        self._db.execute(
            f"INSERT OR REPLACE INTO summary_parts (question_id, {_COLUMNS}, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (question_id, r["digest"], int(r.get("index") or 0), r.get("first_page"),
             r.get("last_page"), r.get("source"), r["text"], shape.num_ctx, shape.part_cap,
             shape.kind, datetime.now(timezone.utc).isoformat(timespec="microseconds")),
        )  # fmt: skip

    def rows(self, question_id: int) -> list[dict[str, Any]]:
        """The stored parts of `question_id`, by part index."""
        cur = self._db.execute(
            f"SELECT {_COLUMNS} FROM summary_parts WHERE question_id = ? ORDER BY part_index",
            (question_id,),
        )
        keys = ("digest", "index", "first_page", "last_page", "source", "text", "num_ctx")
        return [dict(zip((*keys, "part_cap", "kind"), r, strict=True)) for r in cur]

    def shape(self, question_id: int) -> RunShape | None:
        """How the stored parts were read (the latest run's), or None when none are stored."""
        row = self._db.execute(
            "SELECT kind, num_ctx, part_cap FROM summary_parts WHERE question_id = ?"
            " ORDER BY id DESC LIMIT 1",
            (question_id,),
        ).fetchone()
        return RunShape(*row) if row else None

    def count(self, question_id: int) -> int:
        return self._db.execute(
            "SELECT count(*) FROM summary_parts WHERE question_id = ?", (question_id,)
        ).fetchone()[0]

    def clear(self, question_id: int) -> int:
        """Forget them (a summary asked again from the start)."""
        cur = self._db.execute("DELETE FROM summary_parts WHERE question_id = ?", (question_id,))
        return cur.rowcount
