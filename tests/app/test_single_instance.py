"""app.single_instance: one running app per history folder; a stale socket never blocks a start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QDir
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from app.single_instance import SingleInstance, key_for

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
WAIT_MS = 60_000  # generous: 2 shared cores


@pytest.fixture
def key(tmp_path, qapp):
    k = key_for(tmp_path / "history.db")
    yield k
    QLocalServer.removeServer(k)


SECOND_LAUNCH = """
import json, sys
from PySide6.QtCore import QCoreApplication
from app.single_instance import SingleInstance
app = QCoreApplication([])
print(json.dumps(SingleInstance(sys.argv[1]).claim(sys.argv[2:])))
"""


def _in_thread(fn, *args):
    """Run a blocking call off the GUI thread, so the server (on it) can answer."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)))
    thread.start()
    return thread, result


def _second_launch(key: str, *documents: str):
    """Another process's claim(), as a real second launch; returns (thread, [its result])."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")

    def run() -> bool:
        cmd = [sys.executable, "-c", SECOND_LAUNCH, key, *documents]
        out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    return _in_thread(run)


def test_second_launch_hands_over_its_documents(qtbot, key):
    first = SingleInstance(key)
    assert first.claim(["/ignored/at/start.pdf"]) and first.server is not None
    received: list = []
    first.activated.connect(received.append)
    thread, result = _second_launch(key, "/tmp/a.pdf", "/tmp/b c.docx")
    qtbot.waitUntil(lambda: bool(result), timeout=WAIT_MS)
    thread.join()
    assert result == [False]  # it should quit
    qtbot.waitUntil(lambda: bool(received), timeout=WAIT_MS)
    assert received == [["/tmp/a.pdf", "/tmp/b c.docx"]]
    # A plain second launch (no documents) just brings the window forward.
    thread, result = _second_launch(key)
    qtbot.waitUntil(lambda: len(received) == 2 and bool(result), timeout=WAIT_MS)
    assert result == [False] and received[1] == []
    first.close()


def test_a_stale_socket_from_a_crashed_run_does_not_block(qtbot, key):
    # A crashed run leaves its socket file behind, with nobody listening on it.
    path = QDir(QDir.tempPath()).filePath(key)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    assert os.path.exists(path)
    probe = QLocalSocket()
    probe.connectToServer(key)
    assert not probe.waitForConnected(1000)  # what Qt sees: nobody answers
    first = SingleInstance(key)
    assert first.claim([]) and first.server is not None and first.server.isListening()
    received: list = []
    first.activated.connect(received.append)
    thread, result = _second_launch(key, "/tmp/x.txt")
    qtbot.waitUntil(lambda: bool(received) and bool(result), timeout=WAIT_MS)
    assert result == [False] and received == [["/tmp/x.txt"]]
    first.close()
    assert not os.path.exists(path)  # a clean exit leaves nothing behind


def test_after_the_first_quits_the_next_launch_runs(qtbot, key):
    first = SingleInstance(key)
    assert first.claim([])
    first.close()
    again = SingleInstance(key)
    assert again.claim([]) and again.server is not None
    again.close()


def test_each_history_folder_has_its_own_instance(qtbot, tmp_path):
    a, b = key_for(tmp_path / "a" / "history.db"), key_for(tmp_path / "b" / "history.db")
    assert a != b and key_for(tmp_path / "a" / "other.db") == a  # keyed by the folder
    one, two = SingleInstance(a), SingleInstance(b)
    try:
        assert one.claim([]) and two.claim([])
    finally:
        one.close()
        two.close()


def test_garbage_on_the_socket_is_ignored(qtbot, key):
    first = SingleInstance(key)
    assert first.claim([])
    received: list = []
    first.activated.connect(received.append)

    def send(payload: bytes) -> bytes:  # a plain Unix socket: not Qt, not our client
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(WAIT_MS / 1000)
            s.connect(QDir(QDir.tempPath()).filePath(key))
            s.sendall(payload)
            return s.recv(100)  # b"": the server hung up without an "ok"

    for payload in (b"not json\n", json.dumps({"docs": []}).encode() + b"\n"):
        thread, result = _in_thread(send, payload)
        qtbot.waitUntil(lambda r=result: bool(r), timeout=WAIT_MS)
        assert result == [b""]
    assert received == []
    first.close()
