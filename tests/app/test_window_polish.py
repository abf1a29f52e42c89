"""Issue 17, the window items: search hits, chips per chat, Esc anywhere, a current context meter
and the transcript's "left out" divider, export's file name, stored document counts, a bad
model folder not retried at every start, and a downloader that imports no HTTP client early.

A real EngineController with the tiny fast model (tests/app/conftest.py); Qt offscreen.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QApplication, QFileDialog

from app.chat.context_meter import estimate_context
from app.chat.prompt import prompt_budget
from app.settings import ChatSettings
from app.store.export import export_file_name
from app.store.store import Attachment, Store
from app.views.message import attachment_line
from app.window import MainWindow

WAIT_MS = 60_000
FAST = ChatSettings(num_ctx=4096, max_tokens=24, temperature=1.0)
LONG = replace(FAST, max_tokens=3000)  # long enough to be stopped mid-stream
pytestmark = pytest.mark.usefixtures("app_style")


def make_window(qtbot, store, controller, qsettings, settings=FAST) -> MainWindow:
    w = MainWindow(store, controller, settings, qsettings)
    qtbot.addWidget(w)
    w.resize(1100, 760)
    w.show()
    qtbot.waitExposed(w)
    return w


def long_chat(store: Store, exchanges: int = 24, words: int = 60) -> int:
    """A stored chat of `exchanges` question/answer pairs, ~`words` words each."""
    cid = store.create_conversation("A long chat").id
    for i in range(exchanges):
        filler = " ".join(f"word{i}x{j}" for j in range(words))
        store.add_message(cid, "user", f"Question {i}: {filler}")
        store.add_message(cid, "assistant", f"Answer {i}: {filler}")
    return cid


def meter(w: MainWindow) -> tuple[int, int]:
    used, num_ctx = re.match(r"([\d,]+) / ([\d,]+) tokens", w.status.context_label.text()).groups()
    return int(used.replace(",", "")), int(num_ctx.replace(",", ""))


def count(controller, messages) -> int:
    return controller.count_chat_tokens(messages)


def divider_above(w: MainWindow) -> int | None:
    """The message id right below the divider in the layout, when it is shown."""
    view = w.chat_view
    if view.divider.isHidden():
        return None
    index = view._layout.indexOf(view.divider)
    below = view._layout.itemAt(index + 1).widget()
    return below.message_id


# --- 3. a search hit is scrolled to and highlighted


def test_clicking_a_search_hit_scrolls_to_the_message_and_highlights_it(
    qtbot, store, controller, qsettings
):
    cid = long_chat(store, exchanges=20)
    target = store.add_message(cid, "user", "Where is the zebracorn parade this year?")
    for i in range(12):  # enough below it that the chat opened at the bottom cannot show it
        store.add_message(cid, "assistant" if i % 2 == 0 else "user", f"Later message {i}. " * 20)
    w = make_window(qtbot, store, controller, qsettings)
    w.sidebar.search_box.setText("zebracorn")
    qtbot.waitUntil(lambda: w.sidebar.searching and w.sidebar.list.count() == 1, timeout=WAIT_MS)
    item = w.sidebar.list.item(0)
    rect = w.sidebar.list.visualItemRect(item)
    qtbot.mouseClick(w.sidebar.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

    view = w.chat_view

    def hit_in_view() -> bool:
        widget = view.message_widget(target.id)
        if widget is None or not widget.isVisible():
            return False
        top_left = widget.mapTo(view.viewport(), widget.rect().topLeft())
        return view.viewport().rect().contains(QRect(top_left, widget.size()))

    qtbot.waitUntil(hit_in_view, timeout=WAIT_MS)
    assert view.verticalScrollBar().value() < view.verticalScrollBar().maximum()  # not the end
    assert view.highlighted_id == target.id
    widget = view.message_widget(target.id)
    assert widget.property("searchHit") is True
    assert [m.lower() for m in view.marked_terms()] == ["zebracorn"]  # the word is marked too
    # It stays in place once the layout has settled (no jump back to the bottom).
    qtbot.waitUntil(lambda: not view._render_timer.isActive(), timeout=WAIT_MS)
    QApplication.processEvents()
    assert hit_in_view()


# --- 4. chips belong to their conversation


def test_chips_stay_with_their_chat_and_never_block_a_new_one(
    qtbot, store, controller, qsettings, tmp_path
):
    small = replace(FAST, num_ctx=2048)
    cid = long_chat(store, exchanges=1)
    w = make_window(qtbot, store, controller, qsettings, small)
    w.open_conversation(cid)
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Line {i} of a long report about budgets." for i in range(600)))
    w.documents.attach([str(big), str(tmp_path / "missing.pdf")])
    qtbot.waitUntil(
        lambda: not w.documents.reader.busy and not w.documents._reading, timeout=WAIT_MS
    )
    assert [a.name for a in w.chips.attachments()] == ["big.txt"]
    assert not w.chips.chips()[0].fits  # too long for 2,048: it would block sending
    assert "missing.pdf" in w.chips.notice.text()

    w.new_chat()
    assert w.chips.attachments() == [] and w.chips.notice.text() == ""
    assert w.chips.isHidden()
    w.composer.set_text("Hello in a fresh chat")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    assert w.generating, "a chip of another chat blocked the send"
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    new_id = w.current_id
    assert new_id != cid and [m.role for m in store.messages(new_id)] == ["user", "assistant"]
    assert store.messages(new_id)[0].attachments == ()

    w.open_conversation(cid)  # back: its chip and its error are where they were
    assert [a.name for a in w.chips.attachments()] == ["big.txt"]
    assert "missing.pdf" in w.chips.notice.text()
    w.open_conversation(new_id)
    assert w.chips.attachments() == []


def test_a_new_chat_keeps_its_chips_when_its_first_message_is_sent(
    qtbot, store, controller, qsettings, tmp_path
):
    notes = tmp_path / "notes.txt"
    notes.write_text("The budget is 1.2 million euros.", "utf-8")
    w = make_window(qtbot, store, controller, qsettings)
    w.new_chat()
    w.documents.attach([str(notes)])
    qtbot.waitUntil(
        lambda: not w.documents.reader.busy and not w.documents._reading, timeout=WAIT_MS
    )
    w.composer.set_text("What is the budget?")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    (sent,) = store.messages(w.current_id)[0].attachments
    assert sent.name == "notes.txt" and sent.unit == ""  # a TXT has no pages
    assert w.chips.attachments() == []  # sent: gone from the composer
    label = w.chat_view.widgets()[0].attachments_label.accessibleName()
    assert "page" not in label and "tokens" in label
    w.new_chat()
    w.open_conversation(store.list_conversations()[0].id)
    assert w.chips.attachments() == []  # nothing came back after the send


# --- 5. Esc stops from anywhere in the window while an answer streams


def test_esc_with_focus_in_the_sidebar_stops_the_answer(qtbot, store, controller, qsettings):
    w = make_window(qtbot, store, controller, qsettings, LONG)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=WAIT_MS)
    assert not w.menu_actions.stop.isEnabled()  # Esc belongs to others while nothing streams
    w.composer.set_text("Tell me a very long story")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.answer is not None and bool(w.answer.text), timeout=WAIT_MS)
    assert w.menu_actions.stop.isEnabled()
    w.sidebar.list.setFocus()
    qtbot.waitUntil(lambda: w.sidebar.list.hasFocus(), timeout=WAIT_MS)
    qtbot.keyClick(w.sidebar.list, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    answer = store.messages(w.current_id)[-1]
    assert answer.status == "stopped"
    assert not w.menu_actions.stop.isEnabled()


# --- 6. the meter is current; the transcript marks what the model no longer reads


def test_meter_follows_num_ctx_and_a_reopened_long_chat_shows_the_divider(
    qtbot, store, controller, qsettings
):
    cid = long_chat(store, exchanges=24)
    small = replace(FAST, num_ctx=2048, max_tokens=256)
    w = make_window(qtbot, store, controller, qsettings, small)
    w.open_conversation(cid)
    history = store.messages(cid)
    full = count(controller, [{"role": m.role, "content": m.content} for m in history]
                 + [{"role": "user", "content": ""}])  # fmt: skip
    assert full > 2048  # the chat the issue saw as "7,996 / 2,048"
    used, num_ctx = meter(w)
    assert num_ctx == 2048 and used <= prompt_budget(2048, 256)
    first = divider_above(w)
    assert first is not None and first != history[0].id
    assert "left out" in w.chat_view.divider.label.text()
    assert "left out" in w.status.trimmed_label.text()

    w.apply_settings(replace(small, num_ctx=16384))  # everything fits now
    assert meter(w) == (full, 16384)
    assert divider_above(w) is None

    w.apply_settings(replace(small, num_ctx=4096))
    used, num_ctx = meter(w)
    assert num_ctx == 4096 and used <= prompt_budget(4096, 256) and divider_above(w) is not None


def test_the_divider_is_where_the_engine_left_messages_out(
    qtbot, store, controller, qsettings, listen
):
    """The estimate mirrors the engine's own fitting: after a real send that was trimmed, the
    engine's ContextTrimmed count and the estimate for that prompt agree."""
    cid = long_chat(store, exchanges=24)
    small = replace(FAST, num_ctx=2048, max_tokens=24)
    w = make_window(qtbot, store, controller, qsettings, small)
    w.open_conversation(cid)
    trims = []
    listen(controller.jobSubmitted, lambda job: job.trimmed.connect(lambda d, *_: trims.append(d)))
    w.composer.set_text("And what comes next?")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    assert trims and trims[0] > 0
    history = store.messages(cid)[:-1]  # as sent: up to the new question
    estimate = estimate_context(None, history, 2048, 24, lambda m: controller.count_chat_tokens(m))
    assert estimate.left_out == trims[0]
    assert divider_above(w) == estimate.first_seen_id
    assert f"{trims[0]} earlier messages left out" in w.chat_view.divider.label.text()


# --- 7. export's name, stored document counts, a bad model folder


def test_export_suggests_a_file_name_without_colons_or_question_marks(
    qtbot, store, controller, qsettings, monkeypatch, tmp_path
):
    cid = store.create_conversation('Why: is "x" 2/3? <ok>').id
    store.add_message(cid, "user", "hi")
    w = make_window(qtbot, store, controller, qsettings)
    w.open_conversation(cid)
    asked = []

    def fake_dialog(parent, caption, directory, filter_):
        asked.append(directory)
        return str(tmp_path / "out.md"), filter_

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake_dialog))
    w.export_chat()
    name = Path(asked[0]).name
    assert name == export_file_name('Why: is "x" 2/3? <ok>') == "Why- is x 2-3 ok.md"
    assert (tmp_path / "out.md").read_text("utf-8").startswith("# Why")


def test_stored_attachments_count_pages_only_where_pages_are_real():
    old_docx = Attachment("memo.docx", "text", pages=1, tokens=40)  # a row from before `unit`
    old_pdf = Attachment("report.pdf", "text", pages=12, tokens=8431)
    slides = Attachment("deck.key.pptx", "text", pages=1, tokens=9, unit="slide")
    txt = Attachment("notes.txt", "text", pages=1, tokens=7, unit="")
    assert attachment_line([old_docx]) == "memo.docx · 40 tokens"
    assert attachment_line([old_pdf]) == "report.pdf · 12 pages · 8,431 tokens"
    assert (
        attachment_line([slides, txt])
        == "deck.key.pptx · 1 slide · 9 tokens   notes.txt · 7 tokens"
    )
    assert (
        Attachment.from_dict({"name": "a.pdf", "text": "", "pages": 3}).count_label() == "3 pages"
    )


def test_a_model_folder_that_failed_is_not_loaded_again_at_the_next_start(
    qtbot, store, qsettings, tmp_path, fast_model_dir
):
    from app.bridge.engine_controller import EngineController

    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text("{not json", "utf-8")
    controller = EngineController()
    try:
        settings = replace(FAST, model_dir=str(bad))
        first = make_window(qtbot, store, controller, qsettings, settings)
        with qtbot.waitSignal(controller.modelFailed, timeout=WAIT_MS):
            first.start_model()
        assert first.failed_model()[0] == str(bad)
        first.close()

        loads = []
        controller.jobSubmitted.connect(lambda job: loads.append(job.kind))
        second = make_window(qtbot, store, controller, qsettings, settings)  # the next start
        second.start_model()
        assert loads == []  # not retried
        assert second.welcome.status.isVisible() and "did not load last time" in (
            second.welcome.status.text()
        )
        with qtbot.waitSignal(controller.modelLoaded, timeout=WAIT_MS):
            second.load_model(str(fast_model_dir))  # the user picks a folder: it loads
        assert second.failed_model() is None and second.welcome.status.text() == ""
        assert loads == ["load"]
    finally:
        assert controller.shutdown()


# --- 13. the downloader imports no HTTP client before the window shows


def test_the_downloader_imports_no_http_client_until_a_download_starts():
    import engine.hub.download as hub
    from app.bridge import downloader

    assert (downloader.DEFAULT_REPO, downloader.ORIGINAL_REPO) == (
        hub.DEFAULT_REPO,
        hub.ORIGINAL_REPO,
    )
    code = (
        "import sys; import app.bridge.downloader as d; d.Downloader().partial(); "
        "print(sorted(m for m in ('httpx', 'httpx2', 'huggingface_hub') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
