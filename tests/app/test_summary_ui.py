"""Long documents in the window: the per-part strip, stop and "Continue summary" (also after a
restart), the plan dialog, asking across a whole document, several documents at once.

The strip test runs the real tiny model (the `controller` fixture). The others run a scripted
backend on a real EngineController (EngineService.use): its answers are deterministic (facts
with the page they sit on, NOTHING RELEVANT elsewhere: tests.engine.summary_helpers) and a
gate holds a model call, so "stop after k parts" is exact on a loaded machine.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QPushButton

from app.chat.attachments import PendingAttachment
from app.chat.prompt import document_block
from app.settings import ChatSettings
from app.store.store import Store
from app.views.message import format_stats
from app.window import MainWindow
from engine.backend import ModelInfo
from engine.docs.document import Document, Page
from engine.docs.summarize_events import PartDone, SummaryPlan
from engine.events import Finished, GenerationStats, TextChunk
from engine.tokenizer import load_tokenizer
from tests.engine.summary_helpers import Model

WAIT_MS = 60_000
SHOTS = Path("/tmp/summary_shots")
SCRIPTED = ChatSettings(num_ctx=2048, max_tokens=64, temperature=0.0, summary_part_cap=1024)
pytestmark = pytest.mark.usefixtures("app_style")


# --- a scripted backend on a real controller


class Scripted:
    """A Backend whose model calls are tests.engine.summary_helpers.Model's; `hold_at` makes
    that call wait (on the engine thread) until `release` is set."""

    def __init__(self) -> None:
        from engine.synthetic import preset_config

        self.tok = load_tokenizer(None)
        self.model = Model(self.tok, on_call=self._on_call)
        self.hold_at = 0
        self.reached, self.release = threading.Event(), threading.Event()
        self._info = ModelInfo(
            "scripted", "this computer", True, weights_bytes=1_000_000,
            config=preset_config("tiny"),
        )  # fmt: skip

    @property
    def info(self) -> ModelInfo:
        return self._info

    def _on_call(self, n: int) -> None:
        if n == self.hold_at:
            self.reached.set()
            self.release.wait(WAIT_MS / 1000)

    def hold(self, call: int) -> None:
        """Hold the `call`-th model call from now until release is set."""
        self.hold_at = len(self.model.calls) + call
        self.reached.clear()
        self.release.clear()

    def generate_fn(self, options):
        return self.model

    def token_counter(self):
        return self.tok

    def chat(self, request, cancel):
        yield TextChunk("ok")
        yield Finished(GenerationStats(5, 0, 5, 1, 0.01, 500.0, 50.0, 0, "stop"))

    def complete(self, request, cancel):
        return self.chat(request, cancel)

    def forget(self, key: str) -> None:
        pass

    def close(self) -> None:
        pass


def scripted_controller(qtbot):
    from app.bridge.engine_controller import EngineController

    c, backend = EngineController(), Scripted()
    job, sink = c._job("load")
    job.attach(c.service.use(lambda: backend, sink))
    qtbot.waitUntil(lambda: c.state == "ready", timeout=WAIT_MS)
    return c, backend


@pytest.fixture
def scripted(qtbot):
    c, backend = scripted_controller(qtbot)
    yield c, backend
    backend.release.set()
    assert c.shutdown()


# --- documents and the window


def book(name: str, pages: int, facts: dict[int, str] | None = None) -> Document:
    """A paginated document of about 130 tokens a page; `facts` planted on their pages."""
    facts = facts or {}
    made = []
    for n in range(1, pages + 1):
        lines = [
            f"The ledger of {name}, line {n}-{i}, lists {i * n + 3} crates." for i in range(10)
        ]
        if n in facts:
            lines.insert(5, facts[n])
        made.append(Page(n, " ".join(lines)))
    plain = "\n\n".join(p.text for p in made)
    return Document(Path(name), name, "pdf", plain, tuple(made), pages)


def attachment(doc: Document) -> PendingAttachment:
    tok = load_tokenizer(None)
    text = doc.cited_text()
    prompt = tok.encode_chat([{"role": "user", "content": document_block(doc.name, text)}])
    return PendingAttachment(
        str(doc.path), doc.name, text, doc.page_count, len(tok.encode(text)), len(prompt),
        document=doc,
    )  # fmt: skip


def make_window(qtbot, store, controller, tmp_path, settings=SCRIPTED, size=(1100, 760)):
    qsettings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(store, controller, settings, qsettings)
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    return w


def attach(w: MainWindow, *docs: Document) -> list[PendingAttachment]:
    return [w.chips.add(attachment(d)).attachment for d in docs]


def wait_answer(qtbot, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def continue_button(w: MainWindow) -> QPushButton | None:
    last = w.chat_view.widgets()[-1]
    return last.findChild(QPushButton, "continueSummary")


def stop_after(qtbot, w: MainWindow, backend: Scripted, k: int) -> None:
    """Start is done by the caller after backend.hold(k + 1): wait for k parts, press Stop."""
    qtbot.waitUntil(backend.reached.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: w.summaries.strip.done_count() == k, timeout=WAIT_MS)
    qtbot.mouseClick(w.composer.button, Qt.MouseButton.LeftButton)  # Stop
    backend.release.set()
    wait_answer(qtbot, w)


# --- the strip, with the real tiny model


def test_the_strip_shows_every_part_and_ends_all_done(qtbot, store, controller, tmp_path):
    settings = ChatSettings(num_ctx=1024, max_tokens=24, temperature=1.0)
    w = make_window(qtbot, store, controller, tmp_path, settings)
    (att,) = attach(w, book("long.pdf", 14))
    seen: list[list[str]] = []
    assert w.summaries.start(att)
    strip = w.summaries.strip
    assert strip.isVisible()
    w.answer.job.progress.connect(lambda _e: seen.append(strip.states()))
    wait_answer(qtbot, w)
    plan = of(w.summaries.events, SummaryPlan)[0]
    assert plan.parts >= 3 and len(seen[0]) == plan.parts
    assert set(seen[0]) == {"pending"}  # drawn up front, nothing read yet
    assert any("reading" in states for states in seen)
    assert strip.states() == ["done"] * plan.parts and not strip.isVisible()
    done = of(w.summaries.events, PartDone)
    assert sorted(e.index for e in done) == list(range(1, plan.parts + 1))
    user, answer = store.messages(w.current_id)
    assert answer.status == "complete" and user.content == "Summarize long.pdf"
    assert f"Covered: pages 1–14 of 14, {plan.parts} parts." in answer.content  # the footer
    assert store.summary_parts.count(user.id) == plan.parts  # kept as they finished


# --- stop, continue, restart (scripted)


def test_stop_after_k_parts_keeps_them_and_continue_reads_only_the_rest(
    qtbot, store, scripted, tmp_path
):
    c, backend = scripted
    w = make_window(qtbot, store, c, tmp_path)
    (att,) = attach(w, book("book.pdf", 24))
    k = 2
    backend.hold(k + 1)
    w.summaries.start(att)
    stop_after(qtbot, w, backend, k)
    n = of(w.summaries.events, SummaryPlan)[0].parts
    assert n > k + 1
    user, stopped = store.messages(w.current_id)
    assert stopped.status == "stopped" and store.summary_parts.count(user.id) == k
    rows = store.summary_parts.rows(user.id)
    assert [r["index"] for r in rows] == [1, 2] and rows[0]["first_page"] == 1
    unread = f"not read yet: pages {rows[-1]['last_page'] + 1}–24."
    assert f"Stopped after {k} of {n} parts; {unread}" in stopped.content
    assert rows[0]["text"] in stopped.content  # the finished parts are shown
    stats = format_stats(stopped.stats, stopped.status)
    assert stopped.stats["generated_tokens"] > 0 and not stats.startswith("0 tokens")
    button = continue_button(w)
    assert button is not None and button.text() == "Continue summary"

    calls = len(backend.model.calls)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    wait_answer(qtbot, w)
    done = of(w.summaries.events, PartDone)
    assert sorted(e.index for e in done if e.resumed) == [1, 2]
    assert sorted(e.index for e in done if not e.resumed) == list(range(k + 1, n + 1))
    read = backend.model.calls[calls:]
    assert len(read) == n - k + 1  # the unread parts, then one combine
    assert all("[page 1]" not in prompt for prompt in read[:-1])  # part 1 not read again
    messages = store.messages(w.current_id)
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert "Covered: pages 1–24 of 24" in messages[-1].content
    assert store.summary_parts.count(user.id) == n and continue_button(w) is None


def test_continue_after_a_restart_reads_only_the_rest(qtbot, scripted, tmp_path):
    c, backend = scripted
    path = tmp_path / "history.sqlite3"
    store = Store(path)
    w = make_window(qtbot, store, c, tmp_path)
    (att,) = attach(w, book("book.pdf", 24))
    backend.hold(2)
    w.summaries.start(att)
    stop_after(qtbot, w, backend, 1)
    conversation = w.current_id
    w.close()
    store.close()

    store = Store(path)  # the app quit and started again: a new store and engine
    try:
        c2, backend2 = scripted_controller(qtbot)
        w2 = make_window(qtbot, store, c2, tmp_path)
        w2.open_conversation(conversation)
        button = continue_button(w2)
        assert button is not None
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        wait_answer(qtbot, w2)
        done = of(w2.summaries.events, PartDone)
        n = of(w2.summaries.events, SummaryPlan)[0].parts
        assert [e.index for e in done if e.resumed] == [1]
        assert len(backend2.model.calls) == n - 1 + 1  # the rest and the combine
        assert store.messages(conversation)[-1].status == "complete"
        w2.close()
        assert c2.shutdown()
    finally:
        store.close()


# --- the plan dialog


def test_a_long_estimate_shows_the_plan_and_a_larger_context_changes_the_run(
    qtbot, store, scripted, tmp_path
):
    c, _backend = scripted
    settings = replace(SCRIPTED, summary_part_cap=4096)  # num_ctx 2048 limits the parts
    w = make_window(qtbot, store, c, tmp_path, settings)
    w.summaries.rates.set(20.0, 0.5)  # a slow machine, as measured: minutes
    a, b = attach(w, book("book.pdf", 30), book("notes.pdf", 3))
    assert w.summaries.start(a) and not w.generating
    dialog = w.summaries.plan_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=WAIT_MS)
    facts = dialog.facts
    assert facts.larger_ctx and facts.larger_ctx > 2048 and facts.larger_parts < facts.parts
    assert dialog.larger_button.text().startswith(f"Use {facts.larger_ctx // 1024}K context")
    assert dialog.current_button.text() == "Continue with 2K"
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)  # nothing is asked
    assert store.list_conversations() == [] and w.chips.attachments() == [a, b]

    w.summaries.start(a)
    dialog = w.summaries.plan_dialog
    qtbot.mouseClick(dialog.larger_button, Qt.MouseButton.LeftButton)
    wait_answer(qtbot, w)
    plan = of(w.summaries.events, SummaryPlan)[0]
    assert plan.parts == facts.larger_parts  # read at the larger context
    user = store.messages(w.current_id)[0]
    assert store.summary_parts.shape(user.id).num_ctx == facts.larger_ctx
    assert w.settings.num_ctx == 2048  # for this run only


# --- asking across, several documents


def test_asking_across_a_long_document_goes_through_the_ask_job_and_cites_the_page(
    qtbot, store, scripted, tmp_path
):
    c, backend = scripted
    w = make_window(qtbot, store, c, tmp_path)
    jobs = []
    c.jobSubmitted.connect(jobs.append)
    attach(w, book("book.pdf", 24, {17: "FACT-1 The vault code is 4172."}))
    w.composer.set_text("What is the vault code?")
    qtbot.keyClick(w.composer.edit, Qt.Key.Key_Return)
    assert not w.generating and w.composer.text() == "What is the vault code?"  # not sent
    assert w.summaries.ask_button.isVisible()  # offered instead
    qtbot.mouseClick(w.summaries.ask_button, Qt.MouseButton.LeftButton)
    assert "asking across every part" in w.status.state_label.text()
    wait_answer(qtbot, w)
    assert [j.kind for j in jobs] == ["ask"]
    user, answer = store.messages(w.current_id)
    assert user.content == "What is the vault code?" and user.attachments[0].name == "book.pdf"
    assert answer.status == "complete"
    assert "FACT-1 The vault code is 4172. [page 17]" in answer.content
    assert "Nothing relevant in: pages 1–" in answer.content  # the other parts say so
    relevant = [e for e in of(w.summaries.events, PartDone) if e.relevant]
    assert len(relevant) == 1 and relevant[0].first_page <= 17 <= relevant[0].last_page


def test_two_documents_are_each_cited_by_name_and_pages(qtbot, store, scripted, tmp_path):
    c, _backend = scripted
    w = make_window(qtbot, store, c, tmp_path)
    first = book("alpha.pdf", 12, {4: "FACT-1 Alpha ships on Monday."})
    second = book("beta.pdf", 12, {9: "FACT-2 Beta ships on Friday."})
    atts = attach(w, first, second)
    assert w.summaries.ask_whole("When does each ship?", atts)
    wait_answer(qtbot, w)
    answer = store.messages(w.current_id)[-1].content
    assert "FACT-1 Alpha ships on Monday. [page 4]" in answer
    assert "FACT-2 Beta ships on Friday. [page 9]" in answer
    assert '"alpha.pdf"' in answer and '"beta.pdf"' in answer
    sources = {e.source for e in of(w.summaries.events, PartDone) if e.relevant}
    assert sources == {"alpha.pdf", "beta.pdf"}

    # Summarizing both: one request naming both, every page of each covered and cited.
    atts = attach(w, first, second)
    assert w.summaries.start_documents(atts)
    wait_answer(qtbot, w)
    user, summary = store.messages(w.current_id)[-2:]
    assert user.content == "Summarize alpha.pdf and beta.pdf" and len(user.attachments) == 2
    assert '"alpha.pdf": pages 1–12 of 12; "beta.pdf": pages 1–12 of 12' in summary.content


# --- screenshots: a running summary with its strip, a stopped one, the plan dialog


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_screenshots(qtbot, qapp, store, scripted, tmp_path, dark):
    from app.main import apply_style
    from app.views.theme import dark_palette

    c, backend = scripted
    old = qapp.palette()
    if dark:
        qapp.setPalette(dark_palette())
        apply_style(qapp)
    theme = "dark" if dark else "light"
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        for width, height in ((800, 600), (1440, 900)):
            w = make_window(qtbot, store, c, tmp_path, size=(width, height))
            w.new_chat()
            (att,) = attach(w, book(f"annual-report-{width}.pdf", 40))
            backend.hold(4)
            w.summaries.start(att)
            qtbot.waitUntil(lambda w=w: w.summaries.strip.done_count() == 3, timeout=WAIT_MS)
            QApplication.processEvents()
            w.grab().save(str(SHOTS / f"running_{theme}_{width}.png"))
            qtbot.mouseClick(w.composer.button, Qt.MouseButton.LeftButton)
            backend.release.set()
            wait_answer(qtbot, w)
            assert continue_button(w) is not None
            QApplication.processEvents()
            w.chat_view.scroll_to_bottom()
            QApplication.processEvents()
            w.grab().save(str(SHOTS / f"stopped_{theme}_{width}.png"))
            w.summaries.rates.set(20.0, 0.5)
            big = replace(SCRIPTED, summary_part_cap=4096)
            w.apply_settings(big)
            (att,) = attach(w, book("handbook.pdf", 60))
            w.summaries.start(att)
            dialog = w.summaries.plan_dialog
            qtbot.waitUntil(dialog.isVisible, timeout=WAIT_MS)
            QApplication.processEvents()
            dialog.grab().save(str(SHOTS / f"plan_{theme}_{width}.png"))
            dialog.reject()
            w.summaries.rates.set(0.0, 0.0)
            w.close()
    finally:
        if dark:
            qapp.setPalette(old)
            apply_style(qapp)
