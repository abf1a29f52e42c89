"""The menu-bar quick prompt end to end: tray menu, panel, waiting for the engine, hotkeys.

Real EngineController + the fast tiny model; Qt offscreen, where no system tray exists, so
the tray's presence is monkeypatched where a test needs it. Screenshot: /tmp/screens/.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from app.bridge.engine_controller import EngineController
from app.chat.quick_prompt import QUICK_KEY, QuickPromptPanel, panel_position
from app.hotkey import (
    CMD_KEY,
    CONTROL_KEY,
    OPTION_KEY,
    SHIFT_KEY,
    UNAVAILABLE_NOTE,
    GlobalHotkey,
    carbon_hotkey,
)
from app.settings import ChatSettings, load_settings, save_settings
from app.store.store import Store
from app.tray import MenuBarApp
from app.views.settings_dialog import SettingsDialog
from app.window import MainWindow
from tests.app.conftest import wait_end, wait_text

WAIT_MS = 60_000
pytestmark = pytest.mark.usefixtures("app_style")
SCREENS = Path("/tmp/screens")
FAST = ChatSettings(num_ctx=4096, max_tokens=24, temperature=1.0, quick_max_tokens=24)
MAIN_LONGER = replace(FAST, max_tokens=120)  # a main-window answer that runs ~1-2 s


@pytest.fixture
def window(qtbot, store, controller, qsettings) -> MainWindow:
    w = MainWindow(store, controller, FAST, qsettings)
    qtbot.addWidget(w)
    w.resize(900, 640)
    w.show()
    return w


@pytest.fixture
def quit_on_close(qapp):
    """MenuBarApp sets the app-wide quitOnLastWindowClosed; put it back after the test."""
    before = qapp.quitOnLastWindowClosed()
    yield
    qapp.setQuitOnLastWindowClosed(before)


@pytest.fixture
def menu_bar(qtbot, qapp, window, quit_on_close) -> MenuBarApp:
    panel = QuickPromptPanel(window.controller, window.store, lambda: window.settings)
    qtbot.addWidget(panel)
    return MenuBarApp(qapp, window, panel, available=False)


@pytest.fixture
def panel(qtbot, window) -> QuickPromptPanel:
    p = QuickPromptPanel(window.controller, window.store, lambda: window.settings)
    qtbot.addWidget(p)
    return p


def ask(qtbot, panel: QuickPromptPanel, text: str) -> None:
    """Types a question, presses Enter, returns when the panel's answer has finished."""
    panel.show_panel()
    panel.input.setText(text)
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: panel.status in ("complete", "stopped", "failed"), timeout=WAIT_MS)


def stored(store: Store, cid: int) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in store.messages(cid)]


def shown(w: MainWindow) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in w.chat_view.widgets()]


# --- pure pieces


def test_panel_position_under_the_icon_or_top_right():
    screen = QRect(0, 25, 1440, 875)  # a Mac's available geometry: below a 25 px menu bar
    size = QSize(480, 200)
    assert panel_position(size, screen) == QPoint(1440 - 8 - 480, 25 + 8)  # no icon geometry
    icon = QRect(1200, 0, 22, 24)
    pos = panel_position(size, screen, icon)
    assert pos.y() == 25 + 8  # under the menu bar (the icon's bottom is above the screen's top)
    assert pos.x() == 1440 - 8 - 480  # centring would overflow: clamped to the right edge
    middle = QRect(600, 0, 22, 24)
    assert panel_position(size, screen, middle).x() == middle.center().x() - 240
    low_icon = QRect(1800, 1044, 24, 36)  # a Linux panel at the bottom: above the icon
    assert panel_position(size, QRect(0, 0, 1920, 1040), low_icon).y() == 1040 - 8 - 200
    high = panel_position(size, QRect(0, 0, 1920, 1040), QRect(900, 300, 24, 24))
    assert high.y() == 300 + 24 + 8  # an icon inside the screen: just under it


def test_carbon_hotkey_codes_and_linux_fallback():
    # Qt's Alt is Option, Ctrl is Command, Meta is Control on a Mac; kVK_Space = 0x31.
    assert carbon_hotkey("Alt+Space") == (0x31, OPTION_KEY)
    assert carbon_hotkey("Ctrl+Shift+K") == (0x28, CMD_KEY | SHIFT_KEY)
    assert carbon_hotkey("Meta+Alt+F5") == (0x60, CONTROL_KEY | OPTION_KEY)
    for bad in ("Space", "Alt+Space, Ctrl+K", "", "Alt+Home"):
        with pytest.raises(ValueError):
            carbon_hotkey(bad)
    linux = GlobalHotkey(platform="linux")
    assert not linux.supported and not linux.register("Alt+Space")
    assert linux.error == UNAVAILABLE_NOTE and linux.sequence == ""
    # The macOS path imports and fails cleanly where Carbon is missing (here).
    mac = GlobalHotkey(platform="darwin")
    assert mac.supported and not mac.register("Alt+Space") and "Carbon" in mac.error


def test_quick_settings_round_trip_and_dialog_group(qtbot, qsettings):
    s = replace(FAST, quick_max_tokens=300, quick_history=True, start_in_menu_bar=True)
    save_settings(replace(s, quick_hotkey="Ctrl+Alt+K"), qsettings)
    back = load_settings(qsettings)  # an INI file: every value comes back as a string
    assert (back.quick_max_tokens, back.quick_history, back.start_in_menu_bar) == (300, True, True)
    assert back.quick_hotkey == "Ctrl+Alt+K"
    dialog = SettingsDialog(back, None)
    qtbot.addWidget(dialog)
    group = dialog.quick_prompt
    assert not group.hotkey.isEnabled()  # Linux: no system-wide shortcut, and it says so
    assert UNAVAILABLE_NOTE in group.hotkey_note.text()
    group.history.setChecked(False)
    group.max_tokens.setValue(200)
    result = dialog.settings()
    assert result.quick_history is False and result.quick_max_tokens == 200
    assert result.quick_hotkey == "Ctrl+Alt+K" and result.num_ctx == back.num_ctx


# --- the tray menu


def test_tray_menu_actions_do_what_they_say(qtbot, qapp, window, store, menu_bar, monkeypatch):
    texts = [a.text() for a in menu_bar.menu.actions() if not a.isSeparator()]
    assert texts == ["Quick Prompt…", "Open Nemo Chat", "New Chat", "Settings…", "Quit Nemo Chat"]
    assert menu_bar.tray.contextMenu() is menu_bar.menu

    menu_bar.quick_prompt_action.trigger()
    assert menu_bar.panel.isVisible()
    qtbot.waitUntil(menu_bar.panel.input.hasFocus, timeout=WAIT_MS)  # ready to type
    menu_bar.panel.hide()

    window.hide()
    menu_bar.open_action.trigger()
    assert window.isVisible()

    cid = store.create_conversation("Old chat").id
    store.add_message(cid, "user", "An old question")
    window.open_conversation(cid)
    window.hide()
    menu_bar.new_chat_action.trigger()
    assert window.isVisible() and window.current_id is None and shown(window) == []

    seen = []

    def close_dialog():
        dialog = QApplication.activeModalWidget()
        seen.append(type(dialog))
        dialog.reject()

    QTimer.singleShot(200, close_dialog)
    menu_bar.settings_action.trigger()  # modal: returns once close_dialog has run
    assert seen == [SettingsDialog]

    quits = []
    monkeypatch.setattr(qapp, "quit", lambda: quits.append(True))
    window.keep_in_menu_bar = True
    menu_bar.quit_action.trigger()
    assert quits == [True] and not window.isVisible() and not window.keep_in_menu_bar


def test_app_wide_shortcut_and_the_window_quit_item(qtbot, qapp, window, menu_bar, monkeypatch):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)
    mods = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(window, Qt.Key.Key_Space, mods)
    panel = menu_bar.panel
    assert panel.isVisible()
    qtbot.waitUntil(panel.isActiveWindow, timeout=WAIT_MS)
    window.hide()  # the panel alone: the same keys close it again
    qtbot.keyClick(panel.input, Qt.Key.Key_Space, mods)
    assert not panel.isVisible()
    window.show()
    quits = []
    monkeypatch.setattr(qapp, "quit", lambda: quits.append(True))
    window.keep_in_menu_bar = True
    window.menu_actions.quit.trigger()  # Cmd/Ctrl+Q quits; it does not just hide to the tray
    assert quits == [True] and not window.isVisible()


def test_closing_the_window_keeps_the_app_in_the_tray(
    qtbot, qapp, window, quit_on_close, monkeypatch
):
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    panel = QuickPromptPanel(window.controller, window.store, lambda: window.settings)
    qtbot.addWidget(panel)
    bar = MenuBarApp(qapp, window, panel)
    assert bar.available and not qapp.quitOnLastWindowClosed()
    assert not window.close()  # refused: hidden instead
    assert window.isHidden()
    bar.open_action.trigger()
    assert window.isVisible()
    bar.eventFilter(qapp, QEvent(QEvent.Type.Quit))  # the Dock's Quit: windows really close
    assert window.close() and not window.keep_in_menu_bar
    window.settings = replace(window.settings, start_in_menu_bar=True)
    assert bar.starts_hidden


def test_without_a_tray_closing_the_window_quits(qtbot, qapp, window, quit_on_close, monkeypatch):
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: False))
    panel = QuickPromptPanel(window.controller, window.store, lambda: window.settings)
    qtbot.addWidget(panel)
    bar = MenuBarApp(qapp, window, panel)
    assert not bar.available and qapp.quitOnLastWindowClosed()
    window.settings = replace(window.settings, start_in_menu_bar=True)
    assert not bar.starts_hidden  # nowhere to start in: the window shows
    assert window.close()  # accepted: the last window closing ends the app as usual


# --- the panel


def test_panel_streams_a_markdown_answer_and_stores_nothing(qtbot, panel, window, store, jobs):
    ask(qtbot, panel, "What is a quick prompt?")
    (log,) = jobs.all  # one job, the panel's
    assert panel.status == "complete" and not panel.busy
    assert panel.text == log.text and panel.text
    stats = log.of("finished")[0][0]
    assert stats.generated_tokens <= FAST.quick_max_tokens  # the quick cap applies
    assert panel.answer_view.markdown == panel.text and panel.answer_view.toPlainText().strip()
    assert f"{stats.generated_tokens:,} tokens" in panel.stats_label.text()
    assert panel.copy_button.isVisible() and panel.continue_button.isVisible()
    panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == panel.text
    assert store.list_conversations() == []  # quick history is off: nothing stored
    assert window.current_id is None and shown(window) == []  # nothing leaked into the chat


def test_panel_answer_renders_markdown(qtbot, panel):
    panel.show_panel()
    panel.render_answer("Use **bold** and `code`:\n\n- one\n- two", follow=True)
    html = panel.answer_view.toHtml()
    text = panel.answer_view.toPlainText()
    assert "font-weight:700" in html.replace(" ", "") and text.count("\n") >= 2


def test_esc_and_clicking_away_hide_the_panel(qtbot, panel, window):
    panel.show_panel()
    qtbot.waitExposed(panel)
    qtbot.keyClick(panel.input, Qt.Key.Key_Escape)
    assert not panel.isVisible()

    panel.show_panel()
    qtbot.waitUntil(panel.isActiveWindow, timeout=WAIT_MS)
    window.activateWindow()  # the user clicks another window
    qtbot.waitUntil(lambda: not panel.isVisible(), timeout=WAIT_MS)

    panel.show_panel()  # and a deactivation the platform sends directly
    QApplication.sendEvent(panel, QEvent(QEvent.Type.WindowDeactivate))
    window.activateWindow()
    qtbot.waitUntil(lambda: not panel.isVisible(), timeout=WAIT_MS)


def test_use_clipboard_sends_it_as_context(qtbot, panel, window, listen_sent):
    QGuiApplication.clipboard().setText("x" * 1234)
    panel.show_panel()
    panel.clipboard_button.click()
    assert panel.chip.text() == "Using clipboard: 1,234 chars" and panel.chip_row.isVisible()
    ask(qtbot, panel, "Summarize this")
    messages, kwargs = listen_sent[-1]
    assert kwargs["key"] == QUICK_KEY and messages[-1]["content"].startswith("Summarize this")
    assert "x" * 1234 in messages[-1]["content"]
    assert panel.chip_row.isVisible()  # still attached, as its chip says, until removed
    panel.chip_clear.click()
    assert panel.clipboard == "" and not panel.chip_row.isVisible()


@pytest.fixture
def listen_sent(controller, monkeypatch):
    """Records (messages, keyword arguments) of every controller.send()."""
    calls = []
    original = EngineController.send

    def recording(self, messages, settings, **kwargs):
        calls.append(([dict(m) for m in messages], kwargs))
        return original(self, messages, settings, **kwargs)

    monkeypatch.setattr(EngineController, "send", recording)
    return calls


def test_continue_in_nemo_chat_stores_both_messages_and_opens_them(qtbot, menu_bar, window, store):
    panel = menu_bar.panel
    ask(qtbot, panel, "Continue this in the main window")
    answer, stats = panel.text, panel.stats
    window.hide()
    panel.continue_button.click()
    (conv,) = store.list_conversations()
    messages = store.messages(conv.id)
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert messages[0].content == "Continue this in the main window"
    assert messages[1].content == answer and messages[1].stats["generated_tokens"] == (
        stats.generated_tokens
    )
    assert not panel.isVisible() and window.isVisible() and window.current_id == conv.id
    assert shown(window) == stored(store, conv.id)
    assert window.sidebar.list.count() == 1


def test_quick_history_stores_each_prompt(qtbot, panel, window, store):
    window.settings = replace(FAST, quick_history=True)
    ask(qtbot, panel, "Remember this quick one")
    (conv,) = store.list_conversations()
    assert conv.title == "Quick: Remember this quick one"
    assert stored(store, conv.id) == [
        ("user", "Remember this quick one"),
        ("assistant", panel.text),
    ]
    panel.continue_button.click()  # already stored: opens it, stores nothing twice
    assert len(store.list_conversations()) == 1


def test_quick_prompt_waits_for_the_main_windows_answer(qtbot, window, panel, store, jobs):
    window.settings = MAIN_LONGER
    window.composer.set_text("A longer answer in the main window")
    window.composer.submit()
    main = wait_text(qtbot, jobs)
    assert window.controller.busy
    panel.show_panel()
    panel.input.setText("And a quick question meanwhile")
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    assert panel.status == "waiting" and "Waiting for the other answer" in panel.note.text()
    SCREENS.mkdir(parents=True, exist_ok=True)
    panel.grab().save(str(SCREENS / "quick_prompt_waiting.png"))
    assert panel.stop_button.text() == "Cancel"  # gives up waiting; the other answer goes on
    assert main.job.running and not main.ended  # not cancelled
    qtbot.waitUntil(lambda: panel.status == "complete", timeout=WAIT_MS)
    assert jobs.last.of("started") and main.ended and not main.job.cancelled
    cid = window.current_id
    answer = store.messages(cid)[-1]
    assert answer.status == "complete" and answer.stats["finish_reason"] != "cancelled"
    assert shown(window) == stored(store, cid)  # none of the panel's text in the chat
    assert panel.text and panel.text not in answer.content


def test_stop_it_stops_the_other_answer_then_runs(qtbot, window, panel, store, jobs):
    window.settings = replace(FAST, max_tokens=4000)
    window.composer.set_text("A very long answer")
    window.composer.submit()
    wait_text(qtbot, jobs)
    panel.show_panel()
    panel.input.setText("Quick, please")
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    assert panel.status == "waiting"
    panel.note.linkActivated.emit("stop")  # the "Stop it" link
    qtbot.waitUntil(lambda: panel.status == "complete", timeout=WAIT_MS)
    assert store.messages(window.current_id)[-1].status == "stopped"  # kept, as stopped
    assert not window.generating and panel.text


def test_screenshot_mid_answer(qtbot, panel, window, jobs):
    window.settings = replace(FAST, quick_max_tokens=4000)
    QGuiApplication.clipboard().setText("def f(x):\n    return x * 2\n")
    panel.show_panel()
    panel.clipboard_button.click()
    panel.input.setText("What does this function do?")
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    log = wait_text(qtbot, jobs)
    qtbot.wait(700)
    assert panel.status == "streaming" and panel.stop_button.isVisible()
    SCREENS.mkdir(parents=True, exist_ok=True)
    panel.grab().save(str(SCREENS / "quick_prompt.png"))
    panel.stop_button.click()
    wait_end(qtbot, log)
    assert panel.status == "stopped" and "stopped" in panel.stats_label.text()
    assert panel.continue_button.isVisible() and panel.copy_button.isVisible()
    qtbot.wait(50)
    panel.grab().save(str(SCREENS / "quick_prompt_done.png"))


def test_cancel_while_waiting_leaves_the_other_answer_alone(qtbot, window, panel, store, jobs):
    window.settings = MAIN_LONGER
    window.composer.set_text("The main answer")
    window.composer.submit()
    main = wait_text(qtbot, jobs)
    panel.show_panel()
    panel.input.setText("Never mind")
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    quick = jobs.last
    panel.stop_button.click()
    assert panel.status == "stopped" and not panel.busy  # at once, not after the other answer
    wait_end(qtbot, main)
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT_MS)
    assert store.messages(window.current_id)[-1].status == "complete"
    assert panel.status == "stopped" and panel.text == ""  # it never started
    assert not quick.of("started") and not quick.of("text")


def test_a_load_that_supersedes_ours_ends_the_panels_answer(
    qtbot, panel, controller, jobs, fast_model_dir
):
    panel.show_panel()
    panel.input.setText("Something long")
    panel._settings = lambda: replace(FAST, quick_max_tokens=4000)
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    log = wait_text(qtbot, jobs)
    with qtbot.waitSignal(controller.modelLoaded, timeout=WAIT_MS):
        controller.load_model(str(fast_model_dir))  # stops ours: a superseded job
    assert log.job.cancelled and len(log.of("finished")) == 1
    assert panel.status == "stopped" and "another answer" in panel.note.text()
    assert not panel.busy


def test_a_stopped_quick_answer_is_stored_like_a_chats(qtbot, panel, window, store, jobs):
    """One lifecycle (app.chat.answer): with quick history on, a stopped answer is stored as
    stopped, with the text so far and its stats, exactly as the window stores one."""
    window.settings = replace(FAST, quick_history=True, quick_max_tokens=4000)
    panel.show_panel()
    panel.input.setText("A long quick answer")
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    (conv,) = store.list_conversations()
    assert [(m.role, m.status) for m in store.messages(conv.id)] == [
        ("user", "complete"), ("assistant", "streaming"),
    ]  # fmt: skip
    log = wait_text(qtbot, jobs)
    panel.stop_button.click()
    wait_end(qtbot, log)
    user, answer = store.messages(conv.id)
    assert answer.status == "stopped" and answer.content == panel.text == log.text
    assert answer.stats["finish_reason"] == "cancelled" and answer.stats["generated_tokens"] > 0

    window.settings = replace(FAST, max_tokens=4000)  # and the same in the window
    window.composer.set_text("A long chat answer")
    window.composer.submit()
    log = wait_text(qtbot, jobs)
    window.stop()
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT_MS)
    chat_answer = store.messages(window.current_id)[-1]
    assert chat_answer.status == answer.status and chat_answer.content == log.text
    assert set(chat_answer.stats) == set(answer.stats)
