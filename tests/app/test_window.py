"""The chat window end to end: real EngineController + tiny model, a Store in tmp_path.

Qt runs offscreen (tests/app/conftest.py). QSettings go to an INI file in tmp_path.
Screenshots land in /tmp/screens/ for a person to look at; no assertion depends on fonts.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QTextDocument

from app.bridge.engine_controller import EngineController
from app.main import apply_style
from app.markdown import first_strong_direction, render_markdown, render_plain
from app.settings import NUM_CTX_STEPS, ChatSettings, load_settings, save_settings
from app.store.store import Store
from app.views.composer import Composer
from app.views.message import SafeTextBrowser, format_stats
from app.views.theme import dark_palette
from app.window import MainWindow
from tests.app.conftest import wait_end, wait_text

WAIT_MS = 60_000  # generous: 2 shared cores
pytestmark = pytest.mark.usefixtures("app_style")
SCREENS = Path("/tmp/screens")
FAST = ChatSettings(num_ctx=4096, max_tokens=24, temperature=1.0)
LONG = replace(FAST, max_tokens=4000)  # long enough to be stopped mid-stream

CODE_AND_TABLE = """Use `sorted()` with a **key** function:

```python
people = [{"name": "Ada", "age": 36}, {"name": "Alan", "age": 41}]
by_age = sorted(people, key=lambda p: p["age"])
```

| Option | Stable | In place |
|---|---|---|
| `sorted(xs, key=...)` | yes | no |
| `xs.sort(key=...)` | yes | yes |

See the [docs](https://docs.python.org/3/howto/sorting.html).
"""


def make_window(qtbot, store, controller, qsettings, settings: ChatSettings = FAST) -> MainWindow:
    w = MainWindow(store, controller, settings, qsettings)
    qtbot.addWidget(w)
    w.resize(1100, 760)
    w.show()
    return w


@pytest.fixture
def window(qtbot, store, controller, qsettings) -> MainWindow:
    return make_window(qtbot, store, controller, qsettings)


def send(qtbot, w: MainWindow, text: str) -> None:
    """Types into the composer and presses Enter; returns when the answer has finished."""
    w.composer.set_text(text)
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    assert w.generating
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)


def shown_texts(w: MainWindow) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in w.chat_view.widgets()]


def stored_texts(store: Store, cid: int) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in store.messages(cid)]


def screenshot(widget, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(SCREENS / name))


# --- sending, streaming, stopping


def test_send_streams_then_stores_both_messages(qtbot, window, store, jobs):
    send(qtbot, window, "Hello there, how are you?")
    (log,) = jobs.all
    chunks = [a[0] for a in log.of("text")]

    cid = window.current_id
    messages = store.messages(cid)
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert messages[0].content == "Hello there, how are you?"
    answer = messages[1]
    assert chunks and answer.content == "".join(chunks)  # every streamed chunk, nothing else
    assert answer.stats["generated_tokens"] > 0 and answer.stats["finish_reason"] in (
        "stop",
        "length",
    )
    assert shown_texts(window) == stored_texts(store, cid)
    stats_line = window.chat_view.widgets()[-1].stats_label.text()
    assert f"{answer.stats['generated_tokens']:,} tokens" in stats_line and "tok/s" in stats_line
    assert store.get_conversation(cid).title == "Hello there, how are you?"
    assert window.sidebar.list.count() == 1 and window.sidebar.list.currentItem() is not None


def test_user_message_is_stored_before_generation_starts(qtbot, window, store, listen):
    seen = []

    def on_job(job):
        job.started.connect(
            lambda: seen.append([(m.role, m.status) for m in store.messages(window.current_id)])
        )

    listen(window.controller.jobSubmitted, on_job)
    send(qtbot, window, "Is my message safe?")
    assert seen[0] == [("user", "complete"), ("assistant", "streaming")]


def test_streaming_renders_throttled_not_per_chunk(
    qtbot, store, controller, qsettings, monkeypatch, listen
):  # fmt: skip
    w = make_window(qtbot, store, controller, qsettings, replace(FAST, max_tokens=400))
    from app.views.message import MessageWidget

    renders: list[float] = []
    original = MessageWidget.stream

    def counting(self, text):
        renders.append(time.monotonic())
        original(self, text)

    monkeypatch.setattr(MessageWidget, "stream", counting)
    chunks = []
    listen(
        controller.jobSubmitted,
        lambda job: job.text.connect(lambda _text: chunks.append(time.monotonic())),
    )
    send(qtbot, w, "Tell me a long story.")
    streaming = [t for t in renders if chunks[0] <= t <= chunks[-1] + 0.2]
    span = chunks[-1] - chunks[0]
    # ~10 renders a second at most (plus the final one), never one per chunk.
    assert len(streaming) <= span / 0.1 + 3
    assert len(chunks) < 8 or len(streaming) < len(chunks)


def test_stop_mid_stream_stores_stopped_answer_and_chat_stays_usable(
    qtbot, store, controller, qsettings, jobs
):
    w = make_window(qtbot, store, controller, qsettings, LONG)
    w.composer.set_text("Write a very long essay.")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    log = wait_text(qtbot, jobs)
    assert w.composer.generating and w.composer.button.text() == "Stop"
    qtbot.wait(400)  # let some text stream in
    screenshot(w, "streaming.png")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Escape)
    wait_end(qtbot, log)
    assert log.job.cancelled and log.of("finished")[0][0].finish_reason == "cancelled"
    cid = w.current_id
    answer = store.messages(cid)[-1]
    assert answer.status == "stopped" and answer.role == "assistant"
    assert answer.content == w.chat_view.widgets()[-1].content
    assert answer.stats["generated_tokens"] < 4000
    assert "stopped" in w.chat_view.widgets()[-1].stats_label.text()
    assert not w.composer.generating and w.composer.button.text() == "Send"

    w.settings = FAST  # the chat goes on
    send(qtbot, w, "Shorter, please.")
    roles = [(m.role, m.status) for m in store.messages(cid)]
    assert roles == [
        ("user", "complete"), ("assistant", "stopped"), ("user", "complete"), ("assistant", "complete"),
    ]  # fmt: skip


def test_closing_the_window_mid_stream_keeps_the_answer_as_stopped(
    qtbot, store, controller, qsettings, jobs
):
    w = make_window(qtbot, store, controller, qsettings, LONG)
    w.composer.set_text("Start something long.")
    w.composer.submit()
    log = wait_text(qtbot, jobs)
    cid = w.current_id
    w.close()
    wait_end(qtbot, log)  # the engine stops too
    assert log.job.cancelled
    user, answer = store.messages(cid)
    assert user.content == "Start something long." and answer.status == "stopped"
    assert answer.content  # what had streamed is kept


def test_switching_chats_mid_stream_leaks_nothing(qtbot, store, controller, qsettings, jobs):
    other = store.create_conversation("Other chat").id
    store.add_message(other, "user", "An older question")
    store.add_message(other, "assistant", "An older answer")
    w = make_window(qtbot, store, controller, qsettings, LONG)
    w.composer.set_text("Start a long answer.")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    log = wait_text(qtbot, jobs)
    old_answer = w.answer
    ended = []
    old_answer.ended.connect(ended.append)
    streaming_id = w.current_id
    w.open_conversation(other)
    assert shown_texts(w) == [("user", "An older question"), ("assistant", "An older answer")]
    w.composer.set_text("a question here")
    assert not w.composer.generating and not w.composer.button.isEnabled()  # busy elsewhere
    seen = len(log.text)
    qtbot.waitUntil(lambda: len(log.text) > seen + 10, timeout=WAIT_MS)  # it streams on
    assert shown_texts(w) == stored_texts(store, other)
    w.open_conversation(streaming_id)  # back: the answer so far, still streaming
    assert w.chat_view.streaming_id == store.messages(streaming_id)[-1].id
    w.stop()
    wait_end(qtbot, log)
    # The old job's owner got its own cancelled finish, once; the other chat got none of it.
    assert log.job.cancelled and len(log.of("finished")) == 1 and len(ended) == 1
    assert ended[0].status == "stopped" and ended[0].content == log.text
    assert shown_texts(w) == stored_texts(store, streaming_id)
    assert stored_texts(store, other) == [
        ("user", "An older question"), ("assistant", "An older answer"),
    ]  # fmt: skip
    assert store.messages(streaming_id)[-1].status == "stopped"


def test_the_jobs_text_goes_straight_to_its_message_also_after_switching_back(
    qtbot, store, controller, qsettings, jobs
):
    # Keypress to token: the job's text signal feeds the chat view's message directly
    # (ChatView.append_text), not through the window; a chat shown again follows on.
    other = store.create_conversation("Other chat").id
    w = make_window(qtbot, store, controller, qsettings, LONG)
    w.composer.set_text("Start a long answer.")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    log = wait_text(qtbot, jobs)
    streaming_id = w.current_id
    w.open_conversation(other)
    w.open_conversation(streaming_id)  # shown again: the text so far, then the rest
    shown = w.chat_view.widgets()[-1]
    start = len(shown.content)
    qtbot.waitUntil(lambda: len(shown.content) > start + 10, timeout=WAIT_MS)
    assert w.answer is not None and w.answer.text.startswith(shown.content)
    w.stop()
    wait_end(qtbot, log)
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    assert shown_texts(w)[-1] == ("assistant", log.text) == stored_texts(store, streaming_id)[-1]


def test_append_text_renders_only_the_streaming_message(qtbot):
    from types import SimpleNamespace as NS

    from app.views.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    row = NS(id=7, role="assistant", content="", status="streaming", stats=None, error=None,
             attachments=())  # fmt: skip
    widget = view.add_message(row)
    for part in ("Hello", ", ", "world"):
        view.append_text(7, part)
    view.append_text(8, " (another answer's text)")  # not on screen: ignored
    qtbot.waitUntil(lambda: widget.content == "Hello, world", timeout=WAIT_MS)
    view.append_text(7, "!")
    qtbot.waitUntil(lambda: widget.content == "Hello, world!", timeout=WAIT_MS)


def test_history_survives_closing_and_reopening(qtbot, tmp_path, controller, qsettings):
    path = tmp_path / "reopen.sqlite3"
    first = Store(path)
    w = make_window(qtbot, first, controller, qsettings)
    send(qtbot, w, "Remember this conversation")
    cid = w.current_id
    before = stored_texts(first, cid)
    w.close()
    first.close()

    second = Store(path)
    w2 = make_window(qtbot, second, controller, qsettings)
    assert w2.sidebar.list.count() == 1
    w2.sidebar.list.setCurrentRow(0)  # the user clicks the chat
    assert w2.current_id == cid
    assert shown_texts(w2) == before and len(before) == 2
    second.close()


def test_search_finds_a_word_from_an_old_answer(qtbot, store, window):
    old = store.create_conversation("Birds").id
    store.add_message(old, "user", "Tell me about birds")
    answer = store.add_message(old, "assistant", "The albatross glides for hours.")
    store.create_conversation("Unrelated")
    window.refresh_sidebar()
    assert window.sidebar.list.count() == 2
    window.find_action.trigger()  # Ctrl/Cmd+F
    assert window.sidebar.search_box.hasFocus() or not window.isActiveWindow()
    qtbot.keyClicks(window.sidebar.search_box, "albatross")
    qtbot.waitUntil(lambda: window.sidebar.searching, timeout=WAIT_MS)
    assert window.sidebar.list.count() == 1
    window.sidebar.list.setCurrentRow(0)
    assert window.current_id == old
    qtbot.wait(50)
    screenshot(window, "search.png")
    assert ("assistant", answer.content) in shown_texts(window)
    window.sidebar.search_box.clear()
    qtbot.waitUntil(lambda: not window.sidebar.searching, timeout=WAIT_MS)
    assert window.sidebar.list.count() == 2


def test_regenerate_replaces_the_last_answer(qtbot, store, window):
    cid = store.create_conversation("Regen").id
    u1 = store.add_message(cid, "user", "First question")
    a1 = store.add_message(cid, "assistant", "First answer")
    u2 = store.add_message(cid, "user", "Second question")
    a2 = store.add_message(cid, "assistant", "Second answer")
    window.open_conversation(cid)
    widgets = window.chat_view.widgets()
    assert [not w.regenerate_button.isHidden() for w in widgets] == [False, False, False, True]
    widgets[-1].regenerate_button.click()
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT_MS)
    messages = store.messages(cid)
    assert [m.id for m in messages[:3]] == [u1.id, a1.id, u2.id]
    assert len(messages) == 4 and messages[3].role == "assistant"
    assert messages[3].content != a2.content and messages[3].created_at > a2.created_at
    assert messages[3].status == "complete" and messages[3].position == 3
    assert shown_texts(window) == stored_texts(store, cid)


def test_edit_and_resend_replaces_later_messages(qtbot, store, window):
    cid = store.create_conversation("Edit").id
    u1 = store.add_message(cid, "user", "Frist question")
    store.add_message(cid, "assistant", "First answer")
    store.add_message(cid, "user", "Second question")
    store.add_message(cid, "assistant", "Second answer")
    window.open_conversation(cid)
    first = window.chat_view.widgets()[0]
    first.edit_button.click()
    assert first.editor is not None and first.editor.toPlainText() == "Frist question"
    first.editor.setPlainText("First question")
    first.submit_edit()
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT_MS)
    messages = store.messages(cid)
    assert [(m.role, m.position) for m in messages] == [("user", 0), ("assistant", 1)]
    assert messages[0].id == u1.id and messages[0].content == "First question"
    assert messages[1].content != "First answer" and messages[1].status == "complete"
    assert shown_texts(window) == stored_texts(store, cid)


def test_long_chat_says_what_was_left_out_and_shows_context_use(
    qtbot, store, controller, qsettings, jobs
):
    cid = store.create_conversation("Long").id
    for i in range(6):  # ~6 x 2 x 300 tokens: more than a 2,048-token context holds
        store.add_message(cid, "user", f"Question {i}: " + "lorem ipsum " * 150)
        store.add_message(cid, "assistant", f"Answer {i}: " + "dolor sit amet " * 100)
    w = make_window(qtbot, store, controller, qsettings, replace(FAST, num_ctx=2048))
    w.open_conversation(cid)
    before = int(w.status.context_label.text().split(" / ")[0].replace(",", ""))
    # What the model will read, not the whole chat (issue 17 #6); the transcript marks the rest.
    assert 0 < before <= 2048 and w.status.context_label.text().endswith(" / 2,048 tokens")
    assert not w.chat_view.divider.isHidden()
    w.composer.set_text("And the last question?")
    w.composer.submit()
    log = wait_end(qtbot, jobs.last)
    ((dropped, _prompt_tokens, _num_ctx),) = log.of("trimmed")
    assert dropped > 0
    notice = w.status.trimmed_label
    assert notice.isVisibleTo(w) and notice.text().startswith(f"{dropped} earlier message")
    used, num_ctx = w.status.context_meter.value(), w.status.context_meter.maximum()
    assert num_ctx == 2048 and 0 < used <= 2048
    assert w.status.context_label.text() == f"{used:,} / 2,048 tokens"
    assert len(store.messages(cid)) == 14  # nothing is deleted from the history
    w.new_chat()
    assert not notice.isVisibleTo(w)


def test_rename_and_delete_conversations(qtbot, store, window):
    a = store.create_conversation("Alpha").id
    b = store.create_conversation("Beta").id
    store.add_message(b, "user", "hello")
    window.refresh_sidebar()
    window.open_conversation(b)
    item = window.sidebar.list.currentItem()
    item.setText("Beta renamed")  # what an inline edit does
    assert store.get_conversation(b).title == "Beta renamed"
    assert window.windowTitle().startswith("Beta renamed")
    window.sidebar.deleteRequested.emit(b)  # after the confirmation dialog
    assert [c.id for c in store.list_conversations()] == [a]
    assert window.current_id is None and window.chat_view.widgets() == []
    assert window.sidebar.list.count() == 1


# --- settings


def assert_same_plan(shown, expected) -> None:
    fields = ("num_ctx", "kv_bits", "weights_bytes", "kv_bytes", "working_bytes", "total_bytes")
    assert [getattr(shown, f) for f in fields] == [getattr(expected, f) for f in fields]


def test_settings_slider_estimate_matches_engine_memory_plan(qtbot, window, controller):
    from engine import memory

    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    info = controller.model_info
    for index, num_ctx in enumerate(NUM_CTX_STEPS):
        dialog.ctx_slider.setValue(index)
        assert dialog.num_ctx() == num_ctx and dialog.kv_bits() is None
        assert dialog.ctx_value.text() == f"{num_ctx // 1024}K"
        expected = memory.plan(
            info.config, info.weights_bytes, num_ctx, None,
            dtype_bytes=memory.activation_dtype_bytes(),
        )  # fmt: skip
        assert_same_plan(dialog.plan, expected)
        assert f"{expected.total_bytes / 1e9:.1f} GB" in dialog.estimate_label.text()
    too_big = replace(expected, fits=False)
    dialog._plan_memory = lambda n, b: too_big
    dialog._update_estimate()
    assert "Too large" in dialog.estimate_label.text()
    assert dialog.estimate_label.property("fits") is False and not dialog.ok_button.isEnabled()

    def rejected(num_ctx, kv_bits):
        raise ValueError("a 4-bit KV cache needs head_dim (8) to be a multiple of 64")

    dialog._plan_memory = rejected
    dialog._update_estimate()
    assert dialog.plan is None and "head_dim (8)" in dialog.estimate_label.text()
    assert not dialog.ok_button.isEnabled()  # the engine would refuse it


def test_settings_estimate_without_a_model_is_for_nemo_12b_4bit(qtbot, store, qsettings):
    from engine import memory
    from engine.synthetic import preset_config

    nemo = preset_config("nemo-12b")
    c = EngineController()
    try:
        try:
            c.plan_memory(8192, None)
        except RuntimeError:  # the brief asks app/worker.py for it; until then, say so
            pytest.xfail("EngineController.plan_memory has no Nemo 12B 4-bit estimate yet")
        w = make_window(qtbot, store, c, qsettings, ChatSettings())
        dialog = w.make_settings_dialog()
        qtbot.addWidget(dialog)
        dialog.kv_combo.setCurrentIndex(1)  # 8-bit
        for index, num_ctx in enumerate(NUM_CTX_STEPS):
            dialog.ctx_slider.setValue(index)
            expected = memory.plan(
                nemo, memory.NEMO_4BIT_WEIGHTS_BYTES, num_ctx, 8,
                dtype_bytes=memory.activation_dtype_bytes(),
            )  # fmt: skip
            assert_same_plan(dialog.plan, expected)
            assert f"{expected.total_bytes / 1e9:.1f} GB" in dialog.estimate_label.text()
        # DESIGN.md: 12,247,782,400 parameters at 0.5625 bytes each (4-bit, group 64).
        assert dialog.plan.weights_bytes == 12_247_782_400 * 9 // 16
        fits = dialog.plan.total_bytes <= dialog.plan.available_bytes
        assert dialog.ok_button.isEnabled() == fits
        assert dialog.estimate_label.text().startswith("⚠ Too large") != fits
        dialog.ctx_slider.setValue(NUM_CTX_STEPS.index(32768))
        dialog.show()
        screenshot(dialog, "settings-nemo.png")
    finally:
        assert c.shutdown()


def test_settings_apply_without_reload_and_persist(qtbot, window, controller, qsettings, listen):
    loads = []
    listen(controller.stateChanged, lambda s: loads.append(s) if s == "loading" else None)
    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    dialog.ctx_slider.setValue(NUM_CTX_STEPS.index(16384))
    dialog.prompt_edit.setPlainText("Answer briefly.")
    dialog.temperature.setValue(0.7)
    window.apply_settings(dialog.settings())
    assert window.settings.num_ctx == 16384 and window.settings.kv_bits is None
    qtbot.wait(100)
    assert loads == [] and controller.state == "ready"  # no reload
    again = load_settings(qsettings)
    assert again == window.settings and again.system_prompt == "Answer briefly."
    window.apply_settings(FAST)
    qtbot.wait(100)


def test_settings_round_trip_and_bad_values(tmp_path):
    qs = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    assert load_settings(qs) == ChatSettings()
    custom = ChatSettings(32768, 4, "Be nice", 0.5, 0.9, 512, "/models/nemo")
    save_settings(custom, qs)
    assert load_settings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)) == custom
    qs.setValue("chat/num_ctx", "lots")
    qs.setValue("chat/kv_bits", 3)
    qs.setValue("chat/temperature", "9")
    loaded = load_settings(qs)
    assert (loaded.num_ctx, loaded.kv_bits, loaded.temperature) == (8192, None, 2.0)


# --- composer keys


def test_composer_enter_shift_enter_and_escape(qtbot):
    composer = Composer()
    qtbot.addWidget(composer)
    sent, stops = [], []
    one_line = composer.edit.height()
    composer.sendRequested.connect(sent.append)
    composer.stopRequested.connect(lambda: stops.append(True))
    qtbot.keyClicks(composer.edit, "line one")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(composer.edit, "line two")
    assert sent == [] and composer.text() == "line one\nline two"
    assert composer.edit.height() > one_line  # the box grows with the text
    qtbot.keyClick(composer.edit, Qt.Key.Key_Escape)
    assert stops == []  # nothing to stop
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert sent == ["line one\nline two"] and composer.text() == ""
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert sent == ["line one\nline two"]  # empty: nothing sent
    composer.set_generating(True)
    qtbot.keyClicks(composer.edit, "next")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert len(sent) == 1 and composer.text() == "next"  # no second message while answering
    qtbot.keyClick(composer.edit, Qt.Key.Key_Escape)
    assert stops == [True]
    composer.button.click()
    assert stops == [True, True]


def test_keyboard_shortcuts_are_standard(window):
    from PySide6.QtGui import QKeySequence

    assert window.new_action.shortcut() == QKeySequence(QKeySequence.StandardKey.New)
    assert window.find_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Find)
    assert not window.settings_action.shortcut().isEmpty()


# --- rendering


def test_markdown_renders_code_tables_and_escapes_html():
    r = render_markdown(CODE_AND_TABLE + '\n<img src="https://evil.example/x.png">')
    assert "<table" in r.html and "<th>Option</th>" in r.html
    assert r.code_blocks == (
        'people = [{"name": "Ada", "age": 36}, {"name": "Alan", "age": 41}]\n'
        'by_age = sorted(people, key=lambda p: p["age"])\n',
    )
    assert "nemo-copy:0" in r.html and "style=" in r.html  # pygments inline colours
    assert "<img" not in r.html and "&lt;img" in r.html


def test_text_browser_never_loads_resources(qtbot):
    browser = SafeTextBrowser()
    qtbot.addWidget(browser)
    for url in ("https://example.com/a.png", "http://x/y", "file:///etc/passwd"):
        assert (
            browser.loadResource(int(QTextDocument.ResourceType.ImageResource), QUrl(url)) is None
        )


def test_copy_buttons_copy_the_message_and_the_code(qtbot, store, window):
    cid = store.create_conversation("Code").id
    store.add_message(cid, "user", "Sort?")
    store.add_message(cid, "assistant", CODE_AND_TABLE)
    window.open_conversation(cid)
    answer = window.chat_view.widgets()[-1]
    answer.copy_button.click()
    assert QGuiApplication.clipboard().text() == CODE_AND_TABLE
    answer.browser.anchorClicked.emit(QUrl("nemo-copy:0"))
    assert QGuiApplication.clipboard().text().startswith("people = [")


def test_direction_follows_the_first_strong_character():
    assert first_strong_direction("123 مرحبا hello") == "rtl"
    assert first_strong_direction("«你好» مرحبا") == "ltr"
    assert first_strong_direction("1234 !?") is None
    assert 'dir="rtl"' in render_markdown("مرحبا بالعالم\n\nHello").html
    assert render_markdown("Hello\n\nمرحبا").html.count('dir="rtl"') == 1


def test_long_answers_stream_by_rendering_only_their_tail(qtbot):
    from app.views.message import MessageWidget

    block = "```python\n" + "def f(x):\n    return x + 1\n\n" * 12 + "```\n\n"
    text = ("A paragraph with **bold** words and `code`. " * 12 + "\n\n" + block) * 12
    w = MessageWidget(1, "assistant", "", "streaming")
    qtbot.addWidget(w)
    w.resize(760, 400)
    longest = 0
    for end in range(0, len(text) + 1, 97):
        w.stream(text[:end])
        longest = max(longest, len(w.segments[-1].markdown))
    w.stream(text)
    assert "".join(b.markdown for b in w.segments) == text
    assert len(w.segments) > 3 and longest < 3000  # renders stay small as the answer grows
    whole = MessageWidget(2, "assistant", text)
    qtbot.addWidget(whole)
    pieces = "\n".join(b.toPlainText().strip() for b in w.segments)
    assert pieces.split() == whole.browser.toPlainText().split()
    copied = [c for b in w.segments for c in b.rendered.code_blocks]
    assert copied == list(whole.browser.rendered.code_blocks) and len(copied) == 12
    w.set_content("short")  # a full render collapses the pieces
    assert len(w.segments) == 1 and w.browser.markdown == "short"


def test_a_long_pasted_message_is_collapsed_until_asked(qtbot):
    from app.views.message import COLLAPSE_CHARS, MessageWidget

    text = "word " * COLLAPSE_CHARS
    w = MessageWidget(1, "user", text)
    qtbot.addWidget(w)
    assert len(w.browser.toPlainText()) < COLLAPSE_CHARS + 10
    assert not w.expand_button.isHidden() and f"{len(text):,}" in w.expand_button.text()
    w.copy_button.click()
    assert QGuiApplication.clipboard().text() == text  # copy takes it all
    w.expand_button.click()
    assert w.browser.toPlainText().strip() == text.strip() and w.expand_button.isHidden()


def test_user_text_is_shown_as_typed():
    r = render_plain("# not a heading\n<b>x</b>\nمرحبا")
    assert "<h1>" not in r.html and "&lt;b&gt;x&lt;/b&gt;" in r.html
    assert r.html.count("<p") == 3 and r.html.count('dir="rtl"') == 1


def test_stats_line():
    stats = {"generated_tokens": 1234, "ttft_s": 0.4567, "decode_tps": 21.25}
    assert format_stats(stats, "complete") == "1,234 tokens · 0.46 s to first token · 21.2 tok/s"
    assert format_stats(stats, "stopped").endswith(" · stopped")


# --- no model, errors, screenshots


def test_welcome_without_model_keeps_history_browsable(qtbot, store, qsettings):
    c = EngineController()
    try:
        cid = store.create_conversation("Old chat").id
        store.add_message(cid, "user", "An old question")
        w = make_window(qtbot, store, c, qsettings, ChatSettings())
        assert w.stack.currentWidget() is w.welcome
        screenshot(w, "welcome.png")
        w.sidebar.list.setCurrentRow(0)
        assert w.stack.currentWidget() is not w.welcome
        assert shown_texts(w) == [("user", "An old question")]
        w.composer.set_text("typed without a model")
        assert not w.composer.button.isEnabled()
        w.composer.submit()
        assert w.composer.text() == "typed without a model"  # not lost, not sent
        dialog = w.make_settings_dialog()
        qtbot.addWidget(dialog)
        assert "Memory estimate" in dialog.estimate_label.text() or dialog.plan is not None
        w.new_chat()
        assert w.stack.currentWidget() is w.welcome
        with qtbot.waitSignal(c.modelFailed, timeout=WAIT_MS):
            w.load_model(str(store.path.parent / "no-such-model"))
        assert "no-such-model" in w.welcome.status.text()
        assert "no-such-model" in w.status.state_label.text()
    finally:
        assert c.shutdown()


def test_failed_answer_is_shown_inline_and_stored(qtbot, store, controller, qsettings, jobs):
    w = make_window(qtbot, store, controller, qsettings, replace(FAST, num_ctx=2048))
    huge = "word " * 4000  # far more than 2,048 tokens
    w.composer.set_text(huge)
    w.composer.submit()
    assert wait_end(qtbot, jobs.last).of("failed")
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    messages = store.messages(w.current_id)
    assert messages[0].content == huge.strip()  # what the user wrote is kept
    assert messages[1].status == "failed" and "2,048" in messages[1].error
    note = w.chat_view.widgets()[-1].note
    assert note.isVisibleTo(w) and "2,048" in note.text()
    assert not w.generating and w.composer.button.text() == "Send"
    w.composer.set_text("a shorter question")
    assert w.composer.button.isEnabled()


def test_screenshots_conversation_settings_dark(qtbot, qapp, store, window):
    cid = store.create_conversation("Sorting in Python").id
    store.add_message(cid, "user", "How do I sort a list of dicts by a key? Show a table too.")
    store.add_message(
        cid, "assistant", CODE_AND_TABLE,
        stats={"generated_tokens": 112, "ttft_s": 0.41, "decode_tps": 23.4},
    )  # fmt: skip
    store.add_message(cid, "user", "مرحبا! كيف حالك؟")
    store.add_message(
        cid, "assistant", "أنا بخير، شكرا لك.\n\n你好！我很好，谢谢。", status="stopped"
    )
    window.refresh_sidebar()
    window.open_conversation(cid)
    qtbot.wait(50)
    widgets = window.chat_view.widgets()
    assert widgets[2].browser.layoutDirection() == Qt.LayoutDirection.RightToLeft
    assert widgets[1].browser.layoutDirection() == Qt.LayoutDirection.LeftToRight
    screenshot(window, "conversation.png")
    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    dialog.show()
    screenshot(dialog, "settings.png")
    light = qapp.palette()
    try:
        qapp.setPalette(dark_palette())
        apply_style(qapp)  # what main() does when the system switches to dark
        qtbot.wait(50)
        code_html = widgets[1].browser.toHtml()
        assert "#272822" in code_html  # dark code theme after the palette change
        screenshot(window, "dark.png")
    finally:
        qapp.setPalette(light)
        apply_style(qapp)


def test_main_routes_self_test_and_accepts_documents(monkeypatch, tmp_path):
    import app.bridge.selftest
    from app.main import main, parse_args

    seen = []
    monkeypatch.setattr(app.bridge.selftest, "main", lambda argv: seen.append(argv) or 0)
    assert main(["--self-test", "/models/nemo"]) == 0
    assert seen == [["--self-test", "/models/nemo"]]
    args = parse_args(["--model", "/m", "notes.pdf", "b.txt"])
    assert args.model == "/m" and args.documents == ["notes.pdf", "b.txt"]


# Last in the module: app.exec() ends with aboutToQuit, which shuts down every
# EngineController, the module's shared one included.
def test_main_starts_loads_the_model_and_shuts_down(qtbot, qapp, tmp_path, fast_model_dir):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.main import main

    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    seen = {}

    def poll() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        visible = [w for w in windows if w.isVisible()]
        if visible and visible[0].controller.state == "ready":
            seen["status"] = visible[0].status.state_label.text()
            visible[0].close()
        else:
            QTimer.singleShot(50, poll)

    QTimer.singleShot(50, poll)
    history = tmp_path / "main-history.sqlite3"
    assert main(["--history", str(history), "--model", str(fast_model_dir)]) == 0
    assert seen["status"] == "Ready · fast"
    assert history.exists()
    assert load_settings(QSettings()).model_dir == str(fast_model_dir)  # reopened next time
