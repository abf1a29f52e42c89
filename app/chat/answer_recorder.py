"""The one answer being written, as the history sees it (DESIGN rule 7: nothing is lost).

Its row is stored before generation starts ('streaming'), checkpointed about once a second,
and finished as complete, stopped or failed with the stats. The GUI thread does all of it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from PySide6.QtCore import QObject, QTimer

from app.store.store import Store, StoreError

CHECKPOINT_MS = 1000


@dataclass
class Answer:
    rid: int  # the controller's request id; -1 until send() returns it
    conversation_id: int
    answer_id: int
    text: str = ""
    saved_len: int = 0


class AnswerRecorder(QObject):
    def __init__(self, store: Store, on_error, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.active: Answer | None = None
        self._on_error = on_error  # on_error(message): a write failed, the answer goes on
        self._timer = QTimer(self)
        self._timer.setInterval(CHECKPOINT_MS)
        self._timer.timeout.connect(self.checkpoint)

    def begin(self, conversation_id: int) -> Any:
        """Stores the empty 'streaming' row; returns it (a store Message)."""
        message = self.store.begin_answer(conversation_id)
        self.active = Answer(-1, conversation_id, message.id)
        self._timer.start()
        return message

    def matching(self, rid: int) -> Answer | None:
        a = self.active
        # rid -1: a signal emitted from inside controller.send(), before it returned the id.
        return a if a is not None and a.rid in (rid, -1) else None

    def checkpoint(self) -> None:
        a = self.active
        if a is None or len(a.text) == a.saved_len:
            return
        try:
            self.store.update_answer(a.answer_id, a.text)
            a.saved_len = len(a.text)
        except sqlite3.Error as e:  # keep streaming; the final write tries again
            self._on_error(f"Could not save the answer so far: {e}")

    def finish(self, status: str, stats: Any = None, error: str | None = None) -> Any:
        """Final write; returns the stored Message (or its look-alike if the write failed)."""
        a, self.active = self.active, None
        self._timer.stop()
        try:
            return self.store.finish_answer(a.answer_id, a.text, status, stats, error)
        except (sqlite3.Error, StoreError) as e:
            self._on_error(f"Could not save the answer: {e}")
            return SimpleNamespace(
                id=a.answer_id, content=a.text, status=status, stats=stats, error=error
            )

    def abandon(self) -> None:
        """Forget the answer without writing (its conversation was deleted)."""
        self.active = None
        self._timer.stop()
