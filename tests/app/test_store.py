"""The conversation store: schema, crash safety, search, migrations, recovery, export."""

import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timezone
from pathlib import Path

import pytest

from app.store.schema import SCHEMA_VERSION
from app.store.search import MARK_END, MARK_START, parse_query
from app.store.store import (
    DEFAULT_TITLE,
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


def test_deleting_a_conversation_cascades_to_messages_and_index(store: Store, path: Path):
    keep = store.create_conversation("keep")
    gone = store.create_conversation("gone")
    store.add_message(keep.id, "user", "kept zebra text")
    store.add_message(gone.id, "user", "doomed zebra text")
    store.add_message(gone.id, "assistant", "doomed answer")
    store.delete_conversation(gone.id)
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
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
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
