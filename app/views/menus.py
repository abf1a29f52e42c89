"""The menu bar and its shortcuts: standard keys where Qt has them (Ctrl here is Cmd on a Mac)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

Std = QKeySequence.StandardKey


@dataclass(frozen=True)
class MenuActions:
    new_chat: QAction
    attach: QAction
    open_model: QAction
    export: QAction
    settings: QAction
    quit: QAction
    find: QAction
    stop: QAction
    edit_menu: QMenu


def shortcut(standard: QKeySequence.StandardKey | None, fallback: str) -> QKeySequence:
    # Some standard keys (Preferences) have no binding on Linux/Windows: use the Mac one there.
    seq = QKeySequence(standard) if standard is not None else QKeySequence()
    return seq if not seq.isEmpty() else QKeySequence(fallback)


def _add(window: QMainWindow, menu: QMenu, text: str, standard, fallback: str, slot) -> QAction:
    action = QAction(text, window)
    action.setShortcut(shortcut(standard, fallback))
    action.triggered.connect(slot)
    menu.addAction(action)
    window.addAction(action)  # the shortcut works even where the menu bar is hidden
    return action


def install_menus(window: Any) -> MenuActions:
    """File, Edit and Chat menus wired to the window's slots."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    new_chat = _add(window, file_menu, "New Chat", Std.New, "Ctrl+N", window.new_chat)
    # The standard Open key attaches documents (what a user opens here); the model folder,
    # opened rarely, gets Ctrl/Cmd+Shift+O.
    attach = _add(
        window, file_menu, "Attach Documents…", Std.Open, "Ctrl+O", window.attach_documents
    )
    open_model = _add(
        window, file_menu, "Open Model Folder…", None, "Ctrl+Shift+O", window.choose_model_folder
    )
    export = _add(
        window, file_menu, "Export Chat as Markdown…", None, "Ctrl+Shift+E", window.export_chat
    )
    file_menu.addSeparator()
    settings = _add(window, file_menu, "Settings…", Std.Preferences, "Ctrl+,", window.open_settings)
    settings.setMenuRole(QAction.MenuRole.PreferencesRole)  # the app menu on macOS
    quit_ = _add(window, file_menu, "Quit", Std.Quit, "Ctrl+Q", window.close)
    quit_.setMenuRole(QAction.MenuRole.QuitRole)
    edit_menu = bar.addMenu("&Edit")
    find = _add(window, edit_menu, "Search Chats", Std.Find, "Ctrl+F", window.sidebar.focus_search)
    chat_menu = bar.addMenu("&Chat")
    stop = _add(window, chat_menu, "Stop", None, "Ctrl+.", window.stop)
    return MenuActions(new_chat, attach, open_model, export, settings, quit_, find, stop, edit_menu)


def add_deletion_actions(
    window: QMainWindow, menus: MenuActions, undo: QAction, deleted: QAction
) -> None:
    """Edit ▸ Undo Delete first and Recently Deleted… last; their keys work without the menu."""
    edit = menus.edit_menu
    first = edit.actions()[0]  # Search Chats
    edit.insertAction(first, undo)
    edit.insertSeparator(first)
    edit.addSeparator()
    edit.addAction(deleted)
    window.addActions([undo, deleted])
