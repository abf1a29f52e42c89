"""Settings → Local API in the app (issue 13): the window's own model served to real clients.

A real EngineController with the tiny fast model, the `openai` client on 127.0.0.1, a Store in
tmp_path. The API runs on the window's engine thread: the window and API clients take turns.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from openai import OpenAI

from app.settings import ChatSettings, load_settings
from app.views.settings_api import ApiSettings
from app.window import MainWindow

WAIT_MS = 60_000
pytestmark = pytest.mark.usefixtures("app_style")
SETTINGS = ChatSettings(num_ctx=4096, max_tokens=24, temperature=0.0, top_p=1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def window(qtbot, store, controller, qsettings):
    w = MainWindow(store, controller, SETTINGS, qsettings)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.api.stop()


def api_section(dialog) -> ApiSettings:
    return next(s for s in dialog.sections if isinstance(s, ApiSettings))


def turn_api(qtbot, w: MainWindow, on: bool, port: int) -> tuple[object, bool]:
    """Settings → Local API on/off at `port`, then OK; the dialog and whether it closed."""
    dialog = w.make_settings_dialog()
    qtbot.addWidget(dialog)
    section = api_section(dialog)
    section.enabled.setChecked(on)
    section.port.setValue(port)
    dialog.accept()
    accepted = dialog.result() == dialog.DialogCode.Accepted
    if accepted:
        w.apply_settings(dialog.settings())
    return dialog, accepted


def client(w: MainWindow) -> OpenAI:
    return OpenAI(base_url=w.api.server.base_url, api_key="unused", max_retries=0, timeout=60)


def chat_text(qtbot, w: MainWindow, text: str) -> str:
    """Send `text` in a new chat of the window; the stored answer once it ended."""
    w.new_chat()
    w.composer.set_text(text)
    w.composer.submit()
    qtbot.waitUntil(lambda: not w.generating, timeout=WAIT_MS)
    answer = w.store.messages(w.current_id)[-1]
    assert answer.status == "complete", answer.error
    return answer.content


def test_api_serves_the_loaded_model_and_turns_off(qtbot, window, qsettings):
    port = free_port()
    _, accepted = turn_api(qtbot, window, True, port)
    assert accepted and window.api.serving
    assert window.api.server.base_url == f"http://127.0.0.1:{port}/v1"
    assert window.status.api_label.isVisibleTo(window)
    assert f"127.0.0.1:{port}" in window.status.api_label.text()
    saved = load_settings(qsettings)  # persisted
    assert saved.api_enabled and saved.api_port == port

    api = client(window)
    models = [m.id for m in api.models.list().data]
    assert models == [window.api.server.model_name]
    reply = api.chat.completions.create(
        model=models[0], messages=[{"role": "user", "content": "Hello"}], max_tokens=8,
        temperature=0,
    )  # fmt: skip
    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens > 0

    # The settings page shows where it serves; a copy of the base URL goes to the clipboard.
    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    section = api_section(dialog)
    assert f"127.0.0.1:{port}/v1" in section.status.text()
    section.copy_url()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == f"http://127.0.0.1:{port}/v1"

    _, accepted = turn_api(qtbot, window, False, port)
    assert accepted and not window.api.serving
    assert not port_open(port)  # the port is closed
    assert not window.status.api_label.isVisibleTo(window)
    assert not load_settings(qsettings).api_enabled


def test_window_and_api_take_turns_with_nothing_crossed(qtbot, window):
    turn_api(qtbot, window, True, free_port())
    api = client(window)
    question = [{"role": "user", "content": "Tell me a long story about the sea."}]
    streamed: list[str] = []
    done = threading.Event()

    def stream() -> None:
        try:
            for chunk in api.chat.completions.create(
                model="mistral-nemo", messages=question, max_tokens=160, temperature=0,
                top_p=1.0, stream=True,
            ):  # fmt: skip
                if chunk.choices and chunk.choices[0].delta.content:
                    streamed.append(chunk.choices[0].delta.content)
        finally:
            done.set()

    threading.Thread(target=stream, daemon=True).start()
    qtbot.waitUntil(lambda: bool(streamed), timeout=WAIT_MS)  # the API request is answering
    window.composer.set_text("What is the capital of France?")
    window.composer.submit()
    assert window.generating
    qtbot.waitUntil(lambda: "running" in window.status.api_label.text(), timeout=WAIT_MS)
    if not done.is_set():
        assert window.answer.waiting  # the window's answer waits for its turn
    qtbot.waitUntil(lambda: not window.generating, timeout=WAIT_MS)
    assert done.wait(60)
    cid = window.current_id
    window_answer = window.store.messages(cid)[-1]
    assert window_answer.status == "complete"
    api_text = "".join(streamed)

    # Each got its own text: the same as each prompt answered alone (temperature 0).
    assert chat_text(qtbot, window, "What is the capital of France?") == window_answer.content
    alone = api.chat.completions.create(
        model="mistral-nemo", messages=question, max_tokens=160, temperature=0, top_p=1.0
    )
    assert alone.choices[0].message.content == api_text
    assert window_answer.content not in api_text and api_text not in window_answer.content
    qtbot.waitUntil(lambda: "running" not in window.status.api_label.text(), timeout=WAIT_MS)


def test_a_taken_port_is_shown_in_the_settings_page(qtbot, window, qsettings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        dialog, accepted = turn_api(qtbot, window, True, port)
        assert not accepted  # the dialog stays open, saying why
        section = api_section(dialog)
        assert section.status.isVisibleTo(dialog) or section.status.text()
        assert f"Port {port} is already in use" in section.status.text()
        assert section.status.property("fits") is False  # shown as an error
        assert not window.api.serving
        # Applied at start (saved settings), the same error goes to the status bar.
        window.apply_settings(replace(window.settings, api_enabled=True, api_port=port))
        assert f"Port {port} is already in use" in window.status.state_label.text()
        assert not window.api.serving


def test_a_network_address_needs_a_key(qtbot, window):
    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    section = api_section(dialog)
    section.enabled.setChecked(True)
    section.port.setValue(free_port())
    section.network.setChecked(True)
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted
    assert "requires an API key" in section.status.text()
    assert not window.api.serving


def test_saved_settings_start_the_api_and_a_new_model_is_served(
    qtbot, store, qsettings, fast_model_dir: Path, tmp_path: Path
):
    from app.bridge.engine_controller import EngineController
    from engine.synthetic import preset_config, write_checkpoint

    port = free_port()
    controller = EngineController()  # its own: this test loads another model into it
    w = MainWindow(store, controller, replace(SETTINGS, api_enabled=True, api_port=port), qsettings)
    qtbot.addWidget(w)
    try:
        with qtbot.waitSignal(controller.modelLoaded, timeout=WAIT_MS):
            w.load_model(str(fast_model_dir))
        assert w.api.serving and port_open(port)  # on at start, as saved
        api = client(w)
        config = preset_config(
            "tiny", hidden_size=32, intermediate_size=64, num_attention_heads=4,
            num_key_value_heads=1, head_dim=64, tie_word_embeddings=True,
        )  # fmt: skip
        other = write_checkpoint(tmp_path / "other-model", config, seed=7)
        question = [{"role": "user", "content": "Hi"}]
        with pytest.raises(Exception, match="not found"):
            api.chat.completions.create(model="other-model", messages=question, max_tokens=4)
        with qtbot.waitSignal(controller.modelLoaded, timeout=WAIT_MS):
            w.load_model(str(other))
        reply = api.chat.completions.create(model="other-model", messages=question, max_tokens=4)
        assert reply.choices[0].message.content is not None  # the same API, the new model
    finally:
        w.api.stop()
        assert controller.shutdown()
    assert not port_open(port)
