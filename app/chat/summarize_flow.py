"""Summarize an attached document into the chat, with part-by-part progress.

The user message "Summarize <name>" is stored with the document attached (its whole text), then
the summary is requested from the engine thread (EngineController.summarize) and streams in like
any answer: the window's AnswerRecorder checkpoints it and stores it complete, stopped or failed,
and Stop/Esc cancels it with the same Event. Between model calls summaryProgress says which part
is being read and about how long is left. Regenerate (or an edit that keeps "Summarize <name>")
summarizes the stored text again rather than answering as a chat.

Follow-up questions go through the usual chat path: the stored document is sent in full when it
fits the context; when it does not, a note stands in for it and the summary after it carries
the conversation (app.chat.attachments.prompt_content).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from app.store.store import StoreError

NOT_READY = {
    "none": "Open a model folder before summarizing.",
    "error": "The model did not load; open a model folder to summarize.",
    "loading": "The model is still loading.",
    "generating": "The previous answer is still stopping; try again in a moment.",
}


def summary_request_text(name: str) -> str:
    """The user message a summary answers; stored with the document attached."""
    return f"Summarize {name}"


def eta_text(seconds: float) -> str:
    """'~40 s', '~3 min', '~1 h 5 min'; '' when unknown (negative)."""
    if seconds < 0:
        return ""
    if seconds < 60:
        return f"~{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"~{minutes} min"
    return f"~{minutes // 60} h {minutes % 60} min"


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


class SummarizeFlow(QObject):
    """Starts summaries from the chips' Summarize buttons and shows their progress."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        window.chips.summarizeRequested.connect(self.start)
        progress = getattr(window.controller, "summaryProgress", None)
        if progress is not None:
            progress.connect(self._on_progress)
        self.last_progress = ""  # the latest progress line, for tests and the status bar

    def start(self, attachment: Any) -> bool:
        """Summarize `attachment` (a PendingAttachment) as the next exchange of the open chat."""
        w = self.window
        if w.generating:
            w.status.set_message("Wait for the current answer to finish.", error=True)
            return False
        state = getattr(w.controller, "state", "none")
        if state != "ready":
            w.status.set_message(NOT_READY.get(state, NOT_READY["none"]), error=True)
            return False
        try:
            conversation_id = self._store_request(attachment)
        except (sqlite3.Error, StoreError) as e:  # the chip stays: nothing is lost
            w.status.set_message(f"Could not save the message to {w.store.path}: {e}", True)
            return False
        w.chips.remove(attachment)
        self.last_progress = ""

        def request() -> int:
            return w.controller.summarize(conversation_id, attachment.document, w.settings)

        w._start_answer(conversation_id, request)
        w.chat_view.set_streaming_note(f"Planning the summary of {attachment.name}…")
        w.refresh_sidebar()
        return True

    def request_for(self, conversation_id: int) -> Callable[[], int] | None:
        """For regenerate and edit: when the chat now ends with "Summarize <name>" and its one
        document, the answer is a summary again (of the stored text); else None, a chat reply."""
        w = self.window
        users = [m for m in w.store.messages(conversation_id) if m.role == "user"]
        last = users[-1] if users else None
        if last is None or len(last.attachments) != 1:
            return None
        att = last.attachments[0]
        if last.content.strip() != summary_request_text(att.name):
            return None
        self.last_progress = ""
        return lambda: w.controller.summarize(conversation_id, att.text, w.settings)

    def _store_request(self, attachment: Any) -> int:
        w = self.window
        if w.current_id is None:
            w.current_id = w.store.create_conversation(
                system_prompt=w.settings.system_prompt or None
            ).id
            w.chat_view.show_conversation(w.current_id, [])
        message = w.store.add_message(
            w.current_id,
            "user",
            summary_request_text(attachment.name),
            attachments=[attachment.to_store()],
        )
        title = w.store.auto_title(w.current_id)
        w.setWindowTitle(f"{title} — Nemo Chat")
        w.chat_view.add_message(message)
        return w.current_id

    def _on_progress(self, rid: int, part: int, count: int, eta_s: float, label: str) -> None:
        w = self.window
        answer = w.answers.matching(rid)
        if answer is None:
            return
        self.last_progress = progress_text(part, count, eta_s, label)
        w.status.set_message(self.last_progress)
        if answer.conversation_id == w.current_id and not answer.text:
            w.chat_view.set_streaming_note(self.last_progress)
