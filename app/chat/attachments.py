"""Documents attached to the next message: read off the GUI thread, counted in Tekken tokens.

Extraction (PDF, DOCX, ...) can take seconds for a long file, so it runs on a short-lived
QThread; it is pure Python, no MLX, so it need not queue behind the engine thread. The window
never imports engine: the controller hands over the extract function and the tokenizer.

How a document reaches the model is app.chat.prompt's job (one block per document, before the
question).

Chips belong to the conversation they were added in (issue 17 #4): switching chats puts the
current chips and errors aside and shows the other chat's; a new chat starts with none; a new
chat that becomes a stored conversation (its first message, or Summarize) keeps its chips.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFileDialog, QWidget

from app.chat.prompt import document_block, prompt_budget
from app.store.store import Attachment

if TYPE_CHECKING:
    from app.chat.chat_parts import ChatParts


@dataclass(frozen=True)
class PendingAttachment:
    """A read document waiting in the composer; plain data."""

    path: str
    name: str
    text: str  # as sent and stored: a PDF's pages carry "[page N]" lines so answers can cite them
    pages: int
    tokens: int  # Tekken tokens of `text`
    prompt_tokens: int  # the document block alone as a user message (tag and BOS included)
    warnings: tuple[str, ...] = ()
    document: Any = field(default=None, compare=False, repr=False)  # engine Document, to summarize

    def to_store(self) -> Attachment:
        return Attachment(self.name, self.text, self.path, self.pages, self.tokens, self.unit)

    @property
    def unit(self) -> str:
        """'page', 'slide', ... where the document has real pages; '' for DOCX, TXT, ..."""
        document = self.document
        return (getattr(document, "unit", None) or "") if document is not None else "page"

    def fits(self, budget: int) -> bool:
        """Whether a question about it can be answered within `budget` prompt tokens."""
        return self.prompt_tokens <= budget


def read_attachment(path: str, extract: Callable[[str], Any], tokenizer: Any) -> PendingAttachment:
    """Extract and count one file (slow: call it off the GUI thread)."""
    doc = extract(path)
    text = doc.cited_text()
    block = document_block(doc.name, text)
    prompt = tokenizer.encode_chat([{"role": "user", "content": block}])
    return PendingAttachment(
        path=str(path),
        name=doc.name,
        text=text,
        pages=doc.page_count,
        tokens=len(tokenizer.encode(text)),
        prompt_tokens=len(prompt),
        warnings=tuple(doc.warnings),
        document=doc,
    )


def error_message(path: str, error: Exception) -> str:
    # DocumentError already names the file and the problem; anything else is named here.
    if hasattr(error, "problem"):
        return str(error)
    return f"{Path(path).name}: could not be read ({type(error).__name__}: {error})"


class _ReadThread(QThread):
    """Reads a batch of files in order; its signals are queued to the GUI thread."""

    read = Signal(object)  # PendingAttachment
    failed = Signal(str, str)  # path, message naming the file

    def __init__(self, paths: list[str], extract: Callable, tokenizer: Callable[[], Any]):
        super().__init__()
        self._paths, self._extract, self._tokenizer = paths, extract, tokenizer

    def run(self) -> None:
        for path in self._paths:
            if self.isInterruptionRequested():
                return
            try:
                self.read.emit(read_attachment(path, self._extract, self._tokenizer()))
            except Exception as e:  # noqa: BLE001 - any bad file is reported, never a crash
                self.failed.emit(path, error_message(path, e))


_running: set[_ReadThread] = set()  # a QThread must outlive its run(): kept here until finished
_running_lock = threading.Lock()


class DocumentReader(QObject):
    """Reads dropped files on helper threads; emits read(PendingAttachment) or failed(path, msg)."""

    read = Signal(object)
    failed = Signal(str, str)
    busyChanged = Signal(bool)

    def __init__(
        self,
        extract: Callable[[str], Any],
        tokenizer: Callable[[], Any],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._extract, self._tokenizer = extract, tokenizer
        self._threads: list[_ReadThread] = []
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    @property
    def busy(self) -> bool:
        return bool(self._threads)

    def read_files(self, paths: Iterable[str]) -> None:
        paths = [str(p) for p in paths]
        if not paths:
            return
        thread = _ReadThread(paths, self._extract, self._tokenizer)
        thread.read.connect(self.read)
        thread.failed.connect(self.failed)
        thread.finished.connect(self._reap, Qt.ConnectionType.QueuedConnection)
        with _running_lock:
            _running.add(thread)
        self._threads.append(thread)
        thread.start()
        if len(self._threads) == 1:
            self.busyChanged.emit(True)

    @Slot()
    def _reap(self) -> None:
        # Queued, so it runs on this (GUI) thread after the reader's last read/failed signal.
        thread = self.sender()
        if not isinstance(thread, _ReadThread) or thread not in self._threads:
            return
        thread.wait()  # finished is emitted just before run() returns: a moment at most
        self._threads.remove(thread)
        with _running_lock:
            _running.discard(thread)
        if not self._threads:
            self.busyChanged.emit(False)

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Stop after the file being read and wait (a running QThread must not be destroyed)."""
        for thread in list(self._threads):
            thread.requestInterruption()
            thread.wait(timeout_ms)


def local_paths(mime: Any) -> list[str]:
    """The local files in a drag's data (Finder and file managers send file:// URLs)."""
    if mime is None or not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


@dataclass
class _Aside:
    """A conversation's chips and errors while another conversation is shown."""

    attachments: list[PendingAttachment] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class DocumentAttacher(QObject):
    """The window's side of attaching: drops, the Attach button and menu, the chips' budget.

    Sending asks for_send() for the attachments; a document that does not fit blocks the send
    (the text stays in the composer) and its chip offers Summarize instead.
    """

    def __init__(self, parts: ChatParts, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.parts = parts
        self.chips = parts.chips
        c = parts.controller
        self.reader = DocumentReader(c.extract_document, c.document_tokenizer, self)
        self.reader.read.connect(self._on_read)
        self.reader.failed.connect(self._on_failed)
        self._reading: list[tuple[str, int | None]] = []  # (path, its chat), not back yet
        self._added = itertools.count()
        self._added_order: dict[str, int] = {}  # path -> when it was added, until it is read
        self._errors: list[str] = []
        self._offer: set[str] = set()  # opened by the OS: say that Summarize is offered
        # Documents over the context: handed here (text, attachments) -> True when handled
        # (asked across every part by app.chat.summarize_flow); else the send is refused.
        self.too_long: Callable[[str, Sequence[PendingAttachment]], bool] | None = None
        self._key: int | None = parts.current_id()  # the conversation the chips belong to
        self._aside: dict[int, _Aside] = {}  # other conversations' chips
        parts.chat_view.conversationShown.connect(self.switch_to)
        parts.composer.attachRequested.connect(self.choose_files)
        c.stateChanged.connect(self._update_summarize)
        c.modelLoaded.connect(lambda _info: self.update_budget())
        self._update_summarize(c.state)
        self.update_budget()

    def accept_drops_on(self, *widgets: QWidget) -> None:
        """Files dropped on these widgets are attached (the window decides which)."""
        for widget in widgets:
            widget.setAcceptDrops(True)
            widget.installEventFilter(self)

    # -- attaching

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        kind = event.type()
        drag = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)
        if kind in drag and isinstance(event, QDropEvent):  # DragEnter/Move derive from it
            paths = local_paths(event.mimeData())
            if paths:
                event.setDropAction(Qt.DropAction.CopyAction)
                event.accept()
                if kind == QEvent.Type.Drop:
                    self.attach(paths)
                return True
        return super().eventFilter(watched, event)

    def choose_files(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in self.parts.controller.document_extensions)
        paths, _ = QFileDialog.getOpenFileNames(
            self.parts.dialog_parent, "Attach documents", str(Path.home()),
            f"Documents ({patterns});;All files (*)",
        )  # fmt: skip
        self.attach(paths)

    def attach(self, paths: Iterable[str]) -> None:
        """Reads the files off the GUI thread; each becomes a chip, or an error naming it."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        self._errors = []
        self._reading += [(p, self._key) for p in paths]
        for p in paths:  # chips keep this order, whichever file is read first
            self._added_order[p] = next(self._added)
        self._show_notice()
        self.reader.read_files(paths)

    def open(self, path: str) -> None:
        """A document handed over by the OS: attach it and offer Summarize."""
        self._offer.add(str(path))
        self.attach([path])

    def _on_read(self, attachment: PendingAttachment) -> None:
        key = self._done_reading(attachment.path)
        if key != self._key:  # added in another chat: it waits there
            self._offer.discard(attachment.path)
            if key is not None:
                self._aside.setdefault(key, _Aside()).attachments.append(attachment)
            return
        chip = self.chips.add(attachment, self._added_order.pop(attachment.path, None))
        warnings = attachment.warnings
        self._show_notice(f"{attachment.name}: {'; '.join(warnings)}" if warnings else "")
        if attachment.path in self._offer:
            self._offer.discard(attachment.path)
            if chip.fits:
                offer = f"{attachment.name} is attached: ask a question about it, or Summarize it."
            else:
                offer = f"{attachment.name} is too long for the context: Summarize it."
            self.parts.status.set_message(offer)

    def _on_failed(self, path: str, message: str) -> None:
        key = self._done_reading(path)
        self._offer.discard(path)
        self._added_order.pop(path, None)
        if key != self._key:
            if key is not None:
                self._aside.setdefault(key, _Aside()).errors.append(message)
            return
        self._errors.append(message)
        self._show_notice()
        self.parts.status.set_message(message, error=True)

    def _done_reading(self, path: str) -> int | None:
        """Forget a path handed to the reader; the conversation it was added in."""
        entry = next((e for e in self._reading if e[0] == path), None)
        if entry is None:
            return self._key
        self._reading.remove(entry)
        return entry[1]

    def _reading_here(self) -> list[str]:
        return [path for path, key in self._reading if key == self._key]

    def _show_notice(self, info: str = "") -> None:
        reading = self._reading_here()
        if self._errors:
            self.chips.set_notice("\n".join(self._errors), error=True)
        elif reading:
            names = ", ".join(Path(p).name for p in reading)
            self.chips.set_notice(f"Reading {names}…")
        else:
            self.chips.set_notice(info or "")

    # -- sending

    def budget(self) -> int:
        """Prompt tokens one message may use under the current settings."""
        s = self.parts.settings()
        system = 0
        if s.system_prompt.strip():
            try:
                system = self.parts.controller.count_tokens(s.system_prompt) + 2
            except RuntimeError:  # no model loaded: no tokenizer to count with
                system = 0
        return prompt_budget(s.num_ctx, s.max_tokens, system)

    def update_budget(self) -> None:
        self.chips.set_budget(self.budget(), self.parts.settings().num_ctx)

    def for_send(self, text: str) -> list[Attachment] | None:
        """The attachments for a message, or None (the text goes back) when one is still being
        read or they do not fit: a document is never cut to fit."""
        pending = self.chips.attachments()
        problem = None
        reading = self._reading_here()
        if reading:
            problem = f"Still reading {Path(reading[0]).name}; send again in a moment."
        elif pending:
            budget, num_ctx = self.budget(), self.parts.settings().num_ctx
            needed = sum(a.prompt_tokens for a in pending)
            if needed > budget and self.too_long is not None and self.too_long(text, pending):
                return None  # asked (or summarized) across every part instead
            if needed > budget:
                names = ", ".join(a.name for a in pending if not a.fits(budget)) or "the documents"
                problem = (
                    f"{names} need{'s' if ',' not in names else ''} {needed:,} tokens, but a "
                    f"message may use {budget:,} with a context of {num_ctx:,}. Summarize "
                    "instead, or raise the context length in Settings."
                )
        if problem is not None:
            self.parts.composer.set_text(text)
            self.chips.set_notice(problem, error=True)
            self.parts.status.set_message(problem, error=True)
            return None
        return [a.to_store() for a in pending]

    def sent(self) -> None:
        self.chips.clear()
        self._errors = []
        self._show_notice()

    # -- one set of chips per conversation

    def switch_to(self, conversation_id: int | None) -> None:
        """The window shows `conversation_id` (None: a new chat): its own chips only."""
        old = self._key
        if conversation_id is not None and conversation_id == old:
            return
        pending, errors = self.chips.attachments(), list(self._errors)
        became = old is None and conversation_id is not None and not self.parts.chat_view.widgets()
        if became:  # the new chat was just stored (first message, Summarize): chips stay
            self._reading = [(p, conversation_id if k is None else k) for p, k in self._reading]
            self._key = conversation_id
            return
        if old is not None and (pending or errors):
            self._aside[old] = _Aside(pending, errors)
        elif old is not None:
            self._aside.pop(old, None)
        if conversation_id is None:  # a new chat starts with none, even of an earlier new chat
            self._reading = [(p, k) for p, k in self._reading if k is not None]
        self._key = conversation_id
        self._offer.clear()
        aside = self._aside.pop(conversation_id, None) if conversation_id is not None else None
        self.chips.clear()
        for attachment in aside.attachments if aside else []:
            self.chips.add(attachment)
        self._errors = list(aside.errors) if aside else []
        self._show_notice()

    def forget(self, conversation_id: int) -> None:
        """A deleted conversation's chips go with it."""
        self._aside.pop(conversation_id, None)

    def _update_summarize(self, state: str) -> None:
        # The state alone: at "ready" the window may still be storing the last answer.
        if state == "ready":
            self.chips.set_summarize_enabled(True)
        elif state == "generating":
            self.chips.set_summarize_enabled(False, "Wait for the current answer to finish.")
        else:
            self.chips.set_summarize_enabled(False, "Open a model folder to summarize.")
