"""app.main at launch: the window does not wait for MLX/mlx-lm/transformers; one app per history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 120  # generous: 2 shared cores


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return dict(
        os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"), **extra,
    )  # fmt: skip


# Seconds to import, or only needed later: the model stack, the document readers, Markdown, and
# the quick prompt (built with the tray once the window is on screen).
NOT_BEFORE_THE_WINDOW = (
    "mlx", "mlx.core", "mlx_lm", "transformers", "engine.runtime", "engine.cache_store",
    "engine.docs.extract", "engine.docs.summarize_plan", "app.chat.quick_prompt",
    "markdown_it", "pygments",
)  # fmt: skip
# app.main up to its "window" moment (the window shown, the event loop running), then quit.
AT_THE_WINDOW = f"""
import sys
import app.main
from PySide6.QtWidgets import QApplication

def report(event):
    if event == "window":
        print("loaded:", sorted(m for m in {NOT_BEFORE_THE_WINDOW!r} if m in sys.modules))
        QApplication.quit()

app.main.report = report
sys.exit(app.main.main(sys.argv[1:]))
"""


def test_the_window_shows_before_the_model_stack_loads(tmp_path):
    history = str(tmp_path / "history.db")
    out = subprocess.run([sys.executable, "-c", AT_THE_WINDOW, "--history", history], cwd=ROOT,
                         env=_env(tmp_path), capture_output=True, text=True,
                         timeout=DEADLINE_S)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "loaded: []" in out.stdout.splitlines()  # they load on the engine thread or on use


def test_the_plain_cache_settings_are_the_stores():
    import engine.cache_settings as plain
    import engine.cache_store as store

    assert store.CacheSettings is plain.CacheSettings and store.CacheUsage is plain.CacheUsage
    assert store.snapshot_file_name("chat:1") == plain.snapshot_file_name("chat:1")


def test_the_window_offers_every_extension_extract_reads():
    from app.bridge.engine_controller import EngineController
    from engine.docs.extract import SUPPORTED_EXTENSIONS

    assert EngineController.document_extensions == SUPPORTED_EXTENSIONS


def test_kv_step_written_out_matches_mlx_lm():
    from mlx_lm.models.cache import KVCache, QuantizedKVCache

    from engine.memory import KV_STEP

    assert KV_STEP == KVCache.step == QuantizedKVCache.step


def _wait_for_line(proc: subprocess.Popen, prefix: str) -> str:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no {prefix!r} from the app")


def test_a_second_launch_hands_its_document_to_the_first(tmp_path):
    history = str(tmp_path / "history.db")
    doc = tmp_path / "notes.txt"
    doc.write_text("Some notes.")
    env = _env(tmp_path, NEMO_CHAT_TIMING="1")
    cmd = [sys.executable, "-m", "app.main", "--history", history]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_line(first, "nemo-chat timing: window")
        _wait_for_line(first, "nemo-chat timing: tray")  # the tray and quick prompt follow it
        second = subprocess.run([*cmd, str(doc)], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=DEADLINE_S)  # fmt: skip
        assert second.returncode == 0 and "timing: window" not in second.stderr  # no window
        _wait_for_line(first, "nemo-chat timing: activated-1")
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: its socket file stays behind
        first.wait()
    # The stale socket of the killed run does not stop the next start.
    third = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_line(third, "nemo-chat timing: window")
    finally:
        third.kill()
        third.wait()
