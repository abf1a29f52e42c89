"""Automatic backups of the history file, and restoring the newest good one after damage.

Copies are made with SQLite's online backup (a consistent snapshot while the app runs) into a
"backups" folder next to the database, named <stem>-<UTC time>.sqlite3 so that the name says
when each was taken. A new copy is checked before older ones are rotated out, so a damaged
history can never push the good copies out. Plain sqlite3, no Qt.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

FOLDER = "backups"
KEEP = 3  # rotating copies
MAX_AGE = timedelta(hours=24)  # a new copy when the newest is older than this
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Backup:
    path: Path
    taken_at: datetime  # aware, UTC


def backup_folder(db_path: Path) -> Path:
    return db_path.parent / FOLDER


def list_backups(db_path: Path) -> list[Backup]:
    """This database's backups, newest first (by the time in their names)."""
    folder = backup_folder(db_path)
    pattern = re.compile(
        re.escape(db_path.stem) + r"-(\d{8}T\d{6}Z)(?:-(\d+))?" + re.escape(db_path.suffix) + "$"
    )
    found = []
    for path in folder.glob(f"{db_path.stem}-*{db_path.suffix}") if folder.is_dir() else []:
        m = pattern.match(path.name)
        if m:
            taken = datetime.strptime(m.group(1), _STAMP).replace(tzinfo=timezone.utc)
            found.append((taken, int(m.group(2) or 1), path))
    found.sort(reverse=True)
    return [Backup(path, taken) for taken, _, path in found]


def write_backup(
    source: sqlite3.Connection, db_path: Path, keep: int = KEEP, now: datetime | None = None
) -> Path:
    """Copies the open database into a new backup, checks it, then drops all but `keep`.

    A copy that fails its check is removed and raises sqlite3.DatabaseError; nothing rotates.
    """
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    folder = backup_folder(db_path)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime(_STAMP)
    final = folder / f"{db_path.stem}-{stamp}{db_path.suffix}"
    n = 1
    while final.exists():
        n += 1
        final = folder / f"{db_path.stem}-{stamp}-{n}{db_path.suffix}"
    partial = final.with_name(final.name + ".partial")
    try:
        dest = sqlite3.connect(partial)
        try:
            source.backup(dest)
            # A self-contained file: no -wal/-shm needed to read it later, read-only.
            dest.execute("PRAGMA journal_mode = DELETE")
            check = dest.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dest.close()
        if check != "ok":
            raise sqlite3.DatabaseError(f"the new backup failed its check: {check}")
        os.replace(partial, final)  # never a half-written file under a backup's name
    finally:
        partial.unlink(missing_ok=True)
    for old in list_backups(db_path)[max(keep, 1) :]:
        old.path.unlink(missing_ok=True)
    return final


def backup_if_due(
    source: sqlite3.Connection,
    db_path: Path,
    max_age: timedelta = MAX_AGE,
    keep: int = KEEP,
    now: datetime | None = None,
) -> Path | None:
    """write_backup() when there is none younger than max_age (or the clock went back)."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    backups = list_backups(db_path)
    if backups and now - max_age < backups[0].taken_at <= now:
        return None
    return write_backup(source, db_path, keep, now)


def is_good(path: Path) -> bool:
    """The file opens read-only as SQLite and passes PRAGMA integrity_check."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            db.close()
    except sqlite3.Error:
        return False


def restore_newest_good(db_path: Path) -> Backup | None:
    """Writes the newest backup that passes its check to db_path (which must not exist).

    Returns the backup used, or None when there is no good one (db_path is left absent).
    """
    for backup in list_backups(db_path):
        if not is_good(backup.path):
            continue
        src = sqlite3.connect(f"{backup.path.resolve().as_uri()}?mode=ro", uri=True)
        dest = sqlite3.connect(db_path)
        try:
            src.backup(dest)
        except sqlite3.Error:
            dest.close()
            db_path.unlink(missing_ok=True)
            continue
        finally:
            src.close()
        dest.close()
        return backup
    return None


def describe_time(when: datetime) -> str:
    """A backup's time for the user, in local time: '3 March 2025 at 14:05'."""
    local = when.astimezone()
    return f"{local.day} {local:%B %Y} at {local:%H:%M}"
