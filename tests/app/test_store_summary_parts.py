"""Part summaries in the history file (schema v3): the migration from v2, the Store API, the
rows engine.docs.summary_estimate.stored_parts() reads back, and cascades."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from app.store.schema import MIGRATIONS, SCHEMA_VERSION
from app.store.store import Store
from app.store.summary_parts import RunShape
from engine.docs.summarize_events import FinishedPart, PartDone
from engine.docs.summary_estimate import stored_parts

SHAPE = RunShape("summary", 8192, 16384)


def part(index: int, first: int, last: int, source: str = "book.pdf") -> PartDone:
    return PartDone(
        index, 3, f"Part {index} says [page {first}].", 1.0, 2.0, first, last, source,
        f"digest-{index}", 17,
    )  # fmt: skip


def test_a_v2_history_migrates_to_v3_keeping_everything(tmp_path: Path):
    path = tmp_path / "history.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:  # written by schema v2
        for step in MIGRATIONS[:2]:
            for statement in step:
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at) VALUES"
            " (3, 'Old', '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00')"
        )
        db.execute(
            "INSERT INTO messages (id, conversation_id, position, role, content, status,"
            " created_at) VALUES (9, 3, 0, 'user', 'Summarize book.pdf', 'complete',"
            " '2025-01-01T00:00:00+00:00')"
        )
    s = Store(path)
    try:
        assert [m.content for m in s.messages(3)] == ["Summarize book.pdf"]
        assert s.summary_parts.rows(9) == [] and s.summary_parts.shape(9) is None
        s.summary_parts.save(9, part(1, 1, 4).stored(), SHAPE)
        assert s.summary_parts.count(9) == 1
    finally:
        s.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 3
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "summary_parts" in tables


def test_parts_round_trip_to_the_engines_finished_parts(store: Store):
    q = store.add_question(None, "Summarize book.pdf")
    for p in (part(2, 5, 8), part(1, 1, 4)):  # batched parts finish out of order
        store.summary_parts.save(q.id, p.stored(), SHAPE)
    store.summary_parts.save(q.id, part(1, 1, 4).stored(), SHAPE)  # the same part: replaced
    rows = store.summary_parts.rows(q.id)
    assert [(r["index"], r["first_page"], r["last_page"]) for r in rows] == [(1, 1, 4), (2, 5, 8)]
    assert store.summary_parts.shape(q.id) == SHAPE
    finished = stored_parts(rows)
    assert finished == (
        FinishedPart("digest-1", "Part 1 says [page 1].", 1, 1, 4, "book.pdf"),
        FinishedPart("digest-2", "Part 2 says [page 5].", 2, 5, 8, "book.pdf"),
    )


def test_parts_go_with_their_question_and_can_be_cleared(store: Store):
    a = store.add_question(None, "Summarize a.pdf")
    b = store.add_question(a.conversation_id, "Summarize b.pdf")
    store.summary_parts.save(a.id, part(1, 1, 2), SHAPE)  # a PartDone itself is fine too
    store.summary_parts.save(b.id, part(1, 1, 2), SHAPE)
    assert store.summary_parts.clear(b.id) == 1 and store.summary_parts.count(b.id) == 0
    store.delete_messages_from(a.conversation_id, a.position)  # an edit: the question goes
    assert store.summary_parts.count(a.id) == 0
    c = store.add_question(None, "Summarize c.pdf")
    store.summary_parts.save(c.id, part(1, 1, 2), SHAPE)
    store.delete_conversation(c.conversation_id)  # to Recently deleted: still resumable
    assert store.summary_parts.count(c.id) == 1
    store.purge_conversation(c.conversation_id)  # gone for good
    assert store.summary_parts.count(c.id) == 0
