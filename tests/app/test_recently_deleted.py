"""Undoable deleting in the window: the Undo notice, Ctrl/Cmd+Z, Recently Deleted, start-up work.

No model is needed: an EngineController that never loads one. Screenshots of the dialog land in
/tmp/screens/ for a person to look at.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication

from app.chat import deletions
from app.settings import ChatSettings
from app.store import backup
from app.store.store import DELETED_KEEP_DAYS, Store
from app.views.recently_deleted import days_left_text, deleted_when
from app.views.theme import dark_palette
from app.window import MainWindow

WAIT_MS = 30_000
SCREENS = Path("/tmp/screens")
pytestmark = pytest.mark.usefixtures("app_style")


@pytest.fixture(scope="module")
def idle_controller(qapp):
    from app.bridge.engine_controller import EngineController

    c = EngineController()
    yield c
    assert c.shutdown()


@pytest.fixture
def make_window(qtbot, tmp_path, idle_controller):
    def make(store: Store) -> MainWindow:
        qsettings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        w = MainWindow(store, idle_controller, ChatSettings(), qsettings)
        qtbot.addWidget(w)
        w.resize(1000, 700)
        w.show()
        w.activateWindow()
        qtbot.waitExposed(w)
        return w

    return make


@pytest.fixture
def window(make_window, store):
    return make_window(store)


def listed_ids(w: MainWindow) -> list[int]:
    return [w.sidebar.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(w.sidebar.list.count())]  # fmt: skip


def delete_with_the_key(qtbot, w: MainWindow, conversation_id: int) -> None:
    w.open_conversation(conversation_id)
    w.sidebar.list.setFocus()
    qtbot.keyClick(w.sidebar.list, Qt.Key.Key_Delete)  # no question asked: it is undoable


def press_undo(qtbot, widget) -> None:
    seq = QKeySequence(QKeySequence.StandardKey.Undo)[0]
    qtbot.keyClick(widget, seq.key(), seq.keyboardModifiers())


def test_delete_then_the_notice_undo_button_restores_and_reopens(qtbot, store, window):
    a = store.create_conversation("Alpha").id
    b = store.create_conversation("Beta").id
    store.add_message(b, "user", "hello")
    window.refresh_sidebar()
    assert not window.deletions.undo_action.isEnabled()
    assert not window.sidebar.deleted_button.isVisibleTo(window)
    [edit] = [a.menu() for a in window.menuBar().actions() if a.text() == "&Edit"]
    flow = window.deletions
    assert {flow.undo_action, flow.recently_deleted_action} <= set(edit.actions())

    delete_with_the_key(qtbot, window, b)
    assert listed_ids(window) == [a]
    assert window.current_id is None and window.chat_view.widgets() == []
    notice = window.deletions.notice
    assert notice.isVisibleTo(window) and "Beta" in notice.label.text()
    assert window.deletions.undo_action.isEnabled()
    assert window.sidebar.deleted_button.isVisibleTo(window)
    assert window.sidebar.deleted_button.text() == "Recently Deleted (1)"

    qtbot.mouseClick(notice.button, Qt.MouseButton.LeftButton)
    assert listed_ids(window) == [b, a]
    assert window.current_id == b
    assert [m.content for m in window.chat_view.widgets()] == ["hello"]
    assert not notice.isVisibleTo(window)
    assert not window.deletions.undo_action.isEnabled()
    assert not window.sidebar.deleted_button.isVisibleTo(window)
    assert store.list_deleted() == []


def test_ctrl_z_undoes_the_latest_deletions_in_turn(qtbot, store, window):
    a = store.create_conversation("Alpha").id
    b = store.create_conversation("Beta").id
    c = store.create_conversation("Gamma").id
    window.refresh_sidebar()
    delete_with_the_key(qtbot, window, a)
    delete_with_the_key(qtbot, window, c)
    assert listed_ids(window) == [b]
    window.sidebar.list.setFocus()
    press_undo(qtbot, window.sidebar.list)
    assert listed_ids(window) == [c, b]
    window.sidebar.list.setFocus()
    press_undo(qtbot, window.sidebar.list)
    assert listed_ids(window) == [c, b, a]
    assert not window.deletions.undo_action.isEnabled()
    press_undo(qtbot, window.sidebar.list)  # nothing left to undo: harmless
    assert listed_ids(window) == [c, b, a]


def test_ctrl_z_in_a_text_field_undoes_typing_not_the_deletion(qtbot, store, window):
    a = store.create_conversation("Alpha").id
    window.refresh_sidebar()
    delete_with_the_key(qtbot, window, a)
    edit = window.composer.edit
    edit.setFocus()
    qtbot.keyClicks(edit, "draft")
    assert edit.toPlainText() == "draft"
    press_undo(qtbot, edit)
    assert edit.toPlainText() == ""  # the composer's own undo
    box = window.sidebar.search_box
    box.setFocus()
    qtbot.keyClicks(box, "abc")
    press_undo(qtbot, box)
    assert box.text() == ""
    timer = window.sidebar._search_timer  # let the typed search run while the store is open
    qtbot.waitUntil(lambda: not timer.isActive(), timeout=WAIT_MS)
    assert [c.id for c in store.list_deleted()] == [a]  # still deleted
    assert window.deletions.undo_action.isEnabled()


def test_recently_deleted_lists_restores_and_deletes_now(qtbot, store, window, monkeypatch):
    ids = {t: store.create_conversation(t).id for t in ("One", "Two", "Three", "Kept")}
    for title in ("One", "Two", "Three"):
        store.add_message(ids[title], "user", f"text of {title}")
    window.refresh_sidebar()
    for title in ("One", "Two", "Three"):
        delete_with_the_key(qtbot, window, ids[title])
    purged: list[int] = []
    store.on_purged(purged.append)

    window.sidebar.deleted_button.click()
    dialog = window.deletions.dialog
    qtbot.waitExposed(dialog)
    assert dialog.titles() == ["Three", "Two", "One"]  # most recently deleted first
    row = dialog.list.itemWidget(dialog.list.item(0)).text()
    assert "Deleted today" in row and f"{DELETED_KEEP_DAYS} days left" in row
    screenshot(dialog, "recently_deleted_light.png")

    dialog.list.setCurrentRow(1)  # Two
    qtbot.mouseClick(dialog.restore_button, Qt.MouseButton.LeftButton)
    assert dialog.titles() == ["Three", "One"]
    assert window.current_id == ids["Two"] and ids["Two"] in listed_ids(window)
    assert window.sidebar.deleted_button.text() == "Recently Deleted (2)"

    asked = []
    monkeypatch.setattr(dialog, "confirm_purge", lambda n: asked.append(n) or False)
    dialog.list.selectAll()
    qtbot.mouseClick(dialog.purge_button, Qt.MouseButton.LeftButton)
    assert asked == [2] and dialog.titles() == ["Three", "One"]  # cancelled: nothing happens

    monkeypatch.setattr(dialog, "confirm_purge", lambda n: True)
    qtbot.mouseClick(dialog.purge_button, Qt.MouseButton.LeftButton)
    assert sorted(purged) == sorted([ids["One"], ids["Three"]])
    assert store.list_deleted() == [] and store.messages(ids["One"]) == []
    assert dialog.titles() == [] and dialog.empty.isVisibleTo(dialog)
    assert not dialog.restore_button.isEnabled() and not dialog.purge_button.isEnabled()
    assert not window.deletions.undo_action.isEnabled()  # purged chats cannot come back
    assert not window.sidebar.deleted_button.isVisibleTo(window)


def test_startup_purges_expired_deletions_and_backs_up(qtbot, tmp_path, make_window, monkeypatch):
    path = tmp_path / "history.sqlite3"
    store = Store(path)
    old = store.create_conversation("Long gone").id
    recent = store.create_conversation("Recent").id
    for cid in (old, recent):
        store.delete_conversation(cid)
    store._db.execute(
        "UPDATE conversations SET deleted_at = ? WHERE id = ?",
        ((datetime.now(timezone.utc) - timedelta(days=DELETED_KEEP_DAYS + 1)).isoformat(), old),
    )
    purged: list[int] = []
    store.on_purged(purged.append)
    monkeypatch.setattr(deletions, "FIRST_BACKUP_MS", 0)
    try:
        w = make_window(store)
        qtbot.waitUntil(lambda: purged == [old], timeout=WAIT_MS)
        assert [c.id for c in store.list_deleted()] == [recent]
        qtbot.waitUntil(lambda: len(backup.list_backups(path)) == 1, timeout=WAIT_MS)
        assert w.sidebar.deleted_button.text() == "Recently Deleted (1)"
    finally:
        store.close()


def test_row_texts():
    now = datetime(2025, 3, 10, 12, tzinfo=timezone.utc)
    assert deleted_when(now - timedelta(minutes=5), now) == "Deleted today"
    assert deleted_when(now - timedelta(days=3), now) == "Deleted 3 days ago"
    assert days_left_text(1) == "1 day left" and days_left_text(12) == "12 days left"
    assert "next start" in days_left_text(0)


def test_dark_dialog_screenshot(qtbot, store, window):
    app = QApplication.instance()
    light = app.palette()
    for title in ("Holiday plans", "A rather long title about quarterly budget planning"):
        cid = store.create_conversation(title).id
        store.delete_conversation(cid)
    app.setPalette(dark_palette())
    try:
        dialog = window.deletions.open_recently_deleted()
        qtbot.waitExposed(dialog)
        assert len(dialog.titles()) == 2
        screenshot(dialog, "recently_deleted_dark.png")
    finally:
        app.setPalette(light)


def screenshot(widget, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(SCREENS / name))
