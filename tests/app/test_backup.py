"""Automatic history backups: rotation, and restoring the newest good copy of a damaged file."""

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.store import backup
from app.store.store import Store

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


def _fill(store: Store, title: str, messages: int = 1) -> int:
    conv = store.create_conversation(title)
    for i in range(messages):
        store.add_message(conv.id, "user", f"{title} message {i} " + "x" * 400)
    return conv.id


def _scribble(path: Path) -> None:
    """Overwrites a page in the middle (a message page that opening alone never reads)."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    assert len(data) // page_size > 20
    middle = len(data) // page_size // 2 * page_size
    data[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_backups_rotate_keeping_the_newest_and_only_when_due(path: Path):
    store = Store(path)
    try:
        made = []
        for day in range(5):
            _fill(store, f"day {day}")
            now = T0 + timedelta(days=day)
            made.append(store.backup_if_due(now=now))
            assert store.backup_if_due(now=now + timedelta(hours=23)) is None  # not due yet
        assert all(p is not None for p in made)
        kept = backup.list_backups(path)
        assert [b.path for b in kept] == made[:1:-1]  # the 3 newest, newest first
        assert [b.taken_at for b in kept] == [T0 + timedelta(days=d) for d in (4, 3, 2)]
        assert sorted(backup.backup_folder(path).iterdir()) == sorted(made[2:])  # no leftovers
        assert kept[0].path.parent == path.parent / "backups"
        # The clock went back a day: a backup from "the future" does not stop a new one.
        assert store.backup_if_due(now=T0 + timedelta(days=3)) is not None
        assert len(backup.list_backups(path)) == 3
    finally:
        store.close()


def test_a_backup_is_a_checked_self_contained_snapshot(path: Path):
    store = Store(path)
    try:
        cid = _fill(store, "before", messages=3)
        copy = store.backup_if_due(now=T0)
        _fill(store, "after")
    finally:
        store.close()
    assert backup.is_good(copy)
    assert not copy.with_name(copy.name + "-wal").exists()
    with sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        titles = [r[0] for r in db.execute("SELECT title FROM conversations")]
        assert titles == ["before"]
        assert db.execute("SELECT count(*) FROM messages WHERE conversation_id = ?", (cid,)).fetchone()[0] == 3  # fmt: skip


@pytest.mark.parametrize("damage", [_scribble, _truncate], ids=["scribbled", "truncated"])
def test_damaged_history_is_restored_from_the_newest_backup_and_says_from_when(path: Path, damage):
    store = Store(path)
    kept = _fill(store, "Kept chat", messages=60)
    store.backup_if_due(now=T0)
    later = _fill(store, "Written after the backup", messages=60)
    store.close()
    damage(path)
    damaged = path.read_bytes()

    restored, message = Store.open_or_recover(path)
    try:
        assert [c.id for c in restored.list_conversations()] == [kept]
        assert len(restored.messages(kept)) == 60
        assert restored.messages(later) == []
        [aside] = path.parent.glob("history.corrupt-*.sqlite3")
        assert aside.read_bytes() == damaged  # the damaged file is kept, untouched
        assert message is not None
        assert str(path) in message and str(aside) in message
        # Nothing written after the backup is claimed: the message says from when it is.
        assert backup.describe_time(T0) in message
        assert "after that time are not in it" in message
        restored.add_message(kept, "user", "the restored history works")  # and is writable
    finally:
        restored.close()
    again, message = Store.open_or_recover(path)
    assert message is None and len(again.messages(kept)) == 61
    again.close()


def test_a_damaged_newest_backup_is_skipped_for_an_older_good_one(path: Path):
    store = Store(path)
    first = _fill(store, "In both backups", messages=60)
    store.backup_if_due(now=T0)
    _fill(store, "Only in the newest backup", messages=60)
    newest = store.backup_if_due(now=T0 + timedelta(days=1))
    store.close()
    _scribble(newest)
    assert not backup.is_good(newest)
    _scribble(path)

    restored, message = Store.open_or_recover(path)
    try:
        assert [c.id for c in restored.list_conversations()] == [first]
        assert backup.describe_time(T0) in message
        assert backup.describe_time(T0 + timedelta(days=1)) not in message
    finally:
        restored.close()


def test_without_a_good_backup_a_fresh_history_is_started(path: Path):
    path.write_bytes(b"not a database\n" * 300)
    restored, message = Store.open_or_recover(path)
    try:
        assert restored.list_conversations() == []
        assert "new, empty history" in message and "restored from" not in message
    finally:
        restored.close()


def test_a_damaged_source_never_rotates_the_good_backups_out(path: Path):
    store = Store(path)
    _fill(store, "good", messages=60)
    good = [store.backup_if_due(now=T0 + timedelta(days=d)) for d in range(3)]
    store.close()
    _scribble(path)
    damaged = sqlite3.connect(path)  # opened without Store's check, as a running app might be
    try:
        with pytest.raises(sqlite3.DatabaseError):
            backup.write_backup(damaged, path, now=T0 + timedelta(days=5))
    finally:
        damaged.close()
    assert [b.path for b in backup.list_backups(path)] == good[::-1]
    assert not list(backup.backup_folder(path).glob("*.partial"))
