"""`nemo serve`: serves the folder until interrupted, then shuts down cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx


def test_nemo_serve_answers_and_stops_on_ctrl_c(tiny_model_dir, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "serve", "--model", str(tiny_model_dir)]
        + ["--port", "0", "--num-ctx", "512"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # blocks until the server is up (or the process ends)
        match = re.search(r"serving (\S+) at (http://127\.0\.0\.1:\d+/v1)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        name, base_url = match.groups()
        models = httpx.get(f"{base_url}/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == [name]
        body = {"model": "mistral-nemo", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(
            f"{base_url}/chat/completions", json={**body, "max_tokens": 2}, timeout=120
        )
        assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_nemo_serve_refuses_a_public_address_without_a_key(tiny_model_dir):
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "serve", "--model", str(tiny_model_dir)]
        + ["--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "NEMO_API_KEY"},
    )
    assert result.returncode == 1 and "API key" in result.stderr
