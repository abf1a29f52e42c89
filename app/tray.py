"""The menu-bar icon (the system tray on Linux/Windows) and the app's life in it.

The icon's menu: Quick Prompt…, Open Nemo Chat, New Chat, Settings…, Quit. Where a tray exists
(QSystemTrayIcon.isSystemTrayAvailable()), closing the main window only hides it and the app
keeps running in the menu bar ("Start in the menu bar" skips showing the window at launch);
where none exists (offscreen/CI, some Linux desktops) closing the window quits as usual.
The quick prompt opens from the menu, from a left click on the icon (Linux/Windows; on macOS a
click opens the menu), from Ctrl+Shift+Space (Cmd+Shift+Space on a Mac) inside the app, and
from the system-wide hotkey where app.hotkey can register one (macOS only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QPointF, QRect, QRectF, Qt
from PySide6.QtGui import (
    QAction,
    QColor,
    QIcon,
    QKeySequence,
    QPainter,
    QPainterPath,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from app.hotkey import IN_APP_SHORTCUT, GlobalHotkey
from app.settings import ChatSettings

if TYPE_CHECKING:  # the panel is built after the window shows (issue 17 #13)
    from app.chat.quick_prompt import QuickPromptPanel


def tray_available() -> bool:
    return QSystemTrayIcon.isSystemTrayAvailable()


def starts_in_menu_bar(settings: ChatSettings, available: bool | None = None) -> bool:
    """ "Start in the menu bar" applies only where there is a menu bar icon to start in."""
    return (tray_available() if available is None else available) and settings.start_in_menu_bar


def menu_bar_icon(size: int = 44) -> QIcon:
    """A speech bubble drawn as a mask: macOS tints it for a light or dark menu bar."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 22  # drawn on a 22-point grid, the menu bar's height
    bubble = QPainterPath()
    bubble.addRoundedRect(QRectF(2 * s, 3 * s, 18 * s, 13 * s), 4 * s, 4 * s)
    tail = QPainterPath()
    tail.moveTo(QPointF(6 * s, 15 * s))
    tail.lineTo(QPointF(5 * s, 20 * s))
    tail.lineTo(QPointF(11 * s, 15 * s))
    tail.closeSubpath()
    p.fillPath(bubble.united(tail), QColor("black"))
    p.end()
    icon = QIcon(pixmap)
    icon.setIsMask(True)
    return icon


class MenuBarApp(QObject):
    """Owns the tray icon, its menu, the quick prompt panel and its shortcuts."""

    def __init__(
        self,
        app: QApplication,
        window: Any,  # app.window.MainWindow
        panel: QuickPromptPanel,
        available: bool | None = None,
    ) -> None:
        super().__init__(window)
        self._app, self.window, self.panel = app, window, panel
        self.available = tray_available() if available is None else available

        self.menu = QMenu()
        self.quick_prompt_action = self._add("Quick Prompt…", self.show_quick_prompt)
        self.quick_prompt_action.setShortcut(QKeySequence(IN_APP_SHORTCUT))  # shown, not bound
        self.menu.addSeparator()
        self.open_action = self._add("Open Nemo Chat", self.show_window)
        self.new_chat_action = self._add("New Chat", self.new_chat)
        self.settings_action = self._add("Settings…", self.open_settings)
        self.menu.addSeparator()
        self.quit_action = self._add("Quit Nemo Chat", self.quit)
        self.tray = QSystemTrayIcon(menu_bar_icon(), self)
        self.tray.setToolTip("Nemo Chat")
        self.tray.setContextMenu(self.menu)
        self.tray.activated.connect(self._on_activated)

        # In any window of the app. Qt matches a shortcut only while its parent is visible: one
        # on the window, one on the panel (there it hides the panel again).
        self.shortcuts = []
        for owner in (window, panel):
            shortcut = QShortcut(QKeySequence(IN_APP_SHORTCUT), owner)
            shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
            shortcut.activated.connect(self.toggle_quick_prompt)
            self.shortcuts.append(shortcut)
        self.hotkey = GlobalHotkey(self)
        self.hotkey.activated.connect(self.toggle_quick_prompt)
        self.apply_settings(window.settings)
        window.settingsChanged.connect(self.apply_settings)

        panel.continueRequested.connect(self.open_conversation)
        panel.conversationStored.connect(lambda _cid: window.refresh_sidebar())
        # The window's own Quit (Cmd/Ctrl+Q) must quit, not just hide the window to the tray.
        quit_menu_item = window.menu_actions.quit
        quit_menu_item.triggered.disconnect()
        quit_menu_item.triggered.connect(self.quit)

        window.keep_in_menu_bar = self.available
        app.setQuitOnLastWindowClosed(not self.available)
        app.installEventFilter(self)  # a quit from outside (macOS Dock, log out): see eventFilter
        if self.available:
            self.tray.show()

    def _add(self, text: str, slot) -> QAction:
        action = self.menu.addAction(text)
        action.triggered.connect(slot)
        return action

    @property
    def starts_hidden(self) -> bool:
        """Whether the window stays hidden at launch (starts_in_menu_bar)."""
        return starts_in_menu_bar(self.window.settings, self.available)

    def apply_settings(self, settings: ChatSettings) -> None:
        """(Re-)registers the system-wide hotkey; a no-op with a logged reason off macOS."""
        if settings.quick_hotkey != self.hotkey.sequence:
            self.hotkey.register(settings.quick_hotkey)

    # -- what the menu items do

    def icon_geometry(self) -> QRect | None:
        rect = self.tray.geometry()  # empty where the platform does not say (or no tray)
        return rect if self.available and not rect.isEmpty() else None

    def show_quick_prompt(self) -> None:
        self.panel.show_panel(self.icon_geometry())

    def toggle_quick_prompt(self) -> None:
        self.panel.toggle(self.icon_geometry())

    def show_window(self) -> None:
        self.window.present()

    def new_chat(self) -> None:
        self.window.present()
        self.window.new_chat()

    def open_settings(self) -> None:
        self.window.present()
        self.window.open_settings()

    def open_conversation(self, conversation_id: int) -> None:
        self.window.present(conversation_id)

    def quit(self) -> None:
        """Really quit: the window closes (stopping and storing a streaming answer), then the app."""
        self.window.keep_in_menu_bar = False
        self.panel.hide()
        self.hotkey.unregister()
        self.tray.hide()
        self.window.close()
        self._app.quit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        # Qt asks every window to close before a system-initiated quit (the Dock's Quit, logging
        # out); a window that only hides would refuse and cancel the quit.
        if event.type() == QEvent.Type.Quit and watched is self._app:
            self.window.keep_in_menu_bar = False
        return False

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:  # a left click (not on macOS)
            self.toggle_quick_prompt()
        elif reason == QSystemTrayIcon.ActivationReason.DoubleClick:
            self.show_window()


def install_menu_bar(app: QApplication, window: Any, controller: Any) -> MenuBarApp:
    """The composition root's one call: the quick prompt panel and the menu-bar icon."""
    from app.chat.quick_prompt import QuickPromptPanel

    panel = QuickPromptPanel(controller, window.store, lambda: window.settings)
    return MenuBarApp(app, window, panel)
