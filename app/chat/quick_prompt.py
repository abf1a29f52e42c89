"""The quick prompt: a small always-on-top panel under the menu bar — one line in, an answer out.

It shares the main window's EngineController (one model in memory). The controller cancels a
running answer when asked for another, so the panel never calls send() while it is busy: it
waits for `becameIdle` (or offers to stop the other answer). Its requests carry
QUICK_CONVERSATION_ID, which no stored conversation has; the main window follows only the
request ids it started itself, so nothing of the panel's answer reaches its chat (rule 4).
Nothing is stored unless the user asks: "Continue in Nemo Chat", or the quick-history setting.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from app.settings import ChatSettings
from app.store.store import Store, StoreError, title_from_message
from app.views.message import format_stats
from app.views.quick_prompt_view import QuickPromptView, panel_position

__all__ = ["QUICK_CONVERSATION_ID", "QuickPromptPanel", "panel_position", "with_clipboard"]

QUICK_CONVERSATION_ID = -1  # the conversation id of the panel's requests: never a stored one
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
        controller: Any,
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
        self.text = ""  # the answer so far
        self.status = ""  # "" | "waiting" | "streaming" | "complete" | "stopped" | "failed"
        self.stats: Any = None
        self.error: str | None = None
        self.rid: int | None = None  # our request while it runs
        self.conversation_id: int | None = None  # where this exchange is stored, if it is

        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_MS)
        self._render_timer.timeout.connect(self._render)
        c = controller
        c.started.connect(self._on_started)
        c.prefillProgress.connect(self._on_prefill)
        c.chunk.connect(self._on_chunk)
        c.finished.connect(self._on_finished)
        c.failed.connect(self._on_failed)
        c.becameIdle.connect(self._on_idle)
        self.input.returnPressed.connect(self.submit)
        self.clipboard_button.clicked.connect(self.use_clipboard)
        self.chip_clear.clicked.connect(self.clear_clipboard)
        self.note.linkActivated.connect(self._on_note_link)
        self.stop_button.clicked.connect(self.stop)
        self.copy_button.clicked.connect(self.copy_answer)
        self.continue_button.clicked.connect(self.continue_in_chat)
        self.refresh_controls()

    # -- asking

    @property
    def busy(self) -> bool:
        """Our answer is waiting for the engine or being written."""
        return self.status in ("waiting", "streaming")

    def submit(self) -> None:
        """Enter: ask the question now, or as soon as the main window's answer is done."""
        question = self.input.text().strip()
        if not question or self.busy:
            return
        if getattr(self.controller, "state", "none") in ("none", "error"):
            self.set_note("No model is loaded: open one in Nemo Chat first.", error=True)
            return
        self._clear_answer()
        # The clipboard stays attached (its chip shows) until its × is clicked.
        self.question, self.sent_text = question, with_clipboard(question, self.clipboard)
        settings = self._settings()
        if settings.quick_history and not self._store_question(settings):
            return
        if self.controller.busy:  # send() would cancel the other answer: wait for it instead
            self.status = "waiting"
            self.set_note('Waiting for the other answer… <a href="stop">Stop it</a>')
        else:
            self._start()
        self.refresh_controls()

    def _start(self) -> None:
        settings = self._settings()
        request = replace(settings, max_tokens=settings.quick_max_tokens)
        self.status = "streaming"
        self.set_note("Thinking…")
        messages = [{"role": "user", "content": self.sent_text}]
        self.rid = self.controller.send(QUICK_CONVERSATION_ID, messages, request)
        self.refresh_controls()

    def _store_question(self, settings: ChatSettings) -> bool:
        """Quick history: the question is stored before the answer starts (rule 7)."""
        try:
            cid = self.store.create_conversation(
                quick_title(self.question), system_prompt=settings.system_prompt or None
            ).id
            self.store.add_message(cid, "user", self.sent_text)
        except (sqlite3.Error, StoreError) as e:
            self.set_note(f"Could not save the quick prompt to {self.store.path}: {e}", True)
            return False
        self.conversation_id = cid
        self.conversationStored.emit(cid)
        return True

    def stop(self) -> None:
        """Stops our own answer (never the main window's), or gives up waiting."""
        if self.status == "waiting":
            self._finish("stopped", None, None)
        elif self.rid is not None and self.controller.current_request == self.rid:
            self.controller.stop()

    def _on_note_link(self, link: str) -> None:
        if link == "stop" and self.status == "waiting":
            self.controller.stop()  # the other answer stops (and is kept as stopped there)

    def _on_idle(self) -> None:
        if self.status == "waiting":
            self._start()

    # -- the answer streaming in (controller signals; other requests' ids are ignored)

    def _on_started(self, rid: int) -> None:
        if self.rid is not None and rid != self.rid:
            # The main window sent while ours ran: the controller cancelled ours.
            self._finish("stopped", None, "Stopped: Nemo Chat started another answer.")

    def _on_prefill(self, rid: int, done: int, total: int) -> None:
        if rid == self.rid and not self.text:
            self.set_note(f"Reading {done:,} / {total:,} tokens…")

    def _on_chunk(self, rid: int, text: str) -> None:
        if rid != self.rid:
            return
        if not self.text:
            self.set_note("")
        self.text += text
        if not self._render_timer.isActive():
            self._render_timer.start()

    def _on_finished(self, rid: int, stats: Any) -> None:
        if rid == self.rid:
            cancelled = getattr(stats, "finish_reason", "stop") == "cancelled"
            self._finish("stopped" if cancelled else "complete", stats, None)

    def _on_failed(self, rid: int, message: str) -> None:
        if rid == self.rid:
            self._finish("failed", None, message)

    def _finish(self, status: str, stats: Any, error: str | None) -> None:
        self.rid = None
        self.status, self.stats, self.error = status, stats, error
        self._render_timer.stop()
        self._render()
        self.stats_label.setText(format_stats(self.stats_dict(), status))
        self.set_note(error or "", error=status == "failed")
        if self.conversation_id is not None:
            self._store_answer(self.conversation_id)
        self.refresh_controls()

    def stats_dict(self) -> dict | None:
        s = self.stats
        return dataclasses.asdict(s) if dataclasses.is_dataclass(s) else s

    def _store_answer(self, cid: int) -> None:
        try:
            self.store.add_message(
                cid, "assistant", self.text, self.status, stats=self.stats_dict(), error=self.error
            )
        except (sqlite3.Error, StoreError) as e:
            self.set_note(f"Could not save the answer: {e}", error=True)
            return
        self.conversationStored.emit(cid)

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
        if self.busy or not self.question or self.status == "":
            return
        cid = self.conversation_id
        if cid is None:
            settings = self._settings()
            try:
                cid = self.store.create_conversation(
                    title_from_message(self.question), system_prompt=settings.system_prompt or None
                ).id
                self.store.add_message(cid, "user", self.sent_text)
            except (sqlite3.Error, StoreError) as e:
                self.set_note(f"Could not save the conversation to {self.store.path}: {e}", True)
                return
            self.conversation_id = cid
            self._store_answer(cid)
        self.hide()
        self.input.clear()
        self.clipboard = ""  # it is in the conversation now
        self._clear_answer()
        self.continueRequested.emit(cid)

    # -- display

    def _clear_answer(self) -> None:
        self.question = self.sent_text = self.text = ""
        self.status, self.stats, self.error = "", None, None
        self.conversation_id = None
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
        self.scroll.setVisible(bool(self.text))
        if self.isVisible():
            self.adjustSize()
