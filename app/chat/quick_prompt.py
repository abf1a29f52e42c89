"""The quick prompt: a small always-on-top panel under the menu bar — one line in, an answer out.

It shares the main window's EngineController (one model in memory). Its question is a job of
its own: while another answer runs, the job waits in the engine's queue (the panel says so and
offers to stop the other answer) and starts when that one ends. Only the panel hears its job,
so nothing of its answer reaches a chat (rule 4). The answer is an app.chat.answer.Answer, the
window's lifecycle: stored only when the user asks ("Continue in Nemo Chat", or the
quick-history setting), and then exactly like a chat's, stopped or failed answers included.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from app.bridge.state import EngineState
from app.chat.answer import Answer
from app.chat.prompt import Question, build_prompt
from app.settings import ChatSettings
from app.store.store import MessageStatus, Store, StoreError, title_from_message
from app.views.message import format_stats
from app.views.quick_prompt_view import QuickPromptView, panel_position

if TYPE_CHECKING:
    from app.bridge.engine_controller import EngineController

__all__ = ["QUICK_KEY", "QuickPromptPanel", "panel_position", "with_clipboard"]

QUICK_KEY = "quick"  # the engine's cache key for the panel's context
RENDER_MS = 80  # re-render the streaming Markdown at most ~12 times a second
QUICK_TITLE_PREFIX = "Quick: "


def with_clipboard(question: str, clipboard: str) -> str:
    """The user message: the question first (it titles the chat), the clipboard text after."""
    if not clipboard:
        return question
    return f'{question}\n\nText from my clipboard:\n\n"""\n{clipboard}\n"""'


def quick_title(question: str) -> str:
    return QUICK_TITLE_PREFIX + title_from_message(question, 40)


class QuickPromptPanel(QuickPromptView):
    """Enter asks; Esc or clicking away hides the panel (the answer goes on meanwhile)."""

    conversationStored = Signal(int)  # a conversation was written (history on, or Continue)
    continueRequested = Signal(int)  # open this conversation in the main window

    def __init__(
        self,
        controller: EngineController,
        store: Store,
        settings: Callable[[], ChatSettings],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.store = store
        self._settings = settings  # read at each prompt: the main window's current settings
        self.question = ""  # the line asked
        self.sent_text = ""  # the user message as sent (question + clipboard context)
        self.clipboard = ""  # clipboard text to send along with the next question
        self.answer: Answer | None = None  # the latest answer, running or ended
        self._user_stopped = False

        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_MS)
        self._render_timer.timeout.connect(self._render)
        self.input.returnPressed.connect(self.submit)
        self.clipboard_button.clicked.connect(self.use_clipboard)
        self.chip_clear.clicked.connect(self.clear_clipboard)
        self.note.linkActivated.connect(self._on_note_link)
        self.stop_button.clicked.connect(self.stop)
        self.copy_button.clicked.connect(self.copy_answer)
        self.continue_button.clicked.connect(self.continue_in_chat)
        self.refresh_controls()

    # -- the answer, as the panel shows it

    @property
    def text(self) -> str:
        return self.answer.text if self.answer is not None else ""

    @property
    def status(self) -> str:
        """ "" | "waiting" | "streaming" | "complete" | "stopped" | "failed"."""
        a = self.answer
        if a is None:
            return ""
        return "waiting" if a.waiting else a.status

    @property
    def stats(self) -> Any:
        return self.answer.stats if self.answer is not None else None

    @property
    def conversation_id(self) -> int | None:
        return self.answer.conversation_id if self.answer is not None else None

    @property
    def busy(self) -> bool:
        """Our answer is waiting for the engine or being written."""
        return self.answer is not None and self.answer.active

    # -- asking

    def submit(self) -> None:
        """Enter: ask the question; it waits in the engine's queue behind another answer."""
        question = self.input.text().strip()
        if not question or self.busy:
            return
        if self.controller.state in (EngineState.NONE, EngineState.ERROR):
            self.set_note("No model is loaded: open one in Nemo Chat first.", error=True)
            return
        self._clear_answer()
        # The clipboard stays attached (its chip shows) until its × is clicked.
        self.question, self.sent_text = question, with_clipboard(question, self.clipboard)
        settings = self._settings()
        cid = None
        if settings.quick_history:  # the question is stored before the answer starts (rule 7)
            try:
                cid = self.store.add_question(
                    None, self.sent_text, system_prompt=settings.system_prompt,
                    title=quick_title(self.question),
                ).conversation_id  # fmt: skip
            except (sqlite3.Error, StoreError) as e:
                self.set_note(f"Could not save the quick prompt to {self.store.path}: {e}", True)
                return
            self.conversationStored.emit(cid)
        waiting = self.controller.busy
        answer = self.answer = Answer(self.store, cid, lambda m: self.set_note(m, True), self)
        answer.begin()
        answer.started.connect(lambda: self._on_started(answer))
        answer.prefill.connect(lambda done, total: self._on_prefill(answer, done, total))
        answer.textChanged.connect(lambda _text: self._on_text(answer))
        answer.ended.connect(lambda _message: self._on_ended(answer))
        prompt = build_prompt(settings.system_prompt, [Question(self.sent_text)])
        answer.start(
            lambda: self.controller.send(
                prompt,
                settings,
                key=QUICK_KEY,
                max_tokens=settings.quick_max_tokens,
                kind="quick",
            )  # fmt: skip
        )
        if answer.waiting and waiting:
            self.set_note('Waiting for the other answer… <a href="stop">Stop it</a>')
        elif answer.active:
            self.set_note("Thinking…")
        self.refresh_controls()

    def stop(self) -> None:
        """Stops our own answer (never the main window's), or gives up waiting."""
        if self.answer is not None and self.answer.active:
            self._user_stopped = True
            self.answer.stop()

    def _on_note_link(self, link: str) -> None:
        a = self.answer
        if link == "stop" and a is not None and a.waiting and a.job is not None:
            self.controller.stop_ahead_of(a.job)  # the other answer stops, kept as stopped

    # -- our answer streaming in (only our job's signals reach here)

    def _on_started(self, answer: Answer) -> None:
        if answer is self.answer:
            self.set_note("Thinking…")
            self.refresh_controls()

    def _on_prefill(self, answer: Answer, done: int, total: int) -> None:
        if answer is self.answer and not answer.text:
            self.set_note(f"Reading {done:,} / {total:,} tokens…")

    def _on_text(self, answer: Answer) -> None:
        if answer is not self.answer:
            return
        self.set_note("")
        if not self._render_timer.isActive():
            self._render_timer.start()

    def _on_ended(self, answer: Answer) -> None:
        if answer is not self.answer:
            return
        self._render_timer.stop()
        self._render()
        self.stats_label.setText(format_stats(answer.stats_dict(), answer.status))
        note = answer.error or ""
        if answer.status == MessageStatus.STOPPED and not self._user_stopped:
            note = "Stopped: Nemo Chat started another answer."  # e.g. a model (re)load
        self.set_note(note, error=answer.status == MessageStatus.FAILED)
        if answer.conversation_id is not None:
            self.conversationStored.emit(answer.conversation_id)
        self.refresh_controls()

    # -- actions

    def use_clipboard(self) -> None:
        text = QGuiApplication.clipboard().text()
        if not text.strip():
            self.set_note("The clipboard has no text.", error=True)
            return
        self.clipboard = text
        self.set_note("")
        self.refresh_controls()
        self.input.setFocus()

    def clear_clipboard(self) -> None:
        self.clipboard = ""
        self.refresh_controls()

    def copy_answer(self) -> None:
        if self.text:
            QGuiApplication.clipboard().setText(self.text)

    def continue_in_chat(self) -> None:
        """Store the exchange as a conversation (unless quick history already did) and open it."""
        answer = self.answer
        if answer is None or answer.active or not self.question:
            return
        cid = answer.conversation_id
        if cid is None:
            settings = self._settings()
            try:
                cid = self.store.add_question(
                    None, self.sent_text, system_prompt=settings.system_prompt
                ).conversation_id
            except (sqlite3.Error, StoreError) as e:
                self.set_note(f"Could not save the conversation to {self.store.path}: {e}", True)
                return
            if answer.store_into(cid) is not None:
                self.conversationStored.emit(cid)
        self.hide()
        self.input.clear()
        self.clipboard = ""  # it is in the conversation now
        self._clear_answer()
        self.continueRequested.emit(cid)

    # -- display

    def _clear_answer(self) -> None:
        self.question = self.sent_text = ""
        self.answer = None
        self._user_stopped = False
        self.stats_label.setText("")
        self.set_note("")
        self._render()
        self.refresh_controls()

    def _render(self) -> None:
        self.render_answer(self.text, follow=self.status == "streaming")

    def refresh_controls(self) -> None:
        self.chip.setText(f"Using clipboard: {len(self.clipboard):,} chars")
        self.chip_row.setVisible(bool(self.clipboard))
        self.chip_clear.setVisible(not self.busy)
        self.clipboard_button.setEnabled(not self.busy)
        self.input.setReadOnly(self.busy)
        done = self.status in ("complete", "stopped", "failed")
        self.stop_button.setVisible(self.busy)
        self.stop_button.setText("Cancel" if self.status == "waiting" else "Stop")
        self.copy_button.setVisible(bool(self.text) and not self.busy)
        self.continue_button.setVisible(done)
        self.stats_label.setVisible(done)
        self.footer.setVisible(self.busy or done)
        self.rule.setVisible(bool(self.status) or not self.note.isHidden())
        self.scroll_area.setVisible(bool(self.text))
        if self.isVisible():
            self.adjustSize()
