"""Documents attached to the next message: read off the GUI thread, counted in Tekken tokens.

Extraction (PDF, DOCX, ...) can take seconds for a long file, so it runs on a short-lived
QThread; it is pure Python, no MLX, so it need not queue behind the engine thread. The window
never imports engine: the controller hands over the extract function and the tokenizer.

How a document reaches the model: the user message's text goes after one block per document,
    <document name="report.pdf">
    …text, with "[page N]" lines for PDFs…
    </document>
The same tag summarize_plan's prompts use, so a summary and a question see one format; the
question comes last, nearest to where the answer starts, as long-context prompting advises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from app.store.store import Attachment


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
        return Attachment(self.name, self.text, self.path, self.pages, self.tokens)

    def fits(self, budget: int) -> bool:
        """Whether a question about it can be answered within `budget` prompt tokens."""
        return self.prompt_tokens <= budget


def _tag_name(name: str) -> str:
    return " ".join(name.replace('"', "'").split())


def document_block(name: str, text: str) -> str:
    return f'<document name="{_tag_name(name)}">\n{text}\n</document>'


def omitted_block(attachment: Attachment) -> str:
    # Never cut silently: the model is told the document is there but too long to include.
    tokens = f"{attachment.tokens:,} tokens, " if attachment.tokens is not None else ""
    return (
        f'<document name="{_tag_name(attachment.name)}">\n'
        f"[Not included: {tokens}longer than the context. Its summary, if one was asked for, "
        "is in the answer that follows.]\n</document>"
    )


def prompt_content(
    content: str, attachments: Sequence[Attachment], budget: int | None = None
) -> str:
    """A stored user message as the model reads it: its documents first, then its text.

    A document over `budget` tokens (one that could only have been summarized) is replaced by a
    note; the summary written after it carries the conversation about it.
    """
    blocks = [
        omitted_block(a)
        if budget is not None and a.tokens is not None and a.tokens > budget
        else document_block(a.name, a.text)
        for a in attachments
    ]
    return "\n\n".join([*blocks, content]) if blocks else content


def prompt_budget(num_ctx: int, max_tokens: int, system_tokens: int = 0) -> int:
    """Prompt tokens one message may use: the context less the answer and the system prompt."""
    return num_ctx - max_tokens - system_tokens


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
        if thread not in self._threads:
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


ATTACH_BUTTON_STYLE = """
QToolButton#attachButton {
    border: none;
    border-radius: 8px;
    padding: 2px 8px;
    font-size: 16px;
    color: palette(placeholder-text);
}
QToolButton#attachButton:hover { background: palette(alternate-base); color: palette(text); }
"""


class DocumentAttacher(QObject):
    """The window's side of attaching: drops, the Attach action and button, the chips' budget.

    Sending asks for_send() for the attachments; a document that does not fit blocks the send
    (the text stays in the composer) and its chip offers Summarize instead.
    """

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.chips = window.chips
        c = window.controller
        extract = getattr(c, "extract_document", None)
        tokenizer = getattr(c, "document_tokenizer", None)
        self.reader = DocumentReader(extract, tokenizer, self) if extract and tokenizer else None
        if self.reader is not None:
            self.reader.read.connect(self._on_read)
            self.reader.failed.connect(self._on_failed)
        self._reading: list[str] = []  # paths handed to the reader, not back yet
        self._errors: list[str] = []
        self._offer: set[str] = set()  # opened by the OS: say that Summarize is offered
        window.setAcceptDrops(True)
        window.installEventFilter(self)
        # The composer's text box takes drops itself (it would paste the file's URL).
        window.composer.edit.viewport().installEventFilter(self)
        window.composer.attachRequested.connect(self.choose_files)
        window.composer.attach_button.setStyleSheet(ATTACH_BUTTON_STYLE)
        self.action = self._install_action(window)
        if hasattr(c, "stateChanged"):
            c.stateChanged.connect(self._update_summarize)
            c.modelLoaded.connect(lambda _info: self.update_budget())
        self._update_summarize(getattr(c, "state", "none"))
        self.update_budget()

    def _install_action(self, window: Any) -> QAction:
        """File ▸ Attach Documents… on Ctrl/Cmd+O (the standard Open key: documents are what
        a user opens here); Open Model Folder… moves to Ctrl/Cmd+Shift+O."""
        action = QAction("Attach Documents…", window)
        action.setShortcut(QKeySequence(QKeySequence.StandardKey.Open))
        action.triggered.connect(self.choose_files)
        window.addAction(action)
        menus = getattr(window, "menu_actions", None)
        open_model = getattr(menus, "open_model", None)
        if open_model is not None:
            open_model.setShortcut(QKeySequence("Ctrl+Shift+O"))
            for menu_action in window.menuBar().actions():
                menu = menu_action.menu()
                if menu is not None and open_model in menu.actions():
                    menu.insertAction(open_model, action)
                    break
        return action

    # -- attaching

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            paths = local_paths(event.mimeData())
            if paths:
                event.setDropAction(Qt.DropAction.CopyAction)
                event.accept()
                if kind == QEvent.Type.Drop:
                    self.attach(paths)
                return True
        return super().eventFilter(watched, event)

    def choose_files(self) -> None:
        patterns = " ".join(
            f"*{ext}" for ext in getattr(self.window.controller, "document_extensions", ())
        )
        paths, _ = QFileDialog.getOpenFileNames(
            self.window, "Attach documents", str(Path.home()),
            f"Documents ({patterns});;All files (*)",
        )  # fmt: skip
        self.attach(paths)

    def attach(self, paths: Iterable[str]) -> None:
        """Reads the files off the GUI thread; each becomes a chip, or an error naming it."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        if self.reader is None:
            self.window.status.set_message("Documents cannot be read here.", error=True)
            return
        self._errors = []
        self._reading += paths
        self._show_notice()
        self.reader.read_files(paths)

    def open(self, path: str) -> None:
        """A document handed over by the OS: attach it and offer Summarize."""
        self._offer.add(str(path))
        self.attach([path])

    def _on_read(self, attachment: PendingAttachment) -> None:
        self._done_reading(attachment.path)
        chip = self.chips.add(attachment)
        self._show_notice(
            attachment.warnings and f"{attachment.name}: {'; '.join(attachment.warnings)}"
        )
        if attachment.path in self._offer:
            self._offer.discard(attachment.path)
            if chip.fits:
                offer = f"{attachment.name} is attached: ask a question about it, or Summarize it."
            else:
                offer = f"{attachment.name} is too long for the context: Summarize it."
            self.window.status.set_message(offer)

    def _on_failed(self, path: str, message: str) -> None:
        self._done_reading(path)
        self._offer.discard(path)
        self._errors.append(message)
        self._show_notice()
        self.window.status.set_message(message, error=True)

    def _done_reading(self, path: str) -> None:
        if path in self._reading:
            self._reading.remove(path)

    def _show_notice(self, info: str = "") -> None:
        if self._errors:
            self.chips.set_notice("\n".join(self._errors), error=True)
        elif self._reading:
            names = ", ".join(Path(p).name for p in self._reading)
            self.chips.set_notice(f"Reading {names}…")
        else:
            self.chips.set_notice(info or "")

    # -- sending

    def budget(self) -> int:
        """Prompt tokens one message may use under the current settings."""
        s = self.window.settings
        system = 0
        if s.system_prompt.strip():
            try:
                system = self.window.controller.count_tokens(s.system_prompt) + 2
            except Exception:  # noqa: BLE001 - no model loaded: no tokenizer to count with
                system = 0
        return prompt_budget(s.num_ctx, s.max_tokens, system)

    def update_budget(self) -> None:
        self.chips.set_budget(self.budget(), self.window.settings.num_ctx)

    def for_send(self, text: str) -> list[Attachment] | None:
        """The attachments for a message, or None (the text goes back) when one is still being
        read or they do not fit: a document is never cut to fit."""
        pending = self.chips.attachments()
        problem = None
        if self._reading:
            problem = f"Still reading {Path(self._reading[0]).name}; send again in a moment."
        elif pending:
            budget, num_ctx = self.budget(), self.window.settings.num_ctx
            needed = sum(a.prompt_tokens for a in pending)
            if needed > budget:
                names = ", ".join(a.name for a in pending if not a.fits(budget)) or "the documents"
                problem = (
                    f"{names} need{'s' if ',' not in names else ''} {needed:,} tokens, but a "
                    f"message may use {budget:,} with a context of {num_ctx:,}. Summarize "
                    "instead, or raise the context length in Settings."
                )
        if problem is not None:
            self.window.composer.set_text(text)
            self.chips.set_notice(problem, error=True)
            self.window.status.set_message(problem, error=True)
            return None
        return [a.to_store() for a in pending]

    def sent(self) -> None:
        self.chips.clear()
        self._errors = []
        self._show_notice()

    def _update_summarize(self, state: str) -> None:
        # The state alone: at "ready" the window may still be storing the last answer.
        if state == "ready":
            self.chips.set_summarize_enabled(True)
        elif state == "generating":
            self.chips.set_summarize_enabled(False, "Wait for the current answer to finish.")
        else:
            self.chips.set_summarize_enabled(False, "Open a model folder to summarize.")
