"""What the window's helpers may use: a few of its parts, never the window itself (issue 11 #5).

DocumentAttacher, ContextMeter, SummarizeFlow and DeletionFlow each get a ChatParts, plus the
one or two window actions they call back (AnswerHost, Navigator). Menus, shortcuts and where a
helper's widgets sit stay the window's decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.bridge.engine_controller import EngineController
    from app.bridge.qt_job import QtJob
    from app.chat.answer import Answer
    from app.settings import ChatSettings
    from app.store.store import Message, Store
    from app.views.attachment_chips import AttachmentChips
    from app.views.chat_view import ChatView
    from app.views.composer import Composer
    from app.views.status_bar import ChatStatusBar


@dataclass(frozen=True)
class ChatParts:
    """The engine, the history and the chat page's widgets, with getters for what changes."""

    controller: EngineController
    store: Store
    chat_view: ChatView
    composer: Composer
    chips: AttachmentChips
    status: ChatStatusBar
    settings: Callable[[], ChatSettings]  # the settings now (Settings… replaces them)
    current_id: Callable[[], int | None]  # the open conversation (None: a new chat)
    dialog_parent: QWidget  # file and plan dialogs open over it


class AnswerHost(Protocol):
    """The window's answer slot: one answer at a time, shown where its chat is open."""

    @property
    def generating(self) -> bool: ...

    def show_question(self, message: Message) -> None: ...

    def start_answer(
        self, conversation_id: int, make_job: Callable[[], QtJob] | None = None
    ) -> Answer: ...


class Navigator(Protocol):
    """Moving the window between chats (after a restore)."""

    def refresh_sidebar(self) -> None: ...

    def open_conversation(self, conversation_id: int, message_id: int | None = None) -> None: ...
