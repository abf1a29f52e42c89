"""First run without a terminal: the welcome view downloads the model (progress, cancel, resume,
clear errors), loads it and opens the chat; the settings list the models on disk.

Qt runs offscreen; the Hub is the local imitation in tests/engine/hub_server.py serving the files of
the tiny 4-bit model (without tekken.json, like mlx-community's); the models folder is in tmp_path.
"""

from __future__ import annotations

import shutil
import socket
from collections import namedtuple
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from app.bridge.downloader import Downloader, ModelLibrary
from app.bridge.engine_controller import EngineController
from app.settings import ChatSettings, load_settings
from app.store.store import Store
from app.views.download_panel import DownloadPanel, format_duration, format_part
from app.views.models_page import ModelsPage
from app.window import MainWindow
from tests.engine.hub_server import (
    FakeRepo,
    HubServer,
    isolate_huggingface_hub,
    point_huggingface_hub_at,
)

WAIT_MS = 60_000  # 2 shared cores
pytestmark = pytest.mark.usefixtures("app_style")
REPO = "test-org/tiny-nemo-4bit"
MICRO = "test-org/micro-nemo-bf16"
SCREENS = Path("/tmp/screens")


@pytest.fixture(scope="module")
def q4_files(tiny_q4_dir: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in tiny_q4_dir.iterdir()
        if p.is_file() and p.name != "tekken.json"
    }


@pytest.fixture
def fake_hub(q4_files, monkeypatch):
    isolate_huggingface_hub(monkeypatch)
    with HubServer() as fake:
        fake.add(FakeRepo(REPO, dict(q4_files)))
        point_huggingface_hub_at(fake.url, monkeypatch)
        yield fake


@pytest.fixture
def library(tmp_path: Path) -> ModelLibrary:
    return ModelLibrary(tmp_path / "models")


@pytest.fixture
def make_downloader(library):
    made: list[Downloader] = []

    def make(controller=None, **kw) -> Downloader:
        d = Downloader(controller, library, repo_id=kw.pop("repo_id", REPO), **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        assert d.shutdown(), "a download thread outlived its test"


@pytest.fixture(scope="module")
def controller(qapp):
    c = EngineController()
    yield c
    assert c.shutdown()


@pytest.fixture
def window(qtbot, tmp_path, controller, make_downloader):
    if controller.state != "none":  # a first run: no model (the controller outlives tests)
        controller.unload_model()  # queued after any load still under way
        qtbot.waitUntil(lambda: controller.state == "none", timeout=WAIT_MS)
    store = Store(tmp_path / "history.sqlite3")
    qsettings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(
        store, controller, ChatSettings(), qsettings, downloader=make_downloader(controller)
    )
    qtbot.addWidget(w)
    w.resize(1100, 760)
    w.show()
    yield w
    store.close()


def screenshot(widget, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(SCREENS / name))


def shard_name(files: dict[str, bytes]) -> str:
    return max((n for n in files if n.endswith(".safetensors")), key=lambda n: len(files[n]))


def test_download_then_model_loads_and_chat_opens(qtbot, fake_hub, q4_files, window, library):
    panel = window.download_panel
    assert window.stack.currentWidget() is window.welcome
    assert panel.download_button.text() == "Download Mistral Nemo 12B (6.9 GB)"
    assert panel.folder_button.isVisible() and not window.welcome.open_button.isVisible()
    events = []
    window.downloader.progress.connect(events.append)
    with qtbot.waitSignal(window.controller.modelLoaded, timeout=WAIT_MS):
        panel.download_button.click()

    total = sum(len(b) for b in q4_files.values())
    done = [e.done for e in events]
    assert done == sorted(done) and done[-1] == total and {e.total for e in events} == {total}
    assert window.controller.state == "ready"
    assert window.stack.currentWidget() is window._chat_page
    dest = library.folder_for(REPO)
    assert window.controller.model_info.path == str(dest)
    assert (dest / "tekken.json").is_file()  # the bundled copy was put there
    # The app remembers it: the next start loads the same folder (main.py reads model_dir).
    assert load_settings(window._qsettings).model_dir == str(dest)
    assert not list((dest / ".cache").rglob("*.incomplete")) and panel.downloader.partial() is None
    # Whole on disk (say the settings were lost): the button opens it without asking the Hub.
    requests = len(fake_hub.log)
    panel.refresh()
    assert panel.download_button.text() == "Open the Downloaded Mistral Nemo 12B"
    with qtbot.waitSignal(panel.modelReady) as ready:
        panel.download_button.click()
    assert ready.args == [str(dest)] and len(fake_hub.log) == requests


def test_cancel_keeps_the_bytes_and_resume_finishes(qtbot, fake_hub, q4_files, window, library):
    fake_hub.chunk_delay_s = 0.01  # ~6 MB/s: time to look at it and to cancel midway
    shard = shard_name(q4_files)  # its last byte waits for the cancel, however busy the machine
    fake_hub.stall_at[shard] = len(q4_files[shard]) - 1
    panel, downloader = window.download_panel, window.downloader
    seen = []

    def on_progress(p) -> None:
        seen.append(panel.progress_label.text())  # the panel's slot ran first
        if p.done > 2_000_000 and panel.cancel_button.isEnabled():
            screenshot(window, "download.png")
            panel.cancel_button.click()

    downloader.progress.connect(on_progress)
    with qtbot.waitSignal(downloader.cancelled, timeout=WAIT_MS):
        panel.download_button.click()
    assert not downloader.running
    assert "paused" in panel.message.text().lower() and not panel.progress_box.isVisible()
    assert seen[-1].startswith(format_part(2_000_000, 2_000_000)[:0]) and " of " in seen[-1]
    assert any("MB/s" in text and "left" in text for text in seen), seen
    dest = library.folder_for(REPO)
    parts = list((dest / ".cache").rglob("*.incomplete"))
    assert parts and sum(p.stat().st_size for p in parts) >= 2_000_000 - 2**20
    total = sum(len(b) for b in q4_files.values())
    partial = downloader.partial()
    assert partial.total_bytes == total and 2_000_000 - 2**20 < partial.done_bytes < total
    assert panel.download_button.text().startswith("Resume Download (")
    screenshot(window, "download_paused.png")
    assert format_part(partial.done_bytes, total) in panel.download_button.text()

    # After a restart (a new downloader and panel), the welcome view still offers to resume.
    again = Downloader(None, library, repo_id=REPO)
    assert DownloadPanel(again).download_button.text() == panel.download_button.text()
    again.deleteLater()

    downloader.progress.disconnect(on_progress)
    fake_hub.chunk_delay_s = 0.0
    with qtbot.waitSignal(window.controller.modelLoaded, timeout=WAIT_MS):
        panel.download_button.click()
    assert window.stack.currentWidget() is window._chat_page
    ranges = [g.range for g in fake_hub.data_gets(shard_name(q4_files))]
    assert ranges[0] is None and ranges[-1].startswith("bytes=") and len(ranges) == 2


def test_gated_repo_asks_for_a_token(qtbot, fake_hub, make_downloader, library):
    fake_hub.token = "hf_secret"
    panel = DownloadPanel(make_downloader())
    qtbot.addWidget(panel)
    panel.show()
    with qtbot.waitSignal(panel.downloader.failed, timeout=WAIT_MS) as failed:
        panel.download_button.click()
    assert failed.args[0].kind == "gated"
    assert panel.token_box.isVisible() and "gated" in panel.message.text()
    assert "Traceback" not in panel.message.text() and panel.message.property("error")
    panel.token_edit.setText("hf_secret ")
    with qtbot.waitSignal(panel.downloader.finished, timeout=WAIT_MS):
        panel.retry()
    assert not panel.token_box.isVisible()


@pytest.fixture
def refused_endpoint(monkeypatch) -> str:
    isolate_huggingface_hub(monkeypatch)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_huggingface_hub_at(f"http://127.0.0.1:{port}", monkeypatch)


def test_offline_is_a_sentence(qtbot, refused_endpoint, make_downloader):
    panel = DownloadPanel(make_downloader())
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.downloader.failed, timeout=WAIT_MS) as failed:
        panel.download_button.click()
    assert failed.args[0].kind == "offline"
    assert panel.message.text().startswith("Can't reach 127.0.0.1 — check your connection")
    assert not panel.token_box.isVisibleTo(panel) and panel.download_button.isVisibleTo(panel)


def test_missing_repo_and_full_disk(qtbot, fake_hub, make_downloader, monkeypatch):
    panel = DownloadPanel(make_downloader(repo_id="nobody/nothing"))
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.downloader.failed, timeout=WAIT_MS) as failed:
        panel.download_button.click()
    assert failed.args[0].kind == "not_found"
    assert panel.message.text().startswith("No such model repo: nobody/nothing")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 10**12 - 10**6, 10**6))
    panel = DownloadPanel(make_downloader())
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.downloader.failed, timeout=WAIT_MS) as failed:
        panel.download_button.click()
    assert failed.args[0].kind == "disk"
    assert "free" in panel.message.text() and "only 0.0 GB available" in panel.message.text()


def test_convert_flow_runs_both_phases(qtbot, fake_hub, controller, make_downloader, library):
    """The bf16 original downloads on the download thread, then quantizes on the engine thread."""
    from engine.synthetic import preset_config, write_checkpoint

    src = write_checkpoint(library.root.parent / "src", preset_config("tiny", vocab_size=1024))
    fake_hub.add(FakeRepo(MICRO, {p.name: p.read_bytes() for p in src.iterdir() if p.is_file()}))
    downloader = make_downloader(controller, original_repo=MICRO)
    panel = DownloadPanel(downloader)
    qtbot.addWidget(panel)
    panel.convert_toggle.click()
    assert panel.convert_box.isVisibleTo(panel)
    events = []
    downloader.progress.connect(events.append)
    with qtbot.waitSignal(downloader.finished, timeout=WAIT_MS) as finished:
        panel.convert_button.click()
    assert finished.args[0] == str(downloader.converted_dir(4))
    phases = [e.phase for e in events]
    assert "download" in phases and phases[-1] == "convert"
    assert phases == sorted(phases, key=["download", "convert"].index)
    converts = [e for e in events if e.phase == "convert" and e.total > 1]
    assert [e.done for e in converts] == sorted(e.done for e in converts)
    assert converts[-1].done == converts[-1].total
    names = {m.name: m.quantization for m in library.models()}
    assert names == {MICRO: "bf16", MICRO + "-4bit-local": "4-bit g64"}


def test_models_page_lists_reveals_uses_and_deletes(
    qtbot, tiny_q4_dir, library, window, monkeypatch
):
    folder = library.folder_for(REPO)
    shutil.copytree(tiny_q4_dir, folder)
    in_use = shutil.copytree(tiny_q4_dir, library.folder_for("test-org/in-use"))
    window.settings = ChatSettings(model_dir=str(in_use))
    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    dialog.show()
    page: ModelsPage = dialog.models_page
    rows = {
        page.tree.topLevelItem(i).text(0): [page.tree.topLevelItem(i).text(c) for c in (1, 2, 3)]
        for i in range(page.tree.topLevelItemCount())
    }
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert rows == {
        "test-org/in-use": ["4-bit g64", f"{size / 1e6:.1f} MB", "in use"],
        REPO: ["4-bit g64", f"{size / 1e6:.1f} MB", ""],
    }
    screenshot(dialog, "models.png")

    page.tree.setCurrentItem(page.tree.topLevelItem(0))  # the one in use: not deletable
    assert not page.delete_button.isEnabled() and not page.use_button.isEnabled()
    page.tree.setCurrentItem(page.tree.topLevelItem(1))
    assert page.path_label.text() == str(folder)
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url))
    page.reveal_button.click()
    assert opened == [QUrl.fromLocalFile(str(folder))]

    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Yes
    )
    page.delete_button.click()
    assert asked and str(folder) in asked[0][2]
    assert not folder.exists() and in_use.exists()
    assert page.tree.topLevelItemCount() == 1

    page.tree.setCurrentItem(page.tree.topLevelItem(0))
    dialog.models_page.current = None
    page._update_buttons()
    page.use_button.click()  # "Use this model" picks it and closes the dialog with OK
    assert dialog.result() == dialog.DialogCode.Accepted
    assert dialog.settings().model_dir == str(in_use)


def test_formats():
    assert format_part(2_100_000_000, 6_900_000_000) == "2.1 of 6.9 GB"
    assert format_part(350_000_000, 6_900_000_000) == "350.0 MB of 6.9 GB"
    assert format_duration(200) == "3 min 20 s" and format_duration(4000) == "1 h 06 min"


def test_cancel_during_convert_keeps_the_download(qtbot, fake_hub, controller, make_downloader):
    from engine.synthetic import preset_config, write_checkpoint

    root = make_downloader().library.root
    src = write_checkpoint(root.parent / "src", preset_config("tiny", vocab_size=1024))
    fake_hub.add(FakeRepo(MICRO, {p.name: p.read_bytes() for p in src.iterdir() if p.is_file()}))
    panel = DownloadPanel(make_downloader(controller, original_repo=MICRO))
    qtbot.addWidget(panel)

    def on_progress(p) -> None:
        if p.phase == "convert" and p.done > 0 and panel.cancel_button.isEnabled():
            panel.cancel_button.click()  # the same Cancel stops the engine thread's work

    panel.downloader.progress.connect(on_progress)
    panel.show_convert()
    with qtbot.waitSignal(panel.downloader.cancelled, timeout=WAIT_MS):
        panel.convert_button.click()
    assert panel.message.text().startswith("Conversion cancelled; the download is complete")
    assert not panel.downloader.converted_dir(4).exists()
    assert panel.downloader.partial(convert=True) is None  # whole: nothing to resume
    assert panel.convert_box.isVisibleTo(panel) and not panel.downloader.running
