"""The history file's schema: versioned migrations and the runner that applies them.

The schema version lives in PRAGMA user_version; each migration runs in its own transaction.
"""

from __future__ import annotations

import sqlite3

# Trigram FTS: substring matches (so prefixes too), case-insensitive, and CJK text without spaces
# is searchable. Terms under 3 characters cannot use a trigram index; search() scans for those.
# Only rows that are not 'streaming' are indexed, so update_answer() checkpoints stay cheap.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # v1
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            system_prompt TEXT,
            model TEXT)""",
        "CREATE INDEX conversations_by_updated ON conversations(updated_at DESC, id DESC)",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
            content TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'failed')),
            error TEXT,
            stats TEXT,
            attachments TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (conversation_id, position))""",
        "CREATE INDEX messages_streaming ON messages(id) WHERE status = 'streaming'",
        """CREATE VIRTUAL TABLE messages_fts USING fts5(
            content, content='messages', content_rowid='id', tokenize='trigram')""",
        """CREATE VIRTUAL TABLE conversations_fts USING fts5(
            title, content='conversations', content_rowid='id', tokenize='trigram')""",
        """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
            WHEN new.status != 'streaming' BEGIN
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END""",
        """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
            WHEN old.status != 'streaming' BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
        END""",
        """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content)
                SELECT 'delete', old.id, old.content WHERE old.status != 'streaming';
            INSERT INTO messages_fts(rowid, content)
                SELECT new.id, new.content WHERE new.status != 'streaming';
        END""",
        """CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
            INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title);
        END""",
        """CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
            INSERT INTO conversations_fts(conversations_fts, rowid, title)
                VALUES ('delete', old.id, old.title);
        END""",
        """CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
            INSERT INTO conversations_fts(conversations_fts, rowid, title)
                VALUES ('delete', old.id, old.title);
            INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title);
        END""",
    ),
    (  # v2: soft delete. A deleted conversation waits in "Recently deleted" until it is purged.
        "ALTER TABLE conversations ADD COLUMN deleted_at TEXT",
        "CREATE INDEX conversations_deleted ON conversations(deleted_at)"
        " WHERE deleted_at IS NOT NULL",
    ),
    (  # v3: part summaries of long-document runs, kept as they finish so a stopped one resumes
        """CREATE TABLE summary_parts (
            id INTEGER PRIMARY KEY,
            question_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            kind TEXT NOT NULL DEFAULT 'summary',
            digest TEXT NOT NULL,
            part_index INTEGER NOT NULL,
            first_page INTEGER,
            last_page INTEGER,
            source TEXT,
            text TEXT NOT NULL,
            num_ctx INTEGER NOT NULL,
            part_cap INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (question_id, digest))""",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


class MigrationError(Exception):
    """A migration step failed (not from corruption) and was rolled back; names the step."""

    def __init__(self, target: int, cause: sqlite3.DatabaseError) -> None:
        super().__init__(f"schema v{target}: {cause}")
        self.target = target


def is_corruption(err: sqlite3.DatabaseError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(err)
    return "not a database" in text or "malformed" in text


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Upgrades db from schema `version` to SCHEMA_VERSION, one transaction per step.

    A failing step is rolled back; corruption errors propagate as they are, others as
    MigrationError (from the sqlite3 error).
    """
    for target in range(version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target - 1]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
            db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            db.execute("ROLLBACK")
            if is_corruption(e):
                raise
            raise MigrationError(target, e) from e
