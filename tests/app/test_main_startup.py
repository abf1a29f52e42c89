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


def test_the_window_modules_do_not_import_the_model_stack():
    code = (
        "import sys, app.main, app.window, app.tray, app.bridge.engine_controller, "
        "app.bridge.downloader\n"
        "print(sorted(m for m in ('mlx_lm', 'transformers', 'engine.runtime') if m in sys.modules))"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=DEADLINE_S)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # they load on the engine thread, behind the window


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
