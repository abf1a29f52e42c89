"""Settings → "Model runs on" a server, in the app (issue 14): no local model at all.

The "server" is our own engine.serve ApiServer on a second EngineService with the tiny model
(a real OpenAI-compatible peer on 127.0.0.1), or tests/engine/openai_fakes.py for the faults.
Each test has its own EngineController that never loads a local model.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from app.bridge.engine_controller import EngineController
from app.settings import NUM_CTX_STEPS, ChatSettings, load_settings
from app.views.settings_backend import BackendSettings
from app.window import MainWindow
from tests.engine.openai_fakes import MODEL, WORDS, FakeOpenAI

WAIT_MS = 60_000
pytestmark = pytest.mark.usefixtures("app_style")
SETTINGS = ChatSettings(num_ctx=4096, max_tokens=24, temperature=0.0)


@pytest.fixture(scope="module")
def peer(fast_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Another Nemo Chat's `nemo serve`: the tiny model behind the local API."""
    import engine
    from tests.engine.serve_support import serving

    with serving(engine.load(fast_model_dir), tmp_path_factory.mktemp("peer-cache")) as server:
        yield server


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


@pytest.fixture
def bare_controller():
    c = EngineController()  # no model is ever loaded into it
    yield c
    assert c.shutdown()


def server_window(qtbot, store, controller, qsettings, url: str, **more) -> MainWindow:
    settings = replace(SETTINGS, backend="server", server_url=url, **more)
    w = MainWindow(store, controller, settings, qsettings)
    qtbot.addWidget(w)
    w.show()
    return w


def connect(qtbot, w: MainWindow) -> None:
    with qtbot.waitSignal(w.controller.modelLoaded, timeout=WAIT_MS):
        w.start_model()


def ask(qtbot, w: MainWindow, text: str):
    """Send `text`; the stored answer once it ended."""
    w.composer.set_text(text)
    w.composer.submit()
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    return w.store.messages(w.current_id)[-1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_window_chats_with_a_server_and_no_local_model(
    qtbot, store, bare_controller, qsettings, peer
):
    server = peer.base_url.removesuffix("/v1")  # http://127.0.0.1:PORT
    w = server_window(qtbot, store, bare_controller, qsettings, peer.base_url)
    # Before connecting: the welcome page asks for no download, and says where the model runs.
    assert w.stack.currentWidget() is w.welcome
    assert not w.welcome.open_button.isVisibleTo(w)
    assert w.welcome.remote_note.isVisibleTo(w) and server in w.welcome.remote_note.text()
    assert w.status.location_label.text() == f"Model runs on the server at {server}"
    connect(qtbot, w)
    info = bare_controller.model_info
    assert not info.local and info.location == f"the server at {server}"
    assert w.status.location_label.text() == f"Model runs on the server at {server}"
    assert w.stack.currentWidget() is not w.welcome
    answer = ask(qtbot, w, "Hello there")
    assert answer.status == "complete" and answer.content
    assert answer.stats["ttft_s"] > 0 and answer.stats["generated_tokens"] > 0
    assert peer.recent_jobs()  # the peer did the work


def test_settings_pick_a_server_model_bound_num_ctx_and_persist(
    qtbot, store, bare_controller, qsettings, fake
):
    w = MainWindow(store, bare_controller, SETTINGS, qsettings)
    qtbot.addWidget(w)
    dialog = w.make_settings_dialog()
    qtbot.addWidget(dialog)
    section = next(s for s in dialog.sections if isinstance(s, BackendSettings))
    assert "Nothing leaves this computer" in section.privacy.text()
    section.server_radio.setChecked(True)
    section.url_edit.setText(fake.url("ok"))
    section.refresh()  # /v1/models on a helper thread
    qtbot.waitUntil(lambda: section.model_combo.count() > 0, timeout=WAIT_MS)
    assert section.model_combo.currentText() == MODEL
    assert dialog.ctx_slider.maximum() == NUM_CTX_STEPS.index(4096)  # the server's max_model_len
    assert "uses no memory here" in dialog.estimate_label.text() and dialog.ok_button.isEnabled()
    assert f"the server at http://127.0.0.1:{fake.port}" in section.privacy.text()
    assert "sent to it" in section.privacy.text()
    assert not dialog.model_edit.isEnabled()
    dialog.accept()
    with qtbot.waitSignal(bare_controller.modelLoaded, timeout=WAIT_MS):
        w.apply_settings(dialog.settings())
    saved = load_settings(qsettings)
    assert (saved.backend, saved.server_url, saved.server_model) == ("server", fake.url(), MODEL)
    assert saved.num_ctx <= 4096
    answer = ask(qtbot, w, "Hi")
    assert answer.content == "".join(WORDS)
    assert w.status.location_label.text().startswith("Model runs on the server at http://127")


def test_a_wrong_key_or_no_server_shows_its_message_and_keeps_the_question(
    qtbot, store, bare_controller, qsettings, fake
):
    w = server_window(qtbot, store, bare_controller, qsettings, fake.url("401"))
    with qtbot.waitSignal(bare_controller.modelFailed, timeout=WAIT_MS) as failed:
        w.start_model()
    message = failed.args[0]
    assert "HTTP 401" in message and "API key" in message and str(fake.port) in message
    assert message in w.welcome.status.text() and message in w.status.state_label.text()
    w.composer.set_text("my question")
    w.composer.submit()
    assert w.composer.text() == "my question"  # not lost
    dialog = w.make_settings_dialog()  # the settings page says it too
    qtbot.addWidget(dialog)
    section = next(s for s in dialog.sections if isinstance(s, BackendSettings))
    assert "HTTP 401" in section.list_status.text()

    port = closed_port()
    w.apply_settings(replace(w.settings, server_url=f"http://127.0.0.1:{port}"))
    qtbot.waitUntil(lambda: "Can't reach" in w.status.state_label.text(), timeout=WAIT_MS)
    assert f"127.0.0.1:{port}" in w.status.state_label.text()
    section.url_edit.setText(f"http://127.0.0.1:{port}")  # Refresh says it too
    section.refresh()
    qtbot.waitUntil(lambda: "Can't reach" in section.list_status.text(), timeout=WAIT_MS)


def test_a_failing_answer_keeps_the_question_and_says_why(
    qtbot, store, bare_controller, qsettings, fake
):
    w = server_window(qtbot, store, bare_controller, qsettings, fake.url("500"))
    connect(qtbot, w)  # /v1/models works; answers fail
    answer = ask(qtbot, w, "Will this work?")
    messages = store.messages(w.current_id)
    assert messages[0].content == "Will this work?"
    assert answer.status == "failed" and "HTTP 500" in answer.error
    assert "HTTP 500" in w.status.state_label.text()
    assert w.composer.button.isEnabled() or not w.composer.text()


def test_a_stream_cut_mid_answer_keeps_the_text_marked_failed_and_retry_works(
    qtbot, store, bare_controller, qsettings, fake
):
    w = server_window(qtbot, store, bare_controller, qsettings, fake.url("cut3"))
    connect(qtbot, w)
    answer = ask(qtbot, w, "Tell me something")
    assert answer.status == "failed"
    assert answer.content == "".join(WORDS[:3])  # the text so far is kept
    assert "closed the connection mid-answer" in answer.error
    shown = w.chat_view.widgets()[-1]
    assert shown.content == answer.content and "mid-answer" in shown.note.text()
    asked = len([r for r in fake.requests if r[2] is not None])
    w.regenerate(answer.id)  # Retry: the question is sent again
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    assert len([r for r in fake.requests if r[2] is not None]) == asked + 1
    messages = store.messages(w.current_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    again = messages[-1]  # a new answer (SQLite may reuse the row id)
    assert again.created_at > answer.created_at and again.content == "".join(WORDS[:3])
    assert again.status == "failed"
