"""Documents in the chat window: drop → chips → send or Summarize, end to end.

A real EngineController with a tiny model, a Store in tmp_path, Qt offscreen. Drops are real
QDragEnterEvent/QDropEvent carrying file URLs, sent to the window. Token counts are checked
against the Tekken tokenizer the controller counts with; page counts against the files made here.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.chat.prompt import document_block, prompt_content
from app.chat.summarize_flow import eta_text, progress_text
from app.settings import ChatSettings
from app.store.store import Attachment
from app.window import MainWindow

WAIT_MS = 60_000  # generous: 2 shared cores
pytestmark = pytest.mark.usefixtures("app_style")
SCREENS = Path("/tmp/screens")
FAST = ChatSettings(num_ctx=4096, max_tokens=24, temperature=1.0)
SMALL_CTX = replace(FAST, num_ctx=1024)  # a few-thousand-token document needs map-reduce here

NOTES = (
    "Meeting notes, 3 March 2025.\n\nThe board approved the budget of 1.2 million euros for the "
    "new warehouse in Lyon. Construction starts in May and must end before December.\n\n"
    "Action items: Alice sends the contract to the builder; Bob checks the insurance terms."
)


def long_text(paragraphs: int = 60) -> str:
    """A few thousand tokens of varied, plain English (parts split on paragraphs)."""
    out = []
    for i in range(1, paragraphs + 1):
        out.append(
            f"Section {i}. The supplier number {i} delivered {i * 7} crates of parts on day {i}, "
            f"and the inspector recorded {i % 5} defects. Payment of {i * 113} euros is due "
            f"within {10 + i % 20} days; late payment adds a fee of {i % 3 + 1} percent per month."
        )
    return "\n\n".join(out)


@pytest.fixture
def docs(tmp_path: Path) -> dict[str, Path]:
    """A text file, a 3-page PDF, a DOCX and a long text file, made here."""
    import docx

    from engine.cli.bench_documents import build_pdf

    folder = tmp_path / "docs"
    folder.mkdir()
    notes = folder / "notes.txt"
    notes.write_text(NOTES, "utf-8")
    memo = folder / "memo.docx"
    d = docx.Document()
    d.add_paragraph("Memo to all staff.")
    d.add_paragraph("The office closes on Friday at noon for the annual inventory.")
    d.save(str(memo))
    long = folder / "long.txt"
    long.write_text(long_text(), "utf-8")
    return {
        "notes": notes,
        "pdf": build_pdf(folder / "report.pdf", pages=3, lines=6),
        "memo": memo,
        "long": long,
    }


def make_window(qtbot, store, controller, tmp_path, settings=FAST) -> MainWindow:
    qsettings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(store, controller, settings, qsettings)
    qtbot.addWidget(w)
    w.resize(1100, 760)
    w.show()
    return w


def drop(w: MainWindow, paths: list[Path], target=None) -> None:
    """Drags the files onto the window and drops them, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    target = target or w
    center = target.rect().center()
    action, buttons, mods = (
        Qt.DropAction.CopyAction,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(QPoint(center), action, mime, buttons, mods)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(target, QDropEvent(QPointF(center), action, mime, buttons, mods))


def wait_read(qtbot, w: MainWindow) -> None:
    qtbot.waitUntil(
        lambda: not w.documents.reader.busy and not w.documents._reading, timeout=WAIT_MS
    )


def send(qtbot, w: MainWindow, text: str) -> None:
    w.composer.set_text(text)
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    assert w.generating
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)


def wait_answer(qtbot, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)


def record_prompts(monkeypatch, controller) -> list[list[dict]]:
    """The chats the window sends to the engine."""
    sent: list[list[dict]] = []
    original = controller.send

    def recording(messages, settings, **kwargs):
        sent.append([dict(m) for m in messages])
        return original(messages, settings, **kwargs)

    monkeypatch.setattr(controller, "send", recording)
    return sent


def record_summaries(monkeypatch, controller) -> list:
    """The Documents the window asks the engine to summarize."""
    asked: list = []
    original = controller.summarize

    def recording(document, settings, instruction=None):
        asked.append(document)
        return original(document, settings, instruction)

    monkeypatch.setattr(controller, "summarize", recording)
    return asked


def follow_progress(w: MainWindow, slot) -> None:
    """slot(part, count, eta_s, label) for the window's answer, after the window's own."""
    w.answer.summaryProgress.connect(slot)


# --- pure parts


def test_prompt_puts_documents_first_and_never_cuts_one_silently():
    att = Attachment('a "b".txt', "Body text.", "/x/a.txt", 1, 3)
    assert (
        document_block(att.name, att.text)
        == "<document name=\"a 'b'.txt\">\nBody text.\n</document>"
    )
    assert (
        prompt_content("Q?", [att])
        == "<document name=\"a 'b'.txt\">\nBody text.\n</document>\n\nQ?"
    )
    assert prompt_content("Q?", []) == "Q?"
    omitted = prompt_content("Summarize a.txt", [replace(att, tokens=5000)], budget=1000)
    assert "Body text." not in omitted and "5,000 tokens" in omitted and "Not included" in omitted


def test_progress_text():
    assert progress_text(3, 12, 65, "part") == "Summarizing part 3 of 12 · ~1 min left"
    assert progress_text(1, 12, -1, "part") == "Summarizing part 1 of 12…"
    assert (
        progress_text(1, 2, 20, "combine") == "Combining the part summaries (1 of 2) · ~20 s left"
    )
    assert progress_text(1, 1, 4000, "final") == "Writing the summary · ~1 h 7 min left"
    assert eta_text(-1) == "" and eta_text(0.2) == "~1 s"


# --- drop, chips, errors


def test_drop_makes_chips_with_pages_and_tekken_token_counts(
    qtbot, store, controller, docs, tmp_path
):
    w = make_window(qtbot, store, controller, tmp_path)
    drop(w, [docs["notes"], docs["pdf"], docs["memo"]])
    wait_read(qtbot, w)
    chips = {c.attachment.name: c for c in w.chips.chips()}
    assert sorted(chips) == ["memo.docx", "notes.txt", "report.pdf"]
    notes, pdf, memo = chips["notes.txt"], chips["report.pdf"], chips["memo.docx"]
    assert notes.attachment.text == NOTES and notes.attachment.pages == 1
    assert pdf.attachment.pages == 3 and "[page 3]" in pdf.attachment.text
    assert "annual inventory" in memo.attachment.text
    for chip in chips.values():
        a = chip.attachment
        assert a.tokens == controller.count_tokens(a.text) > 0
        block = [{"role": "user", "content": document_block(a.name, a.text)}]
        assert a.prompt_tokens == controller.count_chat_tokens(block)
        assert f"{a.tokens:,} tokens" in chip.detail_label.text() and chip.fits
        assert chip.detail_label.text().endswith("fits")
    assert "3 pages" in pdf.detail_label.text() and "page" not in notes.detail_label.text()
    assert w.chips.isVisible() and w.current_id is None  # nothing sent or stored yet
    assert store.list_conversations() == []


def test_removing_a_chip_leaves_it_out_of_the_message(qtbot, store, controller, docs, tmp_path):
    w = make_window(qtbot, store, controller, tmp_path)
    drop(w, [docs["notes"], docs["memo"]])
    wait_read(qtbot, w)
    qtbot.mouseClick(w.chips.chip("notes.txt").remove_button, Qt.MouseButton.LeftButton)
    assert [a.name for a in w.chips.attachments()] == ["memo.docx"]
    send(qtbot, w, "What does the memo say?")
    user = store.messages(w.current_id)[0]
    assert [a.name for a in user.attachments] == ["memo.docx"]
    assert w.chips.attachments() == [] and not w.chips.isVisible()  # sent: the chips go


def test_bad_files_show_the_error_naming_each_file_and_touch_nothing(
    qtbot, store, controller, tmp_path
):
    w = make_window(qtbot, store, controller, tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(bytes(range(256)) * 20)
    odd = tmp_path / "picture.xyz"
    odd.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    drop(w, [empty, binary, odd])
    wait_read(qtbot, w)
    notice = w.chips.notice.text()
    assert "empty.txt: the file is empty" in notice
    assert re.search(r"binary\.txt: .*(binary|text)", notice)
    assert "picture.xyz: a PNG image (by its content) is not supported" in notice
    assert w.chips.notice.property("error") is True and w.chips.notice.isVisible()
    assert "picture.xyz" in w.status.state_label.text()
    assert w.chips.attachments() == [] and store.list_conversations() == []
    assert w.current_id is None and w.chat_view.widgets() == []
    send(qtbot, w, "Still fine?")  # the chat works on
    assert [m.role for m in store.messages(w.current_id)] == ["user", "assistant"]


# --- sending with a document


def test_sending_stores_the_document_with_the_message_and_prompts_with_its_text(
    qtbot, store, controller, docs, tmp_path, monkeypatch
):
    w = make_window(qtbot, store, controller, tmp_path)
    prompts = record_prompts(monkeypatch, controller)
    drop(w, [docs["notes"]])
    wait_read(qtbot, w)
    send(qtbot, w, "When does construction start?")
    user, answer = store.messages(w.current_id)
    assert user.content == "When does construction start?"
    (att,) = user.attachments
    assert (att.name, att.text, att.pages, att.path) == ("notes.txt", NOTES, 1, str(docs["notes"]))
    assert att.tokens == controller.count_tokens(NOTES)
    expected = f'<document name="notes.txt">\n{NOTES}\n</document>\n\nWhen does construction start?'
    assert prompts[-1][-1] == {"role": "user", "content": expected}
    assert answer.status == "complete"
    shown = w.chat_view.message_widget(user.id).attachments_label.text()
    # After a document icon; a TXT has no real pages, so no "1 page" (issue 17 #7).
    assert f"notes.txt · {att.tokens:,} tokens" in shown and "page" not in shown
    send(qtbot, w, "And who checks the insurance?")  # follow-up: the document is still sent
    assert prompts[-1][0]["content"] == expected and len(prompts[-1]) == 3


def test_a_document_too_long_for_the_context_blocks_send_and_offers_summarize(
    qtbot, store, controller, docs, tmp_path
):
    w = make_window(qtbot, store, controller, tmp_path, SMALL_CTX)
    drop(w, [docs["long"]])
    wait_read(qtbot, w)
    chip = w.chips.chip("long.txt")
    assert not chip.fits and "too long for 1,024" in chip.detail_label.text()
    assert chip.summarize_button.isVisible() and chip.summarize_button.isEnabled()
    assert chip.summarize_button.property("primary") is True
    w.composer.set_text("What is due on day 7?")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    assert not w.generating and store.list_conversations() == []
    assert w.composer.text() == "What is due on day 7?"  # nothing the user wrote is lost
    assert "long.txt needs" in w.chips.notice.text() and "Summarize" in w.chips.notice.text()
    assert w.chips.attachments() == [chip.attachment]
    SCREENS.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(SCREENS / "documents_too_long.png"))


# --- summarize


def test_summarize_long_document_shows_parts_and_stores_the_summary(
    qtbot, store, controller, docs, tmp_path, listen, monkeypatch
):
    w = make_window(qtbot, store, controller, tmp_path, SMALL_CTX)
    drop(w, [docs["long"]])
    wait_read(qtbot, w)
    progress, notes, chunks = [], [], []

    def on_progress(part, count, eta_s, label):
        progress.append((part, count, label))
        widget = w.chat_view.message_widget(w.answer.answer_id)
        notes.append(widget.note.text() if widget.note.isVisible() else "")

    listen(controller.jobSubmitted, lambda job: job.text.connect(chunks.append))
    qtbot.mouseClick(w.chips.chip("long.txt").summarize_button, Qt.MouseButton.LeftButton)
    follow_progress(w, on_progress)
    wait_answer(qtbot, w)
    parts = [(p, c) for p, c, label in progress if label == "part"]
    count = parts[0][1]
    assert count >= 3 and parts == [(i, count) for i in range(1, count + 1)]  # every part, in order
    assert progress[0] == (0, count, "plan") and progress[-1][2] == "final"
    assert any(re.fullmatch(rf"Summarizing part 2 of {count}( · ~\d+ s left|…)", n) for n in notes)
    user, answer = store.messages(w.current_id)
    assert user.content == "Summarize long.txt" and user.attachments[0].text == long_text()
    assert answer.status == "complete" and answer.content == "".join(chunks) != ""
    assert w.chips.attachments() == [] and not w.generating
    assert store.get_conversation(w.current_id).title == "Summarize long.txt"

    # Regenerate writes a summary again (not a chat reply to a document it cannot see).
    progress.clear()
    w.regenerate(answer.id)
    follow_progress(w, lambda part, count, eta, label: progress.append((part, count, label)))
    wait_answer(qtbot, w)
    assert progress[0][2] == "plan" and progress[-1][2] == "final"
    user, answer = store.messages(w.current_id)
    assert user.content == "Summarize long.txt" and answer.status == "complete"

    # A follow-up: the document is over the context, so a note stands for it; the summary stays.
    prompts = record_prompts(monkeypatch, controller)
    send(qtbot, w, "Which supplier had the most defects?")
    first, summary, question = prompts[-1]
    assert "Not included" in first["content"] and "Section 17." not in first["content"]
    assert summary == {"role": "assistant", "content": answer.content}
    assert question["content"] == "Which supplier had the most defects?"


def test_regenerate_of_a_summary_is_the_same_part_wise_summary_with_name_and_pages(
    qtbot, store, controller, docs, tmp_path, monkeypatch
):
    """Regenerate summarizes the same Document as the first run, not the attachment's plain
    text: same file name, same pages, so the same parts and the same prompts with "[page N]"."""
    from engine.docs.summarize_plan import plan_summary
    from engine.tokenizer import load_tokenizer

    w = make_window(qtbot, store, controller, tmp_path, SMALL_CTX)
    drop(w, [docs["pdf"]])
    wait_read(qtbot, w)
    asked = record_summaries(monkeypatch, controller)
    w.summaries.start(w.chips.chip("report.pdf").attachment)
    wait_answer(qtbot, w)
    answer = store.messages(w.current_id)[-1]
    w.regenerate(answer.id)
    wait_answer(qtbot, w)
    first, again = asked
    assert again.name == first.name == "report.pdf" and again.kind == first.kind == "pdf"
    assert [p.number for p in again.pages] == [p.number for p in first.pages] == [1, 2, 3]
    assert again.cited_text() == first.cited_text()
    tok = load_tokenizer(None)
    for num_ctx in (SMALL_CTX.num_ctx, 512):  # one pass, and split into parts by page
        plans = [plan_summary(d, tok, num_ctx, 64) for d in (first, again)]
        parts = [
            [(p.source, p.first_page, p.last_page, p.prompt) for p in pl.parts] for pl in plans
        ]
        assert parts[0] == parts[1] and parts[0][0][0] == "report.pdf"
        assert parts[0][0][1] == 1  # pages, as in the first run
    assert len(plan_summary(again, tok, 512, 64).parts) > 1
    assert store.messages(w.current_id)[-1].status == "complete"


def test_stop_mid_summary_keeps_the_chat_usable(qtbot, store, controller, docs, tmp_path, listen):
    """Also the screenshot: two chips waiting, one summary in progress."""
    w = make_window(qtbot, store, controller, tmp_path, SMALL_CTX)
    drop(w, [docs["long"], docs["notes"], docs["pdf"]])
    wait_read(qtbot, w)
    shot: list[str] = []

    def on_progress(part, count, eta_s, label):
        if label == "part" and part == 2 and not shot:
            QApplication.processEvents()  # let the note lay out before the picture
            SCREENS.mkdir(parents=True, exist_ok=True)
            w.grab().save(str(SCREENS / "documents.png"))
            shot.append(w.chat_view.message_widget(w.answer.answer_id).note.text())
            qtbot.keyClick(w.composer.edit, Qt.Key.Key_Escape)  # Esc stops, like Stop

    finished = []
    listen(controller.jobSubmitted, lambda job: job.finished.connect(finished.append))
    w.summaries.start(w.chips.chip("long.txt").attachment)
    follow_progress(w, on_progress)
    assert w.composer.generating and w.composer.button.text() == "Stop"
    wait_answer(qtbot, w)
    assert shot and shot[0].startswith("Summarizing part ")  # batched: later parts start too
    assert finished[0].finish_reason == "cancelled"
    user, answer = store.messages(w.current_id)
    assert user.content == "Summarize long.txt" and answer.status == "stopped"
    assert not w.generating and not w.composer.generating
    assert [a.name for a in w.chips.attachments()] == ["notes.txt", "report.pdf"]
    w.chips.clear()
    send(qtbot, w, "Hello again")
    messages = store.messages(w.current_id)
    assert [(m.role, m.status) for m in messages[2:]] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]


def test_open_document_attaches_the_file_and_offers_summarize(
    qtbot, store, controller, docs, tmp_path
):
    w = make_window(qtbot, store, controller, tmp_path)
    w.open_document(str(docs["pdf"]))
    wait_read(qtbot, w)
    chip = w.chips.chip("report.pdf")
    assert chip is not None and chip.attachment.pages == 3
    assert chip.summarize_button.isVisible() and chip.summarize_button.isEnabled()
    assert "report.pdf is attached" in w.status.state_label.text()
    assert "Summarize" in w.status.state_label.text()
    qtbot.mouseClick(chip.summarize_button, Qt.MouseButton.LeftButton)
    wait_answer(qtbot, w)
    user, answer = store.messages(w.current_id)
    assert user.attachments[0].name == "report.pdf" and answer.status == "complete"


def test_attach_button_ctrl_o_and_drops_on_the_text_box(
    qtbot, store, controller, docs, tmp_path, monkeypatch
):
    from PySide6.QtGui import QKeySequence
    from PySide6.QtWidgets import QFileDialog

    w = make_window(qtbot, store, controller, tmp_path)
    assert w.menu_actions.attach.shortcut() == QKeySequence(QKeySequence.StandardKey.Open)
    assert w.menu_actions.open_model.shortcut() == QKeySequence("Ctrl+Shift+O")
    chosen = [[str(docs["notes"])], [str(docs["memo"]), str(docs["pdf"])]]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (chosen.pop(0), ""))
    qtbot.mouseClick(w.composer.attach_button, Qt.MouseButton.LeftButton)
    w.menu_actions.attach.trigger()  # what Ctrl/Cmd+O does
    wait_read(qtbot, w)
    assert [a.name for a in w.chips.attachments()] == ["notes.txt", "memo.docx", "report.pdf"]
    # A drop on the message box attaches too, instead of pasting the file's URL as text.
    w.composer.set_text("draft")
    drop(w, [docs["long"]], target=w.composer.edit.viewport())
    wait_read(qtbot, w)
    assert w.chips.chip("long.txt") is not None and w.composer.text() == "draft"


def test_a_context_too_small_to_summarize_fails_with_a_clear_message(
    qtbot, store, controller, docs, tmp_path
):
    w = make_window(qtbot, store, controller, tmp_path, replace(FAST, num_ctx=256, max_tokens=200))
    drop(w, [docs["long"]])
    wait_read(qtbot, w)
    w.summaries.start(w.chips.chip("long.txt").attachment)
    wait_answer(qtbot, w)
    user, answer = store.messages(w.current_id)
    assert user.attachments[0].name == "long.txt"  # the request and its document are kept
    assert answer.status == "failed" and "context of 256 tokens is too small" in answer.error
    assert "too small" in w.status.state_label.text() and not w.generating
