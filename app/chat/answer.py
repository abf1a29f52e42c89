"""The one answer lifecycle: an engine job bound to the history (DESIGN rule 7).

The question is stored first (Store.add_question, by the caller); begin() stores the empty
'streaming' answer row; start() asks for the job and follows only that job's signals; the text
is checkpointed about once a second and the answer ends complete, stopped or failed, with its
stats. The window, the quick prompt and summaries all use it. An answer without a conversation
(the quick prompt with history off) is kept here only, and can be stored later (store_into).
The GUI thread does all of it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.store.store import Message, MessageStatus, Store, StoreError

if TYPE_CHECKING:
    from app.bridge.qt_job import QtJob

CHECKPOINT_MS = 1000
_WRITE_ERRORS = (sqlite3.Error, StoreError)


@dataclasses.dataclass(frozen=True)
class UnsavedAnswer:
    """An answer as it ended, where the final write failed (or nothing is stored)."""

    id: int
    conversation_id: int | None
    content: str
    status: str
    stats: dict[str, Any] | None
    error: str | None
    role: str = "assistant"
    attachments: tuple = ()


class Answer(QObject):
    """One answer being written; its signals are its job's, in the app's terms."""

    started = Signal()  # the engine began (a queued job waited until now)
    prefill = Signal(int, int)  # prompt tokens read, of total
    textChanged = Signal(str)  # the whole answer so far
    replaced = Signal(str)  # the whole answer is this now (not a continuation: see replace_text)
    trimmed = Signal(int)  # older messages left out to fit the context
    summaryProgress = Signal(int, int, float, str)  # part, count, eta_s, label
    ended = Signal(object)  # the stored Message (an UnsavedAnswer when it could not be stored)

    def __init__(
        self,
        store: Store,
        conversation_id: int | None,
        on_error: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.conversation_id = conversation_id  # None: not stored (quick prompt, history off)
        self.answer_id: int | None = None
        self.job: QtJob | None = None
        self.text = ""
        self.status = MessageStatus.STREAMING
        self.stats: Any = None  # GenerationStats once ended
        self.error: str | None = None
        self._on_error = on_error  # a write failed: say so, the answer goes on
        self._saved_len = 0
        self._timer = QTimer(self)
        self._timer.setInterval(CHECKPOINT_MS)
        self._timer.timeout.connect(self.checkpoint)

    @property
    def active(self) -> bool:
        return self.status == MessageStatus.STREAMING

    @property
    def waiting(self) -> bool:
        """Asked for, but the engine has not begun it (another answer runs first)."""
        return self.active and self.job is not None and not self.job.running

    def begin(self) -> Message | None:
        """Stores the empty 'streaming' row (None when this answer is not stored)."""
        if self.conversation_id is None:
            return None
        message = self.store.begin_answer(self.conversation_id)
        self.answer_id = message.id
        return message

    def start(self, make_job: Callable[[], QtJob]) -> QtJob:
        """Ask for the job (after begin()) and follow it to its end."""
        job = self.job = make_job()
        job.started.connect(self.started)
        job.prefillProgress.connect(self.prefill)
        job.text.connect(self._on_text)
        job.trimmed.connect(lambda dropped, _tokens, _ctx: self.trimmed.emit(dropped))
        job.summaryProgress.connect(self.summaryProgress)
        job.finished.connect(self._on_finished)
        job.failed.connect(self._on_failed)
        if self.answer_id is not None:
            self._timer.start()
        if job.ended:  # stopped before it was even handed over
            self._on_finished(job.result)
        return job

    def stop(self, now: bool = False) -> None:
        """Immediate: the job's Event is set from this thread; a queued job never runs. With
        `now`, the answer is stored as stopped at once (the window is closing)."""
        if self.job is not None and self.active:
            self.job.stop()
        if now:
            self._end(MessageStatus.STOPPED, None, None)

    def abandon(self) -> None:
        """Stop and forget without writing (its conversation was deleted)."""
        self.conversation_id = self.answer_id = None
        self.stop()

    def checkpoint(self) -> None:
        if self.answer_id is None or len(self.text) == self._saved_len:
            return
        try:
            self.store.update_answer(self.answer_id, self.text)
            self._saved_len = len(self.text)
        except sqlite3.Error as e:  # keep streaming; the final write tries again
            self._on_error(f"Could not save the answer so far: {e}")

    def stats_dict(self) -> dict[str, Any] | None:
        s = self.stats
        return dataclasses.asdict(s) if dataclasses.is_dataclass(s) else s  # type: ignore[arg-type, return-value]

    def store_into(self, conversation_id: int) -> Message | None:
        """Store the ended answer as the next message of `conversation_id` (Continue in chat)."""
        try:
            message = self.store.add_message(
                conversation_id, "assistant", self.text, self.status,
                stats=self.stats_dict(), error=self.error,
            )  # fmt: skip
        except _WRITE_ERRORS as e:
            self._on_error(f"Could not save the answer: {e}")
            return None
        self.conversation_id, self.answer_id = conversation_id, message.id
        return message

    def replace_text(self, text: str) -> None:
        """The whole answer is `text` now (a stopped summary: the parts it finished)."""
        if self.active:
            self.text = text
            self.replaced.emit(self.text)
            self.textChanged.emit(self.text)

    # --- the job's signals ---

    def _on_text(self, text: str) -> None:
        if self.active:
            self.text += text
            self.textChanged.emit(self.text)

    def _on_finished(self, stats: Any) -> None:
        cancelled = self.job is not None and self.job.cancelled  # stopped, or superseded
        self._end(MessageStatus.STOPPED if cancelled else MessageStatus.COMPLETE, stats, None)

    def _on_failed(self, message: str) -> None:
        self._end(MessageStatus.FAILED, None, message)

    def _end(self, status: MessageStatus, stats: Any, error: str | None) -> None:
        if not self.active:
            return
        self._timer.stop()
        self.status, self.stats, self.error = status, stats, error
        self.ended.emit(self._write())

    def _write(self) -> Message | UnsavedAnswer:
        unsaved = UnsavedAnswer(
            self.answer_id or -1, self.conversation_id, self.text, self.status,
            self.stats_dict(), self.error,
        )  # fmt: skip
        if self.answer_id is None:
            return unsaved
        try:
            return self.store.finish_answer(
                self.answer_id, self.text, self.status, self.stats_dict(), self.error
            )
        except _WRITE_ERRORS as e:
            self._on_error(f"Could not save the answer: {e}")
            return unsaved
