"""The main window: wires the sidebar, chat view and composer to the Store and the engine.

The GUI thread owns every database write (DESIGN rule 5). A user message is stored before
generation starts; app.chat.answer.Answer follows the one job it asked for, checkpoints it and
stores it complete, stopped or failed (rule 7). Nothing of another request reaches the view
(rule 4): each answer hears only its own job.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QWidget,
)

from app.bridge.api_control import ApiControl
from app.bridge.backend_control import BackendControl, location_of, runs_on
from app.bridge.cache_control import CacheControl, chat_key
from app.bridge.state import EngineState
from app.chat.answer import Answer
from app.chat.attachments import DocumentAttacher
from app.chat.chat_parts import ChatParts
from app.chat.context_meter import ContextMeter
from app.chat.deletions import DeletionFlow
from app.chat.measured_rates import MeasuredRates
from app.chat.prompt import build_prompt, prompt_budget
from app.chat.summarize_flow import SummarizeFlow
from app.settings import ChatSettings, save_settings
from app.store.export import export_file_name
from app.store.store import Message, MessageStatus, Store, StoreError
from app.views.chat_page import ChatPage
from app.views.chat_view import search_terms
from app.views.download_panel import DownloadPanel
from app.views.menus import add_deletion_actions, install_menus
from app.views.models_page import ModelsPage
from app.views.settings_api import ApiSettings
from app.views.settings_backend import BackendSettings
from app.views.settings_caches import CacheSettingsView
from app.views.settings_dialog import SettingsDialog
from app.views.sidebar import Sidebar
from app.views.status_bar import ChatStatusBar
from app.views.welcome import WelcomeView

if TYPE_CHECKING:  # the engine is imported after the window shows (app.main)
    from app.bridge.downloader import Downloader
    from app.bridge.engine_controller import EngineController
    from app.bridge.qt_job import QtJob

FAILED_MODEL_KEY = "model/failedFolder"  # QSettings: the folder that failed, and its message
NOT_READY = {
    EngineState.NONE: "Open a model folder before sending a message.",
    EngineState.ERROR: "The model did not load; open a model folder to try again.",
    EngineState.LOADING: "The model is still loading.",
    EngineState.GENERATING: (
        "Nemo is still answering (a quick prompt or the last answer); try again soon."
    ),
}


class MainWindow(QMainWindow):
    settingsChanged = Signal(object)  # ChatSettings, after apply_settings (the menu-bar app)

    def __init__(
        self,
        store: Store,
        controller: EngineController,
        settings: ChatSettings,
        qsettings: QSettings | None = None,
        parent: QWidget | None = None,
        downloader: Downloader | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.controller = controller
        self.settings = settings
        self._qsettings = qsettings if qsettings is not None else QSettings()
        self.current_id: int | None = None
        self.keep_in_menu_bar = False  # set by app.tray where a tray exists: close only hides
        self.answer: Answer | None = None  # the answer being written, in whichever chat
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
        self.api = ApiControl(controller, self)  # the local API (issue 13): off until turned on
        self.api.statusChanged.connect(self.status.set_api)
        self.backend = BackendControl(controller, self)  # this computer or a server (issue 14)
        self.caches = CacheControl(controller, store, self)  # KV caches on disk (issue 12)

        self.menu_actions = install_menus(self)
        self.new_action, self.find_action = self.menu_actions.new_chat, self.menu_actions.find
        self.settings_action = self.menu_actions.settings
        self._connect()
        # The helpers get these parts, never the window (app/chat/chat_parts.py).
        parts = ChatParts(
            controller, store, self.chat_view, self.composer, self.chips, self.status,
            settings=lambda: self.settings, current_id=lambda: self.current_id,
            dialog_parent=self,
        )  # fmt: skip
        self.documents = DocumentAttacher(parts, self)  # drops, Attach…, chips
        # The text box takes drops itself (it would paste the file's URL): filtered too.
        self.documents.accept_drops_on(self, self.composer.edit.viewport())
        self.context = ContextMeter(parts, self)  # the meter and the transcript's divider
        self.settingsChanged.connect(self.context.settings_changed)
        self._install_stop_keys()
        rates = MeasuredRates(self._qsettings)  # this machine's speed, for summary plans
        self.summaries = SummarizeFlow(parts, self, rates, self.documents.budget, self)
        self._chat_page.add_above_composer(self.summaries.strip, self.summaries.ask_button)
        self.documents.too_long = self.summaries.offer_ask  # documents over the context
        self.deletions = DeletionFlow(store, self.status, self.sidebar, self, self)
        self.status.addWidget(self.deletions.notice)
        undo, deleted = self.deletions.undo_action, self.deletions.recently_deleted_action
        add_deletion_actions(self, self.menu_actions, undo, deleted)
        self.downloader = (
            downloader  # app.bridge.downloader.Downloader: the first-run download panel
        )
        if downloader is not None:
            self.download_panel = DownloadPanel(downloader)
            self.download_panel.modelReady.connect(self.load_model)
            self.welcome.set_download_panel(self.download_panel)
        self.refresh_sidebar()
        if controller.model_info is not None:
            self._on_model_loaded(controller.model_info)
        self._on_state(controller.state)
        self._show_location(settings)
        if settings.api_enabled:
            self._apply_api(settings)
        self._restore_geometry()

    # -- setup

    def _connect(self) -> None:
        c = self.controller
        c.stateChanged.connect(self._on_state)
        c.loadProgress.connect(self._on_load_progress)
        c.modelLoaded.connect(self._on_model_loaded)
        c.modelFailed.connect(self._on_model_failed)
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
        self.welcome.settingsRequested.connect(self.open_settings)

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
        a = self.answer
        if a is not None and a.conversation_id == conversation_id:
            # The stored row lags by up to a checkpoint; show what has streamed so far.
            streaming_id = a.answer_id
            messages = [replace(m, content=a.text) if m.id == a.answer_id else m for m in messages]
        self.current_id = conversation_id
        if not self.sidebar.searching:
            self.sidebar.select_conversation(conversation_id)
        self.chat_view.show_conversation(conversation_id, messages, streaming_id)
        self.summaries.decorate()  # "Continue summary" under a stopped one; its strip
        self.setWindowTitle(f"{title} — Nemo Chat")
        self._update_view()
        if message_id is not None:  # a search hit: scrolled to and highlighted
            terms = search_terms(self.sidebar.query()) if self.sidebar.searching else []
            self.chat_view.scroll_to_message(message_id, highlight=True, terms=terms)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self.store.rename_conversation(conversation_id, title)
        if conversation_id == self.current_id:
            self.setWindowTitle(f"{title} — Nemo Chat")

    def delete_conversation(self, conversation_id: int) -> None:
        a = self.answer
        if a is not None and a.conversation_id == conversation_id:
            self.answer = None
            a.abandon()  # its row goes with the chat; its job stops
            self._set_generating(False)
        self.store.delete_conversation(conversation_id)  # to Recently Deleted: undoable
        self.deletions.deleted(conversation_id)
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
        return self.answer is not None

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
        state = self.controller.state
        if state != EngineState.READY:
            self.composer.set_text(text)  # keep what was typed
            self.status.set_message(NOT_READY.get(state, NOT_READY[EngineState.NONE]), True)
            return
        attachments = self.documents.for_send(text)
        if attachments is None:  # one is still being read or does not fit: the text is kept
            return
        self.show_question(self.store.add_question(
            self.current_id, text, attachments, system_prompt=self.settings.system_prompt
        ))  # fmt: skip
        self.documents.sent()
        self.start_answer(self.current_id)  # type: ignore[arg-type]

    def show_question(self, message: Message) -> None:
        """A user message just stored (by send or Summarize): its chat opens, titled."""
        if self.current_id != message.conversation_id:
            self.current_id = message.conversation_id
            self.chat_view.show_conversation(self.current_id, [])
        title = self.store.get_conversation(message.conversation_id).title
        self.setWindowTitle(f"{title} — Nemo Chat")
        self.chat_view.add_message(message)
        self.refresh_sidebar()

    def start_answer(
        self, conversation_id: int, make_job: Callable[[], QtJob] | None = None
    ) -> Answer:
        """The next answer of the chat: a chat reply, unless make_job asks for another (a
        summary). The lifecycle (app.chat.answer) stores it; this shows it."""
        answer = Answer(self.store, conversation_id, self._save_failed, self)
        self.answer = answer
        row = answer.begin()
        if conversation_id == self.current_id and row is not None:
            self.chat_view.add_message(row)
            self.chat_view.set_streaming_note("Thinking…")
        self.context.answer_started(conversation_id)
        self._set_generating(True)
        answer.prefill.connect(lambda done, total: self._on_prefill(answer, done, total))
        # Text means prefill is over: "Reading…" → "Writing…" (the text itself goes below).
        answer.textChanged.connect(lambda _text: self.status.set_state(EngineState.GENERATING))
        answer.trimmed.connect(lambda dropped: self._on_trimmed(answer, dropped))
        answer.ended.connect(lambda message: self._on_ended(answer, message))
        if make_job is None:
            prompt = self._prompt(conversation_id, self.store.messages(conversation_id))
            settings, key = self.settings, chat_key(conversation_id)  # its own KV cache
            make_job = lambda: self.controller.send(prompt, settings, key=key)  # noqa: E731
        job = answer.start(make_job)
        if row is not None:  # the job's text goes straight to its message, while it is shown
            job.text.connect(partial(self.chat_view.append_text, row.id))
            answer.replaced.connect(partial(self.chat_view.stream_text, row.id))
        return answer

    def _prompt(self, conversation_id: int, history: list[Message]) -> list[dict[str, str]]:
        """The chat for the model (app.chat.prompt): documents that fit go in whole."""
        conv = self.store.get_conversation(conversation_id)
        budget = prompt_budget(self.settings.num_ctx, self.settings.max_tokens)
        return build_prompt(conv.system_prompt or self.settings.system_prompt, history, budget)

    def attach_documents(self) -> None:
        """File ▸ Attach Documents… (the composer's + button does the same)."""
        self.documents.choose_files()

    def stop(self) -> None:
        """Immediate: the answer's job Event is set from this thread."""
        if self.answer is not None:
            self.answer.stop()

    def _save_failed(self, message: str) -> None:
        self.status.set_message(message, error=True)

    def _on_prefill(self, answer: Answer, done: int, total: int) -> None:
        self.status.set_prefill(done, total)
        if answer.conversation_id == self.current_id and not answer.text:
            self.chat_view.set_streaming_note(f"Reading {done:,} / {total:,} tokens…")

    def _on_trimmed(self, answer: Answer, dropped: int) -> None:
        self.context.engine_trimmed(answer.conversation_id, dropped)  # divider + status

    def _on_ended(self, answer: Answer, message: Any) -> None:
        if self.answer is answer:
            self.answer = None
        if answer.conversation_id is None:
            return  # abandoned: its chat was deleted
        if answer.conversation_id == self.current_id:
            self.chat_view.finish_streaming(message)
            self.context.refresh()  # the chat as the next message will send it
        if answer.status == MessageStatus.FAILED and answer.error:
            self.status.set_message(answer.error, error=True)
        self._set_generating(False)
        self.refresh_sidebar()

    def _set_generating(self, generating: bool) -> None:
        self.chat_view.set_busy(generating)
        self.menu_actions.stop.setEnabled(generating)  # Esc is free for others otherwise
        self._update_view()

    def _install_stop_keys(self) -> None:
        """Chat ▸ Stop answers to its own key and to Esc from anywhere in this window (not only
        the composer), and only while an answer streams; dialogs and menus keep their Esc."""
        stop = self.menu_actions.stop
        stop.setShortcuts([*stop.shortcuts(), QKeySequence(Qt.Key.Key_Escape)])
        stop.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        stop.setEnabled(self.generating)

    # -- edit and regenerate

    def edit_and_resend(self, message_id: int, text: str) -> None:
        """Replaces a user message and everything after it, then answers again."""
        if self.generating or self.controller.state != EngineState.READY:
            return
        message = self.store.get_message(message_id)
        self.store.edit_message(message_id, text)
        self.store.delete_messages_from(message.conversation_id, message.position + 1)
        self.open_conversation(message.conversation_id)
        self._answer_again(message.conversation_id)

    def regenerate(self, answer_id: int) -> None:
        """Replaces an answer (the last one) with a new one."""
        if self.generating or self.controller.state != EngineState.READY:
            return
        message = self.store.get_message(answer_id)
        self.store.delete_messages_from(message.conversation_id, message.position)
        self.chat_view.remove_messages_from(answer_id)
        self._answer_again(message.conversation_id)

    def _answer_again(self, conversation_id: int) -> None:
        # A chat that ends with "Summarize <name>" and its document is summarized again.
        summary = self.summaries.request_for(conversation_id)
        answer = self.start_answer(conversation_id, summary)
        if summary is not None:
            self.summaries.follow(answer)

    # -- model and settings

    def choose_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose the model folder", self.settings.model_dir or str(Path.home())
        )
        if folder:
            self.load_model(folder)

    def load_model(self, path: str) -> None:
        self._loading_path = path  # remembered if it fails: not retried at the next start
        self.apply_settings(replace(self.settings, model_dir=path, backend="local"), load=False)
        self.welcome.set_status(f"Loading {Path(path).name}…")
        self.controller.load_model(path)

    def make_settings_dialog(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings, self.controller.plan_memory, self)
        if self.downloader is not None:  # models on disk: use, reveal, delete
            dialog.add_models_page(ModelsPage(self.downloader.library, self.settings.model_dir))
        info = self.controller.model_info
        limit = info.max_context if info is not None and not info.local else None
        backend = BackendSettings(self.settings, self.backend.lister, self.backend.error, limit)
        dialog.add_section(backend, first=True)
        apply_api = lambda values: self.api.apply(replace(self.settings, **values))  # noqa: E731
        dialog.add_section(ApiSettings(self.settings, apply_api, self.api.status()))
        dialog.add_section(CacheSettingsView(self.settings, self.caches))
        return dialog

    def open_settings(self) -> None:
        dialog = self.make_settings_dialog()
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog.settings())

    def apply_settings(self, new: ChatSettings, load: bool = True) -> None:
        """Saves and applies settings; num_ctx and KV bits change without reloading weights."""
        old, self.settings = self.settings, new
        save_settings(new, self._qsettings)
        if load:  # this computer's model folder, or a server (app.bridge.backend_control)
            self.backend.apply(old, new, self.load_model)
        self._apply_api(new)
        self.caches.apply(new)  # budget and off switch, at once on the engine thread
        self._show_location(new)
        self.documents.update_budget()
        self.settingsChanged.emit(new)

    def start_model(self, model_dir: str | None = None) -> None:
        """At launch: the folder given, else the server or the folder the settings name."""
        if model_dir is None and self.settings.backend == "server" and self.settings.server_url:
            self.welcome.set_status(f"Connecting to {location_of(self.settings)}…")
            self.backend.connect_server(self.settings)
        elif model_dir:
            self.load_model(model_dir)
        elif self.settings.model_dir:
            failed = self.failed_model()
            if failed is not None and failed[0] == self.settings.model_dir:
                # It failed last time: not again at every start, only when the user picks it.
                name = Path(failed[0]).name or failed[0]
                self.welcome.set_status(
                    f"{name} did not load last time: {failed[1]} Open a model folder to try again.",
                    error=True,
                )
                return
            self.load_model(self.settings.model_dir)

    def failed_model(self) -> tuple[str, str] | None:
        """The model folder that failed to load last time, and why (kept across starts)."""
        path = self._qsettings.value(FAILED_MODEL_KEY, "")
        if not path:
            return None
        return str(path), str(self._qsettings.value(FAILED_MODEL_KEY + "Message", ""))

    def _apply_api(self, settings: ChatSettings) -> None:
        error = self.api.apply(settings)
        if error:
            self.status.set_message(f"Local API: {error}", error=True)

    def _show_location(self, settings: ChatSettings) -> None:
        """Privacy: which machine runs the model, before it is even connected."""
        where = location_of(settings)
        self.status.set_location(runs_on(where))
        self.welcome.set_remote(where if settings.backend == "server" else None)

    def _on_state(self, state: str) -> None:
        if state != EngineState.GENERATING or self.generating:
            self.status.set_state(state)
        self.welcome.set_loading(state == EngineState.LOADING)
        if state in (EngineState.LOADING, EngineState.READY) and self.welcome.status.property(
            "error"
        ):
            self.welcome.set_status("")  # an old failure is stale once a model loads
        self._update_view()

    def _on_load_progress(self, done: int, total: int) -> None:
        self.status.set_load_progress(done, total)
        if total:
            self.welcome.set_status(f"Loading model… {100 * done // total}%")

    def _on_model_loaded(self, info: Any) -> None:
        self.status.set_location(runs_on(info.location), info.path)
        self.status.model_name = info.name or Path(self.settings.model_dir or "model").name
        self.status.set_state(EngineState.READY)
        self.welcome.set_status("")
        self._qsettings.remove(FAILED_MODEL_KEY)
        self._qsettings.remove(FAILED_MODEL_KEY + "Message")
        self._update_view()

    def _on_model_failed(self, message: str) -> None:
        path = getattr(self, "_loading_path", None)
        if path:
            self._qsettings.setValue(FAILED_MODEL_KEY, path)
            self._qsettings.setValue(FAILED_MODEL_KEY + "Message", message)
        self.welcome.set_status(message, error=True)
        self.status.set_message(message, error=True)
        self._update_view()

    def _update_view(self) -> None:
        """Welcome page without a model (unless a past chat is open); the chat otherwise."""
        ready = self.controller.state in (EngineState.READY, EngineState.GENERATING)
        show_chat = ready or self.current_id is not None or self.generating
        self.stack.setCurrentWidget(self._chat_page if show_chat else self.welcome)
        a = self.answer
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
            self, "Export chat", str(Path.home() / export_file_name(title)), "Markdown (*.md)"
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
        if self.answer is not None:
            self.answer.stop(now=True)
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
