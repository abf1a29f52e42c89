"""The conversation store: schema, crash safety, search, migrations, recovery, export."""

import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.store.schema import MIGRATIONS, SCHEMA_VERSION
from app.store.search import MARK_END, MARK_START, parse_query
from app.store.store import (
    DEFAULT_TITLE,
    DELETED_KEEP_DAYS,
    Attachment,
    CorruptStoreError,
    NewerSchemaError,
    NotFoundError,
    Store,
    StoreError,
    default_path,
    title_from_message,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


@pytest.fixture
def store(path: Path):
    s = Store(path)
    yield s
    s.close()


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


def test_default_location_is_the_app_data_folder():
    p = default_path()
    assert p.name == "history.sqlite3"
    assert "Nemo Chat" in p.parent.name


def test_conversations_create_rename_delete_and_newest_first(store: Store):
    a = store.create_conversation()
    b = store.create_conversation("Plans", system_prompt="Be brief.")
    c = store.create_conversation("Recipes")
    assert a.title == DEFAULT_TITLE and a.system_prompt is None and a.model is None
    assert b.system_prompt == "Be brief."
    assert a.created_at.tzinfo == timezone.utc
    assert [x.id for x in store.list_conversations()] == [c.id, b.id, a.id]

    store.add_message(a.id, "user", "hello")  # activity moves a conversation to the top
    assert [x.id for x in store.list_conversations()] == [a.id, c.id, b.id]

    store.rename_conversation(b.id, "Holiday plans")
    store.set_model(b.id, "mistral-nemo-4bit")
    got = store.get_conversation(b.id)
    assert (got.title, got.model) == ("Holiday plans", "mistral-nemo-4bit")

    store.delete_conversation(c.id)
    assert [x.id for x in store.list_conversations()] == [a.id, b.id]
    with pytest.raises(NotFoundError, match=f"id {c.id}"):
        store.get_conversation(c.id)
    with pytest.raises(KeyError):  # NotFoundError is also a KeyError
        store.rename_conversation(c.id, "x")
    with pytest.raises(NotFoundError):
        store.add_message(c.id, "user", "to a deleted chat")


def test_messages_keep_order_fields_and_attachments(store: Store):
    conv = store.create_conversation()
    doc = {"name": "report.pdf", "path": "/tmp/report.pdf", "pages": 12, "tokens": 3456,
           "text": "Quarterly numbers…"}  # fmt: skip
    m0 = store.add_message(conv.id, "system", "You are terse.")
    m1 = store.add_message(conv.id, "user", "Summarize this", attachments=[doc])
    m2 = store.add_message(conv.id, "assistant", "Numbers went up.", stats={"tokens": 4})
    msgs = store.messages(conv.id)
    assert [m.id for m in msgs] == [m0.id, m1.id, m2.id]
    assert [m.position for m in msgs] == [0, 1, 2]
    assert [m.role for m in msgs] == ["system", "user", "assistant"]
    assert msgs[1].attachments == (Attachment(**doc),)
    assert msgs[1].attachments[0].text == "Quarterly numbers…"  # the text lives with the message
    assert msgs[2].stats == {"tokens": 4} and msgs[2].status == "complete"
    assert msgs[0].attachments == () and msgs[0].stats is None and msgs[0].error is None
    with pytest.raises(ValueError, match="role"):
        store.add_message(conv.id, "tool", "x")
    with pytest.raises(ValueError, match="status"):
        store.add_message(conv.id, "user", "x", status="done")


def test_purging_a_conversation_cascades_to_messages_and_index(store: Store, path: Path):
    keep = store.create_conversation("keep")
    gone = store.create_conversation("gone")
    store.add_message(keep.id, "user", "kept zebra text")
    store.add_message(gone.id, "user", "doomed zebra text")
    store.add_message(gone.id, "assistant", "doomed answer")
    store.delete_conversation(gone.id)
    assert len(store.messages(gone.id)) == 2  # only moved to "Recently deleted"
    assert store.purge_conversation(gone.id)
    assert store.messages(gone.id) == []
    with _raw(path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    assert [h.conversation_id for h in store.search("zebra")] == [keep.id]
    assert store.search("doomed") == []


def test_begin_update_finish_answer(store: Store):
    conv = store.create_conversation()
    store.add_message(conv.id, "user", "Tell me a story")
    ans = store.begin_answer(conv.id)
    assert (ans.role, ans.status, ans.content, ans.position) == ("assistant", "streaming", "", 1)
    assert store.update_answer(ans.id, "Once upon")
    assert store.get_message(ans.id).content == "Once upon"
    assert store.search("Once upon") == []  # streaming text is not indexed until finished

    stats = {"generated_tokens": 3, "ttft_s": 0.25, "decode_tps": 31.5}
    done = store.finish_answer(ans.id, "Once upon a time.", "complete", stats=stats)
    assert (done.status, done.content, done.stats, done.error) == (
        "complete", "Once upon a time.", stats, None)  # fmt: skip
    assert [h.message_id for h in store.search("upon a time")] == [ans.id]
    assert not store.update_answer(ans.id, "late checkpoint")  # a finished answer stays put
    assert store.get_message(ans.id).content == "Once upon a time."

    failed = store.begin_answer(conv.id)
    got = store.finish_answer(failed.id, "", "failed", error="Out of memory")
    assert (got.status, got.error) == ("failed", "Out of memory")
    with pytest.raises(ValueError):
        store.finish_answer(failed.id, "", "streaming")


def test_edit_and_delete_from_position(store: Store):
    conv = store.create_conversation()
    u = store.add_message(conv.id, "user", "What is 2+2? walrus")
    store.add_message(conv.id, "assistant", "4")
    store.add_message(conv.id, "user", "And 3+3?")
    store.add_message(conv.id, "assistant", "6")
    assert store.delete_messages_from(conv.id, 2) == 2
    assert [m.position for m in store.messages(conv.id)] == [0, 1]
    again = store.add_message(conv.id, "user", "And 5+5?")
    assert again.position == 2  # the resent message takes the freed place

    store.edit_message(u.id, "What is 2+3? penguin")
    assert store.messages(conv.id)[0].content == "What is 2+3? penguin"
    assert store.search("walrus") == []  # the index follows edits
    assert [h.message_id for h in store.search("penguin")] == [u.id]


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from app.store.store import Store
    s = Store(sys.argv[1])
    c = s.create_conversation("crash test")
    s.add_message(c.id, "user", "Explain tides")
    a = s.begin_answer(c.id)
    s.update_answer(a.id, "Tides are caused by the moon")
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_answer_survives_a_killed_app_as_stopped(path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(path)], check=False, env=env, cwd=REPO
    )
    assert proc.returncode == -9  # really killed, no clean close
    store = Store(path)
    try:
        assert store.recovered_answers == 1
        [conv] = store.list_conversations()
        user, answer = store.messages(conv.id)
        assert (user.role, user.content, user.status) == ("user", "Explain tides", "complete")
        assert (answer.status, answer.content) == ("stopped", "Tides are caused by the moon")
        assert [h.message_id for h in store.search("moon")] == [answer.id]  # now indexed
    finally:
        store.close()
    reopened = Store(path)
    assert reopened.recovered_answers == 0
    reopened.close()


def test_streaming_row_left_open_comes_back_stopped(path: Path):
    s = Store(path)
    conv = s.create_conversation()
    ans = s.begin_answer(conv.id)
    s.update_answer(ans.id, "partial")
    s.close()  # closed without finish_answer
    s = Store(path)
    assert s.get_message(ans.id).status == "stopped"
    assert s.get_message(ans.id).content == "partial"
    s.close()


def test_search_finds_old_answers_with_highlighted_snippets(store: Store):
    cooking = store.create_conversation("Cooking")
    travel = store.create_conversation("Travel to Japan")
    store.add_message(cooking.id, "user", "How do I make bread?")
    old = store.add_message(
        cooking.id, "assistant", "Knead the dough, then let it <rise> overnight."
    )
    store.add_message(travel.id, "user", "Where should I go?")
    store.add_message(travel.id, "assistant", "Visit Kyoto in autumn.")

    [hit] = store.search("overnight")
    assert (hit.conversation_id, hit.title, hit.message_id) == (cooking.id, "Cooking", old.id)
    assert f"{MARK_START}overnight{MARK_END}" in hit.snippet
    html = hit.snippet_html()
    assert "<b>overnight</b>" in html and "&lt;rise&gt;" in html

    assert [h.message_id for h in store.search("OVERNIGHT dough")] == [old.id]  # AND, any case
    assert [h.message_id for h in store.search("knea")] == [old.id]  # prefix of the last word
    assert store.search("overnight kyoto") == []  # every term must match
    title_hits = store.search("japan")
    assert [(h.conversation_id, h.message_id) for h in title_hits] == [(travel.id, None)]
    assert f"{MARK_START}Japan{MARK_END}" in title_hits[0].snippet
    assert store.search("   ") == []


def test_search_unicode_accents_and_cjk(store: Store):
    fr = store.create_conversation("Français")
    ja = store.create_conversation("日本語")
    m_fr = store.add_message(fr.id, "assistant", "Le café était fermé à Noël.")
    m_ja = store.add_message(ja.id, "assistant", "東京に行きました。とても楽しかったです。")

    assert [h.message_id for h in store.search("café")] == [m_fr.id]
    assert [h.message_id for h in store.search("CAFÉ FERMÉ")] == [m_fr.id]  # non-ASCII case
    assert [h.message_id for h in store.search("noël")] == [m_fr.id]
    # unicode61 would index the whole run of CJK as one token; trigrams find substrings.
    assert [h.message_id for h in store.search("行きました")] == [m_ja.id]
    assert [h.message_id for h in store.search("楽しかった")] == [m_ja.id]
    # Two-character words are too short for trigrams; they are found by a scan instead.
    [hit] = store.search("東京")
    assert hit.message_id == m_ja.id and f"{MARK_START}東京{MARK_END}" in hit.snippet
    assert [h.conversation_id for h in store.search("日本")] == [ja.id]  # short title term
    assert [h.message_id for h in store.search("NO")] == [m_fr.id]  # short terms ignore case
    assert [h.message_id for h in store.search("FÉ")] == [m_fr.id]
    assert store.search("大阪") == []


@pytest.mark.parametrize(
    "query",
    ['"', '""', '"unclosed', "*", "bread*", "AND", "OR", "NOT", "-", "a -b", "NEAR(a b)", "(",
     ")", ":", "content:bread", "title:x", "^", "'", "\\", "%", "_", "a AND OR", "\x00", "🍞"],
)  # fmt: skip
def test_odd_queries_do_not_raise(store: Store, query: str):
    conv = store.create_conversation("Bread")
    store.add_message(conv.id, "user", "a plain sentence about bread")
    hits = store.search(query)
    assert isinstance(hits, list)
    if query in ("%", "_", "*", "-"):  # literal characters, not wildcards or operators
        assert hits == []


def test_parse_query_quotes_phrases_and_strips_stray_quotes():
    assert parse_query('  "new york"  pizza ') == ["new york", "pizza"]
    assert parse_query('say"what') == ["saywhat"]
    assert parse_query('""') == []


def test_phrase_search(store: Store):
    conv = store.create_conversation()
    m = store.add_message(conv.id, "user", "I live in new york city")
    store.add_message(conv.id, "user", "york is new to me")
    assert [h.message_id for h in store.search('"new york"')] == [m.id]


def test_empty_file_migrates_to_current_and_reopen_is_idempotent(path: Path):
    path.write_bytes(b"")  # a v0 database: no schema at all
    s = Store(path)
    conv = s.create_conversation("kept")
    s.add_message(conv.id, "user", "still here")
    s.close()
    with _raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"conversations", "messages", "messages_fts", "conversations_fts"} <= tables
    for _ in range(2):
        s = Store(path)
        assert [c.title for c in s.list_conversations()] == ["kept"]
        assert len(s.search("still here")) == 1
        s.close()
    with _raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_failed_migration_is_rolled_back(path: Path):
    with _raw(path) as db:  # a v0 database that someone else put a clashing table in
        db.execute("CREATE TABLE conversations (x)")
    with pytest.raises(StoreError, match="upgrade") as err:
        Store(path)
    assert str(path) in str(err.value)
    with _raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name='messages'").fetchone()[
            0
        ] == 0  # fmt: skip


def test_newer_schema_is_refused_and_left_untouched(path: Path):
    Store(path).close()
    with _raw(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    before = path.read_bytes()
    with pytest.raises(NewerSchemaError) as err:
        Store(path)
    text = str(err.value)
    assert str(path) in text and "newer version" in text and f"v{SCHEMA_VERSION + 5}" in text
    with pytest.raises(NewerSchemaError):
        Store.open_or_recover(path)  # not damaged: never moved aside
    assert path.read_bytes() == before
    assert list(path.parent.glob("*corrupt*")) == []


def test_garbage_file_is_a_clear_error_and_recovery_moves_it_aside(path: Path):
    garbage = b"this is not a database at all\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(CorruptStoreError) as err:
        Store(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, StoreError)

    store, message = Store.open_or_recover(path)
    try:
        [aside] = path.parent.glob("history.corrupt-*.sqlite3")
        assert aside.read_bytes() == garbage
        assert message is not None and str(aside) in message and str(path) in message
        assert store.list_conversations() == []  # a fresh, working store at the same place
        store.create_conversation()
    finally:
        store.close()
    again, message = Store.open_or_recover(path)
    assert message is None and len(again.list_conversations()) == 1
    again.close()


def test_damaged_pages_are_detected(path: Path):
    s = Store(path)
    conv = s.create_conversation()
    for i in range(200):
        s.add_message(conv.id, "user", f"message {i} " + "x" * 500)
    s.close()
    with _raw(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    pages = len(data) // page_size
    assert pages > 20
    middle = pages // 2 * page_size  # a message page, which opening alone would never read
    data[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="damaged"):
        Store(path)


def test_wal_mode_and_foreign_keys(store: Store, path: Path):
    with _raw(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_export_markdown(store: Store):
    conv = store.create_conversation("Quarterly report", system_prompt="Answer in French.")
    att = Attachment(name="q3.pdf", text="Revenue rose 5%.", path="/x/q3.pdf", pages=3, tokens=812)
    store.add_message(conv.id, "user", "Summarize the attachment", attachments=[att])
    store.add_message(conv.id, "assistant", "Le chiffre d'affaires a augmenté de 5 %.")
    store.add_message(conv.id, "user", "More detail?")
    cut = store.begin_answer(conv.id)
    store.finish_answer(cut.id, "Eh bien, le", "stopped")
    bad = store.begin_answer(conv.id)
    store.finish_answer(bad.id, "", "failed", error="Context overflow: 9000 > 8192 tokens")

    md = store.export_markdown(conv.id)
    assert md.startswith("# Quarterly report\n")
    assert "## System prompt\n\nAnswer in French." in md
    assert md.count("## User") == 2 and md.count("## Assistant") == 3
    assert "- q3.pdf (3 pages, 812 tokens)" in md
    assert "Revenue rose" not in md  # attachments are listed, not pasted
    order = [md.index(s) for s in ("Summarize the", "Le chiffre", "More detail?", "Eh bien")]
    assert order == sorted(order)
    assert "Stopped" in md[md.index("Eh bien") :]
    assert "Failed: Context overflow: 9000 > 8192 tokens" in md
    assert md.endswith("\n") and not md.endswith("\n\n")


def test_title_from_first_user_message(store: Store):
    assert title_from_message("  \n# How do  I bake\tbread?\nmore") == "How do I bake bread?"
    long = "Please summarize the attached quarterly financial report for the board meeting"
    t = title_from_message(long)
    assert t.endswith("…") and len(t) <= 48 and long.startswith(t[:-1])
    assert title_from_message("   ") == DEFAULT_TITLE

    conv = store.create_conversation()
    store.add_message(conv.id, "system", "ignored")
    store.add_message(conv.id, "user", "Bake bread at home")
    assert store.auto_title(conv.id) == "Bake bread at home"
    assert store.get_conversation(conv.id).title == "Bake bread at home"
    store.rename_conversation(conv.id, "Mine")
    assert store.auto_title(conv.id) == "Mine"  # never overrides a chosen title


# --- deleting is undoable: "Recently deleted", restore, purge, on_purged


def _set_deleted_at(path: Path, conversation_id: int, when: datetime) -> None:
    with _raw(path) as db:
        db.execute(
            "UPDATE conversations SET deleted_at = ? WHERE id = ?",
            (when.isoformat(timespec="microseconds"), conversation_id),
        )


def test_deleted_conversation_leaves_list_and_search_and_restores_in_place(store: Store):
    a = store.create_conversation("Alpha walrus")
    b = store.create_conversation("Beta")
    store.add_message(b.id, "user", "the walrus question")
    c = store.create_conversation("Gamma")
    assert store.delete_conversation(b.id)
    assert not store.delete_conversation(b.id)  # already deleted
    assert [x.id for x in store.list_conversations()] == [c.id, a.id]
    assert [h.conversation_id for h in store.search("walrus")] == [a.id]
    assert [h.conversation_id for h in store.search("Beta")] == []
    assert [h.conversation_id for h in store.search("wa")] == [a.id]  # the short-term scan too
    with pytest.raises(NotFoundError):
        store.get_conversation(b.id)
    with pytest.raises(NotFoundError):
        store.rename_conversation(b.id, "x")
    with pytest.raises(NotFoundError):
        store.add_message(b.id, "user", "to a deleted chat")
    [deleted] = store.list_deleted()
    assert deleted.id == b.id and deleted.title == "Beta"
    assert deleted.deleted_at is not None and deleted.deleted_at.tzinfo == timezone.utc
    assert store.get_conversation(b.id, include_deleted=True).deleted_at == deleted.deleted_at

    assert store.restore_conversation(b.id)
    assert not store.restore_conversation(b.id)
    # Back where it was (by its last activity), with its messages, searchable again.
    assert [x.id for x in store.list_conversations()] == [c.id, b.id, a.id]
    assert store.get_conversation(b.id).deleted_at is None
    assert [m.content for m in store.messages(b.id)] == ["the walrus question"]
    assert {h.conversation_id for h in store.search("walrus")} == {a.id, b.id}
    assert store.list_deleted() == []


def test_list_deleted_newest_first_with_days_left(store: Store, path: Path):
    now = datetime.now(timezone.utc)
    old = store.create_conversation("old")
    new = store.create_conversation("new")
    store.delete_conversation(old.id)
    store.delete_conversation(new.id)
    _set_deleted_at(path, old.id, now - timedelta(days=29, hours=12))
    _set_deleted_at(path, new.id, now - timedelta(hours=1))
    listed = store.list_deleted()
    assert [c.id for c in listed] == [new.id, old.id]
    assert [c.days_left(now) for c in listed] == [DELETED_KEEP_DAYS, 1]
    assert listed[1].days_left(now + timedelta(days=1)) == 0


def test_purge_expired_removes_only_old_deletions_and_calls_on_purged(store: Store, path: Path):
    now = datetime.now(timezone.utc)
    live = store.create_conversation("live")
    expired = store.create_conversation("expired")
    recent = store.create_conversation("recent")
    for conv in (expired, recent):
        store.add_message(conv.id, "user", f"text of {conv.title}")
        store.delete_conversation(conv.id)
    _set_deleted_at(path, expired.id, now - timedelta(days=DELETED_KEEP_DAYS, minutes=1))
    _set_deleted_at(path, recent.id, now - timedelta(days=DELETED_KEEP_DAYS - 1))
    purged: list[int] = []

    def broken(_cid: int) -> None:
        raise RuntimeError("a hook that fails must not stop the others")

    store.on_purged(broken)
    store.on_purged(purged.append)
    assert store.purge_expired(now) == [expired.id]
    assert purged == [expired.id]
    assert [c.id for c in store.list_deleted()] == [recent.id]
    assert [c.id for c in store.list_conversations()] == [live.id]
    with _raw(path) as db:
        left = db.execute("SELECT conversation_id FROM messages").fetchall()
    assert left == [(recent.id,)]
    assert store.purge_expired(now) == [] and purged == [expired.id]

    # "Delete now": at once, whatever its age; a soft delete never calls the hook.
    assert store.purge_conversation(recent.id)
    assert not store.purge_conversation(recent.id)
    store.delete_conversation(live.id)
    assert purged == [expired.id, recent.id]
    assert [c.id for c in store.list_deleted()] == [live.id]


def test_purge_expired_survives_a_reopen(path: Path):
    s = Store(path)
    conv = s.create_conversation("gone later")
    s.delete_conversation(conv.id)
    s.close()
    s = Store(path)  # the deletion is in the file, not in memory
    assert [c.id for c in s.list_deleted()] == [conv.id]
    later = datetime.now(timezone.utc) + timedelta(days=DELETED_KEEP_DAYS + 1)
    assert s.purge_expired(later) == [conv.id]
    s.close()


def test_a_v1_database_migrates_to_soft_delete_keeping_everything(path: Path):
    with _raw(path) as db:  # a history written by the previous version (schema v1)
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at) VALUES"
            " (7, 'Old chat', '2024-05-01T10:00:00.000000+00:00',"
            " '2024-05-01T10:05:00.000000+00:00')"
        )
        db.execute(
            "INSERT INTO messages (conversation_id, position, role, content, status, created_at)"
            " VALUES (7, 0, 'user', 'an old question about otters', 'complete',"
            " '2024-05-01T10:00:00.000000+00:00')"
        )
    s = Store(path)
    try:
        [conv] = s.list_conversations()
        assert (conv.id, conv.title, conv.deleted_at) == (7, "Old chat", None)
        assert [m.content for m in s.messages(7)] == ["an old question about otters"]
        assert [h.conversation_id for h in s.search("otters")] == [7]
        assert s.delete_conversation(7) and [c.id for c in s.list_deleted()] == [7]
    finally:
        s.close()
    with _raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
        columns = {r[1] for r in db.execute("PRAGMA table_info(conversations)")}
        assert "deleted_at" in columns


def test_an_answer_streaming_into_a_deleted_chat_is_kept_as_stopped(store: Store):
    conv = store.create_conversation()
    store.add_message(conv.id, "user", "question")
    answer = store.begin_answer(conv.id)
    store.update_answer(answer.id, "half an ans")
    store.delete_conversation(conv.id)
    assert not store.update_answer(answer.id, "more")  # nobody writes into it any more
    store.restore_conversation(conv.id)
    got = store.get_message(answer.id)
    assert (got.status, got.content) == ("stopped", "half an ans")
    assert [h.message_id for h in store.search("half an")] == [answer.id]
