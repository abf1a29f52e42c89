"""Issue 12 in the app: every chat keeps its KV cache (memory, then disk), Settings shows it.

Real EngineControllers with the fast tiny model, each with its cache folder in tmp_path (the
app's default folder is never touched). "Only the new message" is checked against the prompt
the window really sent, tokenized as the engine does: the tokens from the last [INST] on (plus
the </s> that an answer cut at the length limit lacks).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.bridge.cache_control import cache_settings, chat_key, disk_usage
from app.bridge.engine_controller import EngineController
from app.chat.quick_prompt import QUICK_KEY, QuickPromptPanel
from app.settings import ChatSettings, load_settings, save_settings
from app.store.store import DELETED_KEEP_DAYS, Store
from app.views.message import format_stats
from app.views.settings_caches import CacheSettingsView
from app.window import MainWindow
from engine.cache_store import snapshot_file_name

WAIT_MS = 60_000  # generous: 2 shared cores
SETTINGS = ChatSettings(num_ctx=4096, max_tokens=8, quick_max_tokens=8, temperature=0.0)
pytestmark = pytest.mark.usefixtures("app_style")


@pytest.fixture
def controllers(qtbot, fast_model_dir: Path):
    """make(folder, settings, load=True): a controller whose models save caches in `folder`."""
    made: list[EngineController] = []

    def make(folder: Path, settings: ChatSettings = SETTINGS, load: bool = True):
        c = EngineController(caches=cache_settings(settings, folder))
        made.append(c)
        if load:
            with qtbot.waitSignal(c.modelLoaded, timeout=WAIT_MS):
                c.load_model(str(fast_model_dir))
        return c

    yield make
    for c in made:
        c.shutdown()


def make_window(qtbot, store, controller, qsettings, settings=SETTINGS) -> MainWindow:
    w = MainWindow(store, controller, settings, qsettings)
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    return w


def record_sends(monkeypatch, controller) -> list[tuple[list[dict], str | None]]:
    """Each chat the window sends, with its cache key."""
    sent: list[tuple[list[dict], str | None]] = []
    original = controller.send

    def recording(messages, settings, **kwargs):
        sent.append(([dict(m) for m in messages], kwargs.get("key")))
        return original(messages, settings, **kwargs)

    monkeypatch.setattr(controller, "send", recording)
    return sent


def send(qtbot, w: MainWindow, text: str) -> dict:
    """Types and sends `text`; the answer's stored stats once it ended."""
    w.composer.set_text(text)
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    answer = w.store.messages(w.current_id)[-1]
    assert answer.role == "assistant" and answer.status == "complete", answer.error
    return answer.stats


def prompt_ids(controller, messages: list[dict]) -> list[int]:
    return controller.document_tokenizer().encode_chat(messages)


def assert_only_new_message(controller, messages: list[dict], stats: dict) -> None:
    """The turn read the new message only: everything before it came from the cache."""
    tok = controller.document_tokenizer()
    ids = tok.encode_chat(messages)
    last_inst = max(i for i, t in enumerate(ids) if t == tok.inst_id)
    assert stats["prompt_tokens"] == len(ids)
    assert stats["reused_tokens"] + stats["prefilled_tokens"] == len(ids)
    assert stats["prefilled_tokens"] <= len(ids) - last_inst + 1, stats  # + a missing </s>
    assert stats["reused_tokens"] >= last_inst - 1


def snapshots(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.safetensors") if not p.name.startswith(".tmp-")]


def snapshot_of(folder: Path, conversation_id: int) -> list[Path]:
    return list(folder.rglob(snapshot_file_name(chat_key(conversation_id))))


# --- the chat's own cache: switching chats, the quick prompt, a restart


def test_switching_chats_and_back_reads_only_the_new_message(
    qtbot, controllers, store, qsettings, tmp_path, monkeypatch
):
    folder = tmp_path / "kv"
    c = controllers(folder)
    sent = record_sends(monkeypatch, c)
    w = make_window(qtbot, store, c, qsettings)
    first = send(qtbot, w, "Tell me about the history of Lisbon, in a few words.")
    assert first["reused_tokens"] == 0 and first["prefilled_tokens"] == len(
        prompt_ids(c, sent[0][0])
    )  # the first turn reads everything
    a = w.current_id
    w.new_chat()
    send(qtbot, w, "A different chat about sourdough starters and their care.")
    b = w.current_id
    w.open_conversation(a)
    stats = send(qtbot, w, "And the earthquake?")
    assert [key for _, key in sent] == [chat_key(a), chat_key(b), chat_key(a)]
    assert_only_new_message(c, sent[-1][0], stats)
    w.open_conversation(b)  # B's cache was kept as well
    assert_only_new_message(c, sent[-1][0], stats)
    stats_b = send(qtbot, w, "How often to feed it?")
    assert_only_new_message(c, sent[-1][0], stats_b)
    # The stats line says where the prompt came from.
    line = w.chat_view.widgets()[-1].stats_label.text()
    assert f"{stats_b['reused_tokens']:,} cached · {stats_b['prefilled_tokens']:,} new" in line
    assert snapshots(folder) == []  # nothing written yet: not idle, not evicted, not quit


def test_the_quick_prompt_leaves_the_chats_cache_alone(
    qtbot, controllers, store, qsettings, tmp_path, monkeypatch
):
    c = controllers(tmp_path / "kv")
    sent = record_sends(monkeypatch, c)
    w = make_window(qtbot, store, c, qsettings)
    send(qtbot, w, "Plan a three-day trip to Porto with a focus on food.")
    panel = QuickPromptPanel(c, store, lambda: w.settings)
    qtbot.addWidget(panel)
    panel.input.setText("What is 17 times 23, quickly?")
    panel.submit()
    qtbot.waitUntil(lambda: panel.answer is not None and not panel.answer.active, timeout=WAIT_MS)
    assert sent[-1][1] == QUICK_KEY
    stats = send(qtbot, w, "And on the second day?")
    assert sent[-1][1] == chat_key(w.current_id)
    assert_only_new_message(c, sent[-1][0], stats)


def test_after_a_restart_the_chat_reads_only_the_new_message(
    qtbot, controllers, store, qsettings, tmp_path, monkeypatch
):
    folder = tmp_path / "kv"
    c1 = controllers(folder)
    w1 = make_window(qtbot, store, c1, qsettings)
    send(qtbot, w1, "Summarize the plot of a heist film in two sentences.")
    cid = w1.current_id
    w1.close()
    assert c1.shutdown()  # quitting writes the snapshot, and the quit waits for it
    (path,) = snapshot_of(folder, cid)
    assert path.stat().st_size > 0

    c2 = controllers(folder)  # a new engine on the same folder, as after a restart
    sent = record_sends(monkeypatch, c2)
    w2 = make_window(qtbot, store, c2, qsettings)
    w2.open_conversation(cid)
    stats = send(qtbot, w2, "Who is the villain?")
    assert_only_new_message(c2, sent[-1][0], stats)
    assert stats["reused_tokens"] > 0


def test_a_document_is_read_once_then_only_questions_also_after_a_restart(
    qtbot, controllers, store, qsettings, tmp_path, monkeypatch
):
    folder = tmp_path / "kv"
    doc = tmp_path / "notes.txt"
    doc.write_text(
        "\n\n".join(
            f"Section {i}. The harbour master logged {i * 7} ships, mostly carrying salt, "
            "cork and wine, and noted the tides, the winds and every delay in the ledger."
            for i in range(1, 40)
        ),
        "utf-8",
    )
    c1 = controllers(folder)
    sent = record_sends(monkeypatch, c1)
    w1 = make_window(qtbot, store, c1, qsettings)
    w1.documents.attach([str(doc)])
    qtbot.waitUntil(
        lambda: not w1.documents.reader.busy and not w1.documents._reading, timeout=WAIT_MS
    )
    first = send(qtbot, w1, "What does the ledger record?")
    doc_prompt = sent[-1][0]
    assert "<document" in doc_prompt[-1]["content"]  # the document went in whole
    assert first["prefilled_tokens"] == len(prompt_ids(c1, doc_prompt)) > 500
    follow = send(qtbot, w1, "How many ships in section 3?")
    assert_only_new_message(c1, sent[-1][0], follow)
    assert follow["reused_tokens"] > 500 and follow["prefilled_tokens"] < 40
    cid = w1.current_id
    w1.close()
    assert c1.shutdown()

    c2 = controllers(folder)
    sent2 = record_sends(monkeypatch, c2)
    w2 = make_window(qtbot, store, c2, qsettings)
    w2.open_conversation(cid)
    again = send(qtbot, w2, "And in section 9?")
    assert "<document" in sent2[-1][0][0]["content"]  # still part of the chat's prompt
    assert_only_new_message(c2, sent2[-1][0], again)
    assert again["reused_tokens"] > 500 and again["prefilled_tokens"] < 40


# --- user control: Settings, Clear, the off switch, deleting a chat


def cache_view(dialog) -> CacheSettingsView:
    (view,) = [s for s in dialog.sections if isinstance(s, CacheSettingsView)]
    return view


def test_settings_show_the_disk_used_and_clear_empties_the_folder(
    qtbot, controllers, store, qsettings, tmp_path
):
    folder = tmp_path / "kv"
    c1 = controllers(folder)
    w1 = make_window(qtbot, store, c1, qsettings)
    send(qtbot, w1, "Write a haiku about caches.")
    w1.close()
    assert c1.shutdown()
    size, count = disk_usage(folder)
    assert count == 1 and size > 0

    c2 = controllers(folder)
    w2 = make_window(qtbot, store, c2, qsettings)
    dialog = w2.make_settings_dialog()
    view = cache_view(dialog)
    assert view.used.text().startswith(f"{size / 1e3:.1f} kB in 1 saved chat (up to 10.0 GB)")
    assert view.used.toolTip() == str(folder)
    assert view.values() == {"cache_enabled": True, "cache_disk_gb": 10}
    qtbot.mouseClick(view.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.used.text().startswith("0 B in 0 saved chats"), timeout=WAIT_MS)
    assert snapshots(folder) == [] and view.clear_button.isEnabled()
    # The memory estimate counts what the idle chats' caches may keep.
    assert dialog.plan is not None and dialog.plan.cache_budget_bytes >= 0
    assert "other chats' caches may use up to" in dialog.estimate_label.text()


def test_the_off_switch_writes_nothing(qtbot, controllers, store, qsettings, tmp_path):
    folder = tmp_path / "kv"
    c = controllers(folder)
    w = make_window(qtbot, store, c, qsettings)
    dialog = w.make_settings_dialog()
    view = cache_view(dialog)
    view.enabled.setChecked(False)
    assert not view.budget.isEnabled()
    w.apply_settings(dialog.settings())  # what OK does
    assert not w.settings.cache_enabled and not c.caches.enabled
    assert not load_settings(qsettings).cache_enabled  # persisted
    send(qtbot, w, "Tell me something short.")
    w.new_chat()
    send(qtbot, w, "And another chat.")
    w.close()
    assert c.shutdown()
    assert snapshots(folder) == []


def test_cache_settings_persist_and_reach_the_engine(qsettings):
    settings = replace(SETTINGS, cache_enabled=False, cache_disk_gb=3)
    save_settings(settings, qsettings)
    loaded = load_settings(qsettings)
    assert (loaded.cache_enabled, loaded.cache_disk_gb) == (False, 3)
    assert ChatSettings().cache_enabled and ChatSettings().cache_disk_gb == 10
    assert replace(settings, cache_disk_gb=0).validated().cache_disk_gb == 1
    engine_side = cache_settings(loaded, "/somewhere")
    assert (engine_side.enabled, engine_side.disk_budget) == (False, 3_000_000_000)
    assert str(engine_side.folder) == "/somewhere"


def test_purging_a_chat_deletes_its_snapshot(
    qtbot, controllers, store, qsettings, tmp_path, monkeypatch
):
    folder = tmp_path / "kv"
    c1 = controllers(folder)
    w1 = make_window(qtbot, store, c1, qsettings)
    send(qtbot, w1, "First chat to delete.")
    gone = w1.current_id
    w1.new_chat()
    send(qtbot, w1, "Second chat to delete, with the model loaded.")
    loaded_gone = w1.current_id
    w1.new_chat()
    send(qtbot, w1, "A chat that stays.")
    kept = w1.current_id
    w1.close()
    assert c1.shutdown()
    assert all(snapshot_of(folder, i) for i in (gone, loaded_gone, kept))

    # Each run of the app opens the history anew (its on_purged hooks are that run's own).
    # At start-up the expired chats are purged before any model is loaded.
    history = Store(store.path)
    c2 = controllers(folder, load=False)
    deferred, c2.caches = c2.caches, None  # a controller given its folder only later
    w2 = make_window(qtbot, history, c2, qsettings)
    history.delete_conversation(gone)
    later = datetime.now(timezone.utc) + timedelta(days=DELETED_KEEP_DAYS + 1)
    assert history.purge_expired(later) == [gone]
    assert snapshot_of(folder, gone)  # no folder known yet
    c2.caches = deferred
    qtbot.waitUntil(lambda: not snapshot_of(folder, gone), timeout=WAIT_MS)
    assert snapshot_of(folder, loaded_gone) and snapshot_of(folder, kept)
    w2.close()
    assert c2.shutdown()
    history.close()

    # With a model loaded, its cache in memory goes too: quitting does not write it back.
    history = Store(store.path)
    c3 = controllers(folder)
    sent = record_sends(monkeypatch, c3)
    w3 = make_window(qtbot, history, c3, qsettings)
    w3.open_conversation(loaded_gone)
    stats = send(qtbot, w3, "Into memory once more.")
    assert_only_new_message(c3, sent[-1][0], stats)  # its snapshot was read
    history.delete_conversation(loaded_gone)
    assert history.purge_conversation(loaded_gone)  # "Delete now"
    qtbot.waitUntil(lambda: not snapshot_of(folder, loaded_gone), timeout=WAIT_MS)
    w3.close()
    assert c3.shutdown()
    history.close()
    assert not snapshot_of(folder, loaded_gone) and snapshot_of(folder, kept)


def test_the_stats_line_says_how_much_came_from_the_cache():
    stats = {"generated_tokens": 24, "ttft_s": 0.05, "decode_tps": 30.0}
    line = format_stats(stats | {"reused_tokens": 8112, "prefilled_tokens": 14}, "complete")
    assert line == "24 tokens · 8,112 cached · 14 new · 0.05 s to first token · 30.0 tok/s"
    cut = format_stats(
        stats | {"reused_tokens": 0, "prefilled_tokens": 9, "finish_reason": "length"}, "complete"
    )
    assert "0 cached · 9 new" in cut and cut.endswith("cut at the length limit")
    assert "cached" not in format_stats(stats, "complete")  # stats from before issue 12
