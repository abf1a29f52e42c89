"""The main window: wires the sidebar, chat view and composer to the Store and the engine.

The GUI thread owns every database write (DESIGN rule 5). A user message is stored before
generation starts, the answer is checkpointed about once a second and finished as complete,
stopped or failed (rule 7). Signals of an old request never reach the view (rule 4): the
controller drops stale ids, and the window checks the id once more.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QWidget,
)

from app.chat.answer_recorder import AnswerRecorder
from app.chat.attachments import DocumentAttacher, prompt_budget, prompt_content
from app.chat.summarize_flow import SummarizeFlow
from app.settings import ChatSettings, save_settings
from app.store.store import Store, StoreError
from app.views.chat_page import ChatPage
from app.views.download_panel import DownloadPanel
from app.views.menus import install_menus
from app.views.models_page import ModelsPage
from app.views.settings_dialog import SettingsDialog
from app.views.sidebar import Sidebar
from app.views.status_bar import ChatStatusBar
from app.views.welcome import WelcomeView

NOT_READY = {
    "none": "Open a model folder before sending a message.",
    "error": "The model did not load; open a model folder to try again.",
    "loading": "The model is still loading.",
    "generating": "Nemo is still answering (a quick prompt or the last answer); try again soon.",
}


class MainWindow(QMainWindow):
    settingsChanged = Signal(object)  # ChatSettings, after apply_settings (the menu-bar app)

    def __init__(
        self,
        store: Store,
        controller: Any,
        settings: ChatSettings,
        qsettings: QSettings | None = None,
        parent: QWidget | None = None,
        downloader: Any = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.controller = controller
        self.settings = settings
        self._qsettings = qsettings if qsettings is not None else QSettings()
        self.current_id: int | None = None
        self.keep_in_menu_bar = False  # set by app.tray where a tray exists: close only hides
        self.answers = AnswerRecorder(store, lambda text: self.status.set_message(text, True), self)
        self.setWindowTitle("Nemo Chat")
        self.setObjectName("mainWindow")
        self.resize(1100, 760)
        self.setMinimumSize(720, 480)

        self.sidebar = Sidebar()
        self.welcome = WelcomeView()
        chat_page = ChatPage()
        self.chat_view, self.composer = chat_page.chat_view, chat_page.composer
        self.chips = chat_page.chips
        self.stack = QStackedWidget()
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(chat_page)
        self._chat_page = chat_page
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("mainSplitter")
        splitter.addWidget(self.sidebar)
        splitter.addWidget(self.stack)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 840])
        splitter.setCollapsible(1, False)
        splitter.setHandleWidth(1)
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self.status = ChatStatusBar()
        self.setStatusBar(self.status)

        self.menu_actions = install_menus(self)
        self.new_action, self.find_action = self.menu_actions.new_chat, self.menu_actions.find
        self.settings_action = self.menu_actions.settings
        self._connect()
        self.documents = DocumentAttacher(self)  # drops, Attach…, chips (app/attachments.py)
        self.summaries = SummarizeFlow(self)  # the chips' Summarize (app/summarize_flow.py)
        self.downloader = (
            downloader  # app.bridge.downloader.Downloader: the first-run download panel
        )
        if downloader is not None:
            self.download_panel = DownloadPanel(downloader)
            self.download_panel.modelReady.connect(self.load_model)
            self.welcome.set_download_panel(self.download_panel)
        self.refresh_sidebar()
        if getattr(controller, "model_info", None) is not None:
            self._on_model_loaded(controller.model_info)
        self._on_state(getattr(controller, "state", "none"))
        self._restore_geometry()

    # -- setup

    def _connect(self) -> None:
        c = self.controller
        c.stateChanged.connect(self._on_state)
        c.loadProgress.connect(self._on_load_progress)
        c.modelLoaded.connect(self._on_model_loaded)
        c.modelFailed.connect(self._on_model_failed)
        c.prefillProgress.connect(self._on_prefill)
        c.contextTrimmed.connect(self._on_trimmed)
        c.chunk.connect(self._on_chunk)
        c.finished.connect(self._on_finished)
        c.failed.connect(self._on_failed)
        # Only this window's answers move its meter (not a quick prompt's, app/quick_prompt.py).
        c.contextUsage.connect(self._on_context_usage)
        s = self.sidebar
        s.newChatRequested.connect(self.new_chat)
        s.conversationSelected.connect(self.open_conversation)
        s.renameRequested.connect(self.rename_conversation)
        s.deleteRequested.connect(self.delete_conversation)
        s.searchChanged.connect(self.search)
        self.composer.sendRequested.connect(self.send_message)
        self.composer.stopRequested.connect(self.stop)
        self.chat_view.editSubmitted.connect(self.edit_and_resend)
        self.chat_view.regenerateRequested.connect(self.regenerate)
        self.welcome.openModelRequested.connect(self.choose_model_folder)

    # -- conversations

    def refresh_sidebar(self) -> None:
        if self.sidebar.searching and self.sidebar.query():
            self.search(self.sidebar.query())
        else:
            self.sidebar.set_conversations(self.store.list_conversations(), self.current_id)

    def new_chat(self) -> None:
        """An empty chat; it is stored only once its first message is sent."""
        self.current_id = None
        self.sidebar.select_conversation(None)
        self.chat_view.show_conversation(None, [])
        self.setWindowTitle("Nemo Chat")
        self.status.set_trimmed(0)
        self.status.set_context(0, self.settings.num_ctx)
        self._update_view()
        self.composer.focus()

    def open_conversation(self, conversation_id: int, message_id: int | None = None) -> None:
        try:
            messages = self.store.messages(conversation_id)
            title = self.store.get_conversation(conversation_id).title
        except StoreError as e:
            self.status.set_message(str(e), error=True)
            return
        streaming_id = None
        s = self.answers.active
        if s is not None and s.conversation_id == conversation_id:
            # The stored row lags by up to a checkpoint; show what has streamed so far.
            streaming_id = s.answer_id
            messages = [replace(m, content=s.text) if m.id == s.answer_id else m for m in messages]
        self.current_id = conversation_id
        if not self.sidebar.searching:
            self.sidebar.select_conversation(conversation_id)
        self.chat_view.show_conversation(conversation_id, messages, streaming_id)
        self.setWindowTitle(f"{title} — Nemo Chat")
        self.status.set_trimmed(0)
        self._show_context_estimate(conversation_id, messages)
        self._update_view()
        if message_id is not None:
            QTimer.singleShot(0, lambda: self.chat_view.scroll_to_message(message_id))

    def _show_context_estimate(self, conversation_id: int, messages: list) -> None:
        """The meter for a chat just opened: its prompt's tokens (pure tiktoken, no MLX)."""
        count = getattr(self.controller, "count_chat_tokens", None)
        prompt = self._prompt(conversation_id, messages)
        if prompt and prompt[-1]["role"] == "assistant":
            prompt.append({"role": "user", "content": ""})  # a chat must end with the user
        try:
            used = count(prompt) if count and prompt else 0
        except Exception:  # no model loaded: no tokenizer to count with
            used = 0
        self.status.set_context(used, self.settings.num_ctx)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self.store.rename_conversation(conversation_id, title)
        if conversation_id == self.current_id:
            self.setWindowTitle(f"{title} — Nemo Chat")

    def delete_conversation(self, conversation_id: int) -> None:
        a = self.answers.active
        if a is not None and a.conversation_id == conversation_id:
            self.controller.stop()
            self.answers.abandon()  # its row goes with the chat; late signals are ignored
            self.chat_view.set_busy(False)
        self.store.delete_conversation(conversation_id)
        if conversation_id == self.current_id:
            self.new_chat()
        self.refresh_sidebar()

    def search(self, query: str) -> None:
        if not query.strip():
            self.sidebar.set_conversations(self.store.list_conversations(), self.current_id)
            return
        self.sidebar.set_search_results(query, self.store.search(query))

    # -- sending and streaming

    @property
    def generating(self) -> bool:
        return self.answers.active is not None

    def send_message(self, text: str) -> None:
        try:
            self._send(text)
        except (sqlite3.Error, StoreError) as e:  # e.g. a full disk: say so, keep the text
            self.composer.set_text(text)
            self.status.set_message(f"Could not save the message to {self.store.path}: {e}", True)

    def _send(self, text: str) -> None:
        text = text.strip()
        if not text or self.generating:
            return
        state = getattr(self.controller, "state", "none")
        if state != "ready":
            self.composer.set_text(text)  # keep what was typed
            why = NOT_READY.get(state, NOT_READY["none"])
            self.status.set_message(why, error=True)
            return
        attachments = self.documents.for_send(text)
        if attachments is None:  # one is still being read or does not fit: the text is kept
            return
        if self.current_id is None:
            self.current_id = self.store.create_conversation(
                system_prompt=self.settings.system_prompt or None
            ).id
            self.chat_view.show_conversation(self.current_id, [])
        message = self.store.add_message(self.current_id, "user", text, attachments=attachments)
        self.documents.sent()
        title = self.store.auto_title(self.current_id)
        self.setWindowTitle(f"{title} — Nemo Chat")
        self.chat_view.add_message(message)
        self._start_answer(self.current_id)
        self.refresh_sidebar()

    def _start_answer(self, conversation_id: int, request: Any = None) -> None:
        """request() -> rid asks for the answer; a chat reply unless given (a summary)."""
        history = self.store.messages(conversation_id)
        answer = self.answers.begin(conversation_id)
        if conversation_id == self.current_id:
            self.chat_view.add_message(answer)
            self.chat_view.set_streaming_note("Thinking…")
        self.status.set_trimmed(0)
        self._set_generating(True)
        if request is not None:
            self.answers.active.rid = request()
            return
        self.answers.active.rid = self.controller.send(
            conversation_id, self._prompt(conversation_id, history), self.settings
        )

    def _prompt(self, conversation_id: int, history: list) -> list[dict[str, str]]:
        """The chat for the model: a system prompt, then every exchange that said something."""
        conv = self.store.get_conversation(conversation_id)
        system = conv.system_prompt or self.settings.system_prompt
        out = [{"role": "system", "content": system}] if system else []
        budget = prompt_budget(self.settings.num_ctx, self.settings.max_tokens)
        for m in history:
            if m.role in ("user", "assistant") and m.status != "failed" and m.content.strip():
                # Documents go in full; one too long for the context only as a note (see there).
                content = prompt_content(m.content, m.attachments, budget)
                out.append({"role": m.role, "content": content})
        return out

    def stop(self) -> None:
        """Immediate: the controller sets the cancel Event from this thread."""
        if self.generating:
            self.controller.stop()

    def _on_chunk(self, rid: int, text: str) -> None:
        s = self.answers.matching(rid)
        if s is None:
            return
        if not s.text:
            self.status.set_state("generating")  # prefill is over: "Reading…" → "Writing…"
        s.text += text
        if s.conversation_id == self.current_id:
            self.chat_view.stream_text(s.answer_id, s.text)

    def _on_prefill(self, rid: int, done: int, total: int) -> None:
        s = self.answers.matching(rid)
        if s is None:
            return
        text = f"Reading {done:,} / {total:,} tokens…"
        self.status.set_prefill(done, total)
        if s.conversation_id == self.current_id and not s.text:
            self.chat_view.set_streaming_note(text)

    def _on_context_usage(self, used: int, num_ctx: int) -> None:
        if self.generating:
            self.status.set_context(used, num_ctx)

    def _on_trimmed(self, rid: int, dropped: int, prompt_tokens: int, num_ctx: int) -> None:
        s = self.answers.matching(rid)
        if s is not None and s.conversation_id == self.current_id:
            self.status.set_trimmed(dropped)

    def _on_finished(self, rid: int, stats: Any) -> None:
        s = self.answers.matching(rid)
        if s is None:
            return
        stopped = getattr(stats, "finish_reason", "stop") == "cancelled"
        stats_dict = dataclasses.asdict(stats) if dataclasses.is_dataclass(stats) else stats
        self._finish("stopped" if stopped else "complete", stats_dict, None)

    def _on_failed(self, rid: int, message: str) -> None:
        s = self.answers.matching(rid)
        if s is None:
            return
        self._finish("failed", None, message)
        self.status.set_message(message, error=True)

    def _finish(self, status: str, stats: Any, error: str | None) -> None:
        conversation_id = self.answers.active.conversation_id
        message = self.answers.finish(status, stats, error)
        if conversation_id == self.current_id:
            self.chat_view.finish_streaming(message)
        self._set_generating(False)
        self.refresh_sidebar()

    def _set_generating(self, generating: bool) -> None:
        self.chat_view.set_busy(generating)
        self._update_view()

    # -- edit and regenerate

    def edit_and_resend(self, message_id: int, text: str) -> None:
        """Replaces a user message and everything after it, then answers again."""
        if self.generating or getattr(self.controller, "state", "") != "ready":
            return
        message = self.store.get_message(message_id)
        self.store.edit_message(message_id, text)
        self.store.delete_messages_from(message.conversation_id, message.position + 1)
        self.open_conversation(message.conversation_id)
        summary = self.summaries.request_for(message.conversation_id)  # None: a chat reply
        self._start_answer(message.conversation_id, summary)

    def regenerate(self, answer_id: int) -> None:
        """Replaces an answer (the last one) with a new one."""
        if self.generating or getattr(self.controller, "state", "") != "ready":
            return
        message = self.store.get_message(answer_id)
        self.store.delete_messages_from(message.conversation_id, message.position)
        self.chat_view.remove_messages_from(answer_id)
        summary = self.summaries.request_for(message.conversation_id)  # None: a chat reply
        self._start_answer(message.conversation_id, summary)

    # -- model and settings

    def choose_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose the model folder", self.settings.model_dir or str(Path.home())
        )
        if folder:
            self.load_model(folder)

    def load_model(self, path: str) -> None:
        self.apply_settings(replace(self.settings, model_dir=path), load=False)
        self.welcome.set_status(f"Loading {Path(path).name}…")
        self.controller.load_model(path)

    def make_settings_dialog(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings, self.controller.plan_memory, self)
        if self.downloader is not None:  # models on disk: use, reveal, delete
            dialog.add_models_page(ModelsPage(self.downloader.library, self.settings.model_dir))
        return dialog

    def open_settings(self) -> None:
        dialog = self.make_settings_dialog()
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog.settings())

    def apply_settings(self, new: ChatSettings, load: bool = True) -> None:
        """Saves and applies settings; num_ctx and KV bits change without reloading weights."""
        old, self.settings = self.settings, new
        save_settings(new, self._qsettings)
        if new.num_ctx != old.num_ctx:
            self.controller.set_num_ctx(new.num_ctx)
        if new.kv_bits != old.kv_bits:
            self.controller.set_kv_bits(new.kv_bits)
        if load and new.model_dir and new.model_dir != old.model_dir:
            self.load_model(new.model_dir)
        self.documents.update_budget()
        self.settingsChanged.emit(new)

    def _on_state(self, state: str) -> None:
        if state != "generating" or self.generating:
            self.status.set_state(state)
        self.welcome.set_loading(state == "loading")
        self._update_view()

    def _on_load_progress(self, done: int, total: int) -> None:
        self.status.set_load_progress(done, total)
        if total:
            self.welcome.set_status(f"Loading model… {100 * done // total}%")

    def _on_model_loaded(self, info: Any) -> None:
        name = getattr(info, "name", None) or Path(self.settings.model_dir or "model").name
        self.status.model_name = str(name)
        self.status.set_state("ready")
        self.welcome.set_status("")
        self._update_view()

    def _on_model_failed(self, message: str) -> None:
        self.welcome.set_status(message, error=True)
        self.status.set_message(message, error=True)
        self._update_view()

    def _update_view(self) -> None:
        """Welcome page without a model (unless a past chat is open); the chat otherwise."""
        state = getattr(self.controller, "state", "none")
        ready = state in ("ready", "generating")
        show_chat = ready or self.current_id is not None or self.generating
        self.stack.setCurrentWidget(self._chat_page if show_chat else self.welcome)
        a = self.answers.active
        here = a is not None and a.conversation_id == self.current_id
        self.composer.set_generating(here)
        if self.generating and not here:
            self.composer.set_can_send(False, "Nemo is still answering in another chat.")
        elif not ready:
            self.composer.set_can_send(False, "Open a model folder to chat.")
        else:
            self.composer.set_can_send(True)

    def open_document(self, path: str) -> None:
        """A document handed over by the OS (argv, macOS FileOpen): attach it, offer Summarize."""
        self.documents.open(path)

    # -- export, close

    def export_chat(self) -> None:
        if self.current_id is None:
            return
        title = self.store.get_conversation(self.current_id).title
        path, _ = QFileDialog.getSaveFileName(
            self, "Export chat", str(Path.home() / f"{title}.md"), "Markdown (*.md)"
        )
        if path:
            try:
                Path(path).write_text(self.store.export_markdown(self.current_id), "utf-8")
            except OSError as e:
                QMessageBox.warning(self, "Export failed", f"Could not write {path}: {e}")

    def present(self, conversation_id: int | None = None) -> None:
        """Show the window in front (from the menu bar), optionally opening a conversation."""
        self.showNormal() if self.isMinimized() else self.show()
        self.raise_()
        self.activateWindow()
        if conversation_id is not None:
            self.refresh_sidebar()
            self.open_conversation(conversation_id)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """An answer still streaming is stopped and stored as such (nothing is lost)."""
        if self.keep_in_menu_bar:  # the app lives on in the menu bar; the answer goes on
            self._qsettings.setValue("window/geometry", self.saveGeometry())
            event.ignore()
            self.hide()
            return
        if self.answers.active is not None:
            self.controller.stop()
            self._finish("stopped", None, None)
        self._qsettings.setValue("window/geometry", self.saveGeometry())
        self._qsettings.setValue("window/splitter", self.splitter.saveState())
        super().closeEvent(event)

    def _restore_geometry(self) -> None:
        geometry = self._qsettings.value("window/geometry")
        if geometry:
            self.restoreGeometry(geometry)
        splitter = self._qsettings.value("window/splitter")
        if splitter:
            self.splitter.restoreState(splitter)
