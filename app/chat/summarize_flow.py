"""Long documents in the chat: summaries and questions over every part, visible and resumable.

Summarize (a chip's button, or a message starting "Summarize" with documents too long for the
context) and a question about documents too long for the context both run as one answer
(app.chat.answer.Answer) whose job reads every part (EngineController.summarize / .ask). While
it runs, the strip above the composer (app.views.summary_strip) shows parts done of total, time
left and each part's state. Each finished part is stored as it arrives (app.store.summary_parts,
under the user message that asked): a stopped run shows the parts it finished and the pages not
read yet, and its "Continue summary" button reads only the rest — also after a restart.

A run the plan says will take more than a minute first shows the plan (app.views.
summary_plan_dialog), estimated from this machine's measured speed (app.chat.measured_rates),
offering a larger context when one fits memory and cuts the parts.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QPushButton

from app.bridge import summary_events as ev
from app.bridge.state import EngineState
from app.bridge.units import eta_text
from app.chat.measured_rates import MeasuredRates
from app.store.store import StoreError
from app.store.summary_parts import RunShape
from app.views.summary_plan_dialog import LARGER, PlanFacts, SummaryPlanDialog
from app.views.summary_strip import DONE, READING, SummaryStrip

if TYPE_CHECKING:
    from app.bridge.qt_job import QtJob
    from app.chat.answer import Answer
    from app.chat.attachments import PendingAttachment
    from app.chat.chat_parts import AnswerHost, ChatParts

__all__ = ["SummarizeFlow", "eta_text", "progress_text", "summary_request_text"]

NOT_READY = {
    EngineState.NONE: "Open a model folder before summarizing.",
    EngineState.ERROR: "The model did not load; open a model folder to summarize.",
    EngineState.LOADING: "The model is still loading.",
    EngineState.GENERATING: "The previous answer is still stopping; try again in a moment.",
}
CONTINUE_TEXT = "Continue summary"
_SUMMARY_WORDS = re.compile(r"^\s*(summari[sz]e|summary)\b", re.IGNORECASE)


def summary_request_text(names: str | Sequence[str]) -> str:
    """The user message a summary answers: "Summarize a.pdf", "Summarize a.pdf and b.docx"."""
    names = [names] if isinstance(names, str) else list(names)
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"Summarize {joined}"


def progress_text(part: int, count: int, eta_s: float, label: str) -> str:
    """The note under the answer while a summary is under way: 'part 3 of 12 · ~1 min left'."""
    if label == "single":
        return "Reading the document…"
    if label == "plan":
        return f"Summarizing in {count} parts…"
    if label == "part":
        text = f"Summarizing part {part} of {count}"
    elif label == "combine":
        text = f"Combining the part summaries ({part} of {count})"
    else:
        text = "Writing the summary"
    eta = eta_text(eta_s)
    return f"{text} · {eta} left" if eta else f"{text}…"


def part_label(part: Any, several: bool) -> str:
    """A part's place for its cell's tooltip: 'report.pdf, pages 12–18'."""
    first, last = part.first_page, part.last_page
    pages = "" if first is None else f"page {first}" if first == last else f"pages {first}–{last}"
    name = part.source if several and part.source else ""
    return ", ".join(x for x in (name, pages) if x)


def plan_facts(report: Any, title: str) -> PlanFacts:
    """The plan dialog's words from engine.docs.summary_estimate.PlanReport."""
    pages = sum(d.get("pages") or 0 for d in report.documents)
    docs = len(report.documents)
    where = f"{pages:,} pages" if pages else ""
    if docs > 1:
        where = f"{where} in {docs} documents" if where else f"{docs} documents"
    s = report.suggestion
    return PlanFacts(
        title, len(report.parts), where, eta_text(report.estimated_seconds),
        report.rates.measured, report.num_ctx, report.part_budget,
        s.num_ctx if s else None, s.parts if s else 0,
        eta_text(s.estimated_seconds) if s else "",
    )  # fmt: skip


@dataclass(frozen=True)
class Run:
    """What one long-document answer is: which question it answers and how parts are read."""

    question_id: int | None
    shape: RunShape | None
    title: str


class SummarizeFlow(QObject):
    """Starts long-document answers, shows their progress, stores and resumes their parts."""

    def __init__(
        self,
        parts: ChatParts,
        host: AnswerHost,
        rates: MeasuredRates,
        budget: Callable[[], int],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.parts, self.host = parts, host
        self._budget = budget  # prompt tokens a message may use (DocumentAttacher.budget)
        parts.chips.summarizeRequested.connect(self.start)
        self.last_progress = ""  # the latest progress line, for tests and the status bar
        self.events: list[object] = []  # the latest run's events, in order (tests)
        self.plan_dialog: SummaryPlanDialog | None = None
        self.strip = SummaryStrip()  # placed above the composer by the window
        parts.chat_view.columnWidthChanged.connect(self.strip.setFixedWidth)
        self.rates = rates
        parts.controller.answerMeasured.connect(self.rates.add)
        # A message whose documents do not fit the context: offered "ask across" every part.
        self.ask_button = QPushButton("Ask across the whole document")
        self.ask_button.setObjectName("askWholeButton")
        self.ask_button.setToolTip(
            "Put the question to every part of the documents and combine what they say, "
            "with page citations"
        )
        self.ask_button.setVisible(False)
        self.ask_button.clicked.connect(self._ask_offered)
        self._offered = ""
        parts.chips.changed.connect(lambda: self.ask_button.setVisible(False))
        self._next: Run | None = None  # what follow() stores parts under
        self._answer: Answer | None = None  # the long-document answer running, if any

    # -- starting

    def start(self, attachment: PendingAttachment) -> bool:
        """Summarize one chip's document as the next exchange of the open chat."""
        return self.start_documents([attachment])

    def start_documents(
        self,
        attachments: Sequence[PendingAttachment],
        *,
        text: str | None = None,
        question: str | None = None,
        instruction: str | None = None,
    ) -> bool:
        """Summarize (or, with `question`, ask across) the documents; the plan dialog first
        when the run will be long. False when nothing was started or asked."""
        w = self.parts
        if self.host.generating:
            w.status.set_message("Wait for the current answer to finish.", error=True)
            return False
        state = w.controller.state
        if state != EngineState.READY:
            w.status.set_message(NOT_READY.get(state, NOT_READY[EngineState.NONE]), error=True)
            return False
        names = [a.name for a in attachments]
        text = text or summary_request_text(names)
        docs = [
            a.document or w.controller.stored_document(a.name, a.text, a.path) for a in attachments
        ]
        settings = w.settings()
        report = w.controller.summary_plan(docs, settings, self.rates.get(), question)
        if report is None or not report.long_run:
            return self._begin(attachments, docs, settings, text, question, instruction)
        title = f"Ask {', '.join(names)}" if question else text
        dialog = self.plan_dialog = SummaryPlanDialog(plan_facts(report, title), w.dialog_parent)

        def chosen(_result: int) -> None:
            self.plan_dialog = None
            if dialog.choice is None:
                if question is not None or text != summary_request_text(names):
                    w.composer.set_text(text)  # a typed message is kept
                return
            run = settings
            if dialog.choice == LARGER and report.suggestion is not None:
                run = replace(settings, num_ctx=report.suggestion.num_ctx)
            self._begin(attachments, docs, run, text, question, instruction)

        dialog.finished.connect(chosen)
        dialog.open()
        return True

    def offer_ask(self, text: str, attachments: Sequence[PendingAttachment]) -> bool:
        """The send was refused (the documents do not fit): offer asking across every part.
        Returns False: the send stays refused, the text stays in the composer."""
        self._offered = text
        several = len(attachments) > 1
        what = "documents" if several else "document"
        verb = "Summarize" if _SUMMARY_WORDS.match(text) else "Ask across"
        self.ask_button.setText(f"{verb} the whole {what}")
        self.ask_button.setVisible(True)
        return False

    def _ask_offered(self) -> None:
        w = self.parts
        text = w.composer.text().strip() or self._offered
        attachments = w.chips.attachments()
        if not text or not attachments:
            return
        if self.ask_whole(text, attachments):
            self.ask_button.setVisible(False)
            w.composer.set_text("")

    def ask_whole(self, text: str, attachments: Sequence[PendingAttachment]) -> bool:
        """A message whose documents do not fit the context: asked across every part (or, for
        "Summarize …", summarized), with a note saying so. False: not handled."""
        if _SUMMARY_WORDS.match(text):
            instruction = text if len(text.split()) > 3 else None
            started = self.start_documents(attachments, text=text, instruction=instruction)
            note = "The documents are longer than the context: summarizing every part."
        else:
            started = self.start_documents(attachments, text=text, question=text)
            note = "The documents are longer than the context: asking across every part."
        if started and self.host.generating:
            self.parts.status.set_message(note)
        return started

    def _begin(
        self,
        attachments: Sequence[PendingAttachment],
        docs: list[Any],
        settings: Any,
        text: str,
        question: str | None,
        instruction: str | None,
    ) -> bool:
        w = self.parts
        try:
            asked = w.store.add_question(
                w.current_id(), text, [a.to_store() for a in attachments],
                system_prompt=w.settings().system_prompt,
            )  # fmt: skip
        except (sqlite3.Error, StoreError) as e:  # the chips stay: nothing is lost
            w.status.set_message(f"Could not save the message to {w.store.path}: {e}", True)
            return False
        self.host.show_question(asked)
        for a in attachments:
            w.chips.remove(a)
        w.chips.set_notice("")
        kind = "ask" if question is not None else "summary"
        shape = RunShape(kind, settings.num_ctx, settings.summary_part_cap)
        self._next = Run(asked.id, shape, text)
        make_job = self._job_for(docs, settings, question, instruction)
        self.follow(self.host.start_answer(asked.conversation_id, make_job))
        names = ", ".join(a.name for a in attachments)
        w.chat_view.set_streaming_note(f"Planning the {'answer' if question else 'summary'}"
                                      f" over {names}…")  # fmt: skip
        return True

    def _job_for(
        self,
        docs: list[Any],
        settings: Any,
        question: str | None,
        instruction: str | None = None,
        rows: Sequence[dict] = (),
    ) -> Callable[[], QtJob]:
        c = self.parts.controller
        single = docs[0] if len(docs) == 1 else docs
        if question is not None:
            return lambda: c.ask(single, question, settings, finished=rows)
        if rows:
            return lambda: c.summarize(single, settings, instruction, finished=rows)
        return lambda: c.summarize(single, settings, instruction)

    # -- regenerate, edit, continue

    def request_for(self, conversation_id: int) -> Callable[[], QtJob] | None:
        """For regenerate and edit: a chat ending with "Summarize <names>" and its documents is
        summarized again from the start; a question with documents too long for the context is
        asked across them again; else None (a chat reply)."""
        w = self.parts
        users = [m for m in w.store.messages(conversation_id) if m.role == "user"]
        last = users[-1] if users else None
        if last is None or not last.attachments:
            return None
        atts = last.attachments
        docs = [w.controller.stored_document(a.name, a.text, a.path) for a in atts]
        settings = w.settings()
        if last.content.strip() == summary_request_text([a.name for a in atts]):
            question = None
        elif sum(a.tokens or 0 for a in atts) > self._budget():
            question = last.content
        else:
            return None
        w.store.summary_parts.clear(last.id)  # asked again: every part read again
        kind = "ask" if question is not None else "summary"
        shape = RunShape(kind, settings.num_ctx, settings.summary_part_cap)
        self._next = Run(last.id, shape, last.content)
        return self._job_for(docs, settings, question)

    def continue_summary(self, answer_id: int) -> bool:
        """A stopped long-document answer, read on from its first unfinished part: its stored
        parts are not read again (same context and part size as when they were read)."""
        w = self.parts
        if self.host.generating or w.controller.state != EngineState.READY:
            state = w.controller.state if not self.host.generating else EngineState.GENERATING
            w.status.set_message(NOT_READY.get(state, NOT_READY[EngineState.NONE]), True)
            return False
        stopped = w.store.get_message(answer_id)
        before = [
            m for m in w.store.messages(stopped.conversation_id) if m.position < stopped.position
        ]
        asked = before[-1] if before and before[-1].role == "user" else None
        shape = w.store.summary_parts.shape(asked.id) if asked is not None else None
        if asked is None or shape is None:
            return False
        rows = w.store.summary_parts.rows(asked.id)
        docs = [w.controller.stored_document(a.name, a.text, a.path) for a in asked.attachments]
        settings = replace(w.settings(), num_ctx=shape.num_ctx, summary_part_cap=shape.part_cap)
        question = asked.content if shape.kind == "ask" else None
        w.store.delete_messages_from(stopped.conversation_id, stopped.position)
        w.chat_view.remove_messages_from(answer_id)
        self._next = Run(asked.id, shape, asked.content)
        make_job = self._job_for(docs, settings, question, rows=rows)
        self.follow(self.host.start_answer(stopped.conversation_id, make_job))
        w.chat_view.set_streaming_note(f"Continuing after {len(rows)} finished parts…")
        return True

    def decorate(self) -> None:
        """The open chat's last answer, stopped with parts stored, gets "Continue summary"; the
        strip shows only while the open chat's long-document answer runs."""
        w = self.parts
        a = self._answer
        self.strip.setVisible(a is not None and a.active and a.conversation_id == w.current_id())
        widgets = w.chat_view.widgets()
        if len(widgets) < 2 or self.host.generating:
            return
        last, asked = widgets[-1], widgets[-2]
        if last.role != "assistant" or last.status != "stopped" or asked.role != "user":
            return
        if last.findChild(QPushButton, "continueSummary") is not None:
            return
        if not w.store.summary_parts.count(asked.message_id):
            return
        button = QPushButton(CONTINUE_TEXT)
        button.setObjectName("continueSummary")
        button.setToolTip("Read the parts not read yet; the finished ones are kept")
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.clicked.connect(lambda: self.continue_summary(last.message_id))
        last.add_below(button)

    # -- following a run

    def follow(self, answer: Answer) -> None:
        """Show a long-document answer's progress and store its parts as they finish."""
        run, self._next = self._next or Run(None, None, ""), None
        self.last_progress = ""
        self.events = []
        self._answer = answer
        w = self.parts
        self.strip.start(run.title or "Reading the document")
        self.strip.setVisible(answer.conversation_id == w.current_id())
        answer.summaryProgress.connect(
            lambda part, count, eta, label: self._on_progress(answer, part, count, eta, label)
        )
        if answer.job is not None:
            answer.job.progress.connect(lambda event: self._on_event(answer, run, event))
        answer.ended.connect(lambda _message: self._on_ended(answer))

    def _on_progress(self, answer: Answer, part: int, count: int, eta_s: float, label: str) -> None:
        w = self.parts
        self.last_progress = progress_text(part, count, eta_s, label)
        w.status.set_message(self.last_progress)
        if answer.conversation_id == w.current_id() and not answer.text:
            w.chat_view.set_streaming_note(self.last_progress)

    def _on_event(self, answer: Answer, run: Run, event: Any) -> None:
        self.events.append(event)
        kind, strip = ev.kind_of(event), self.strip
        if kind == ev.PLAN:
            several = len({p.source for p in event.part_list}) > 1
            strip.set_parts(
                [part_label(p, several) for p in event.part_list],
                [p.index for p in event.part_list if p.resumed],
            )
        elif kind == ev.PART_STARTED:
            strip.set_state(event.index, READING)
        elif kind == ev.PART_DONE:
            strip.set_state(event.index, DONE)
            strip.set_eta(eta_text(event.eta_s))
            if run.question_id is not None and run.shape is not None and not event.resumed:
                self._store_part(run, event)
        elif kind == ev.COMBINE:
            strip.set_stage("writing the answer" if event.final else "combining")
            strip.set_eta(eta_text(event.eta_s))
        elif kind == ev.DONE and event.cancelled:
            answer.replace_text(event.text)  # the finished parts and the pages not read yet

    def _store_part(self, run: Run, event: Any) -> None:
        if run.question_id is None or run.shape is None:
            return  # a run that is not stored (never started by this flow)
        try:
            self.parts.store.summary_parts.save(run.question_id, event.stored(), run.shape)
        except sqlite3.Error as e:  # the run goes on; only resuming loses this part
            self.parts.status.set_message(f"Could not keep part {event.index}: {e}", True)

    def _on_ended(self, answer: Answer) -> None:
        self.strip.end(stopped=answer.status != "failed")
        if self._answer is answer:
            self._answer = None
        self.strip.setVisible(False)
        self.decorate()
