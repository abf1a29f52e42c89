"""mlx_lm.server as a real peer on 127.0.0.1, for tests and benchmarks (not used by the app).

mlx_lm.server loads its tokenizer through transformers, so `servable_copy` gives a model folder a
tokenizer.json (and chat template) made from its tekken.json by transformers' own converter.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

# mlx-lm 0.32's BPEStreamingDetokenizer.finalize() indexes its byte decoder directly and raises
# KeyError on a token string outside the byte alphabet (which its own add_token tolerates); random
# weights end answers on such tokens often, and the server then drops the connection. Run the
# server with finalize() decoding the way add_token() does; nothing else is changed.
_FINALIZE_FIX = """
import mlx_lm.tokenizer_utils as t
def finalize(self):
    self.text += self._maybe_trim_space(self._decode_bytes(self._unflushed))
    self._unflushed = ""
t.BPEStreamingDetokenizer.finalize = finalize
from mlx_lm.server import main
main()
"""


def servable_copy(model_dir: str | Path, dst: str | Path) -> Path:
    """`dst`: the model's files linked (not copied) plus a transformers tokenizer from tekken.json."""
    # The package's public name (older releases had no .tokenizer submodule); its lazy
    # re-export is invisible to pyright.
    from transformers.integrations.mistral import (
        convert_tekken_tokenizer,  # pyright: ignore[reportPrivateImportUsage]
    )

    src, dst = Path(model_dir), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not (dst / f.name).exists():
            (dst / f.name).symlink_to(f.resolve())
    if not (dst / "tokenizer.json").exists():
        tekken = dst / "tekken.json"
        if not tekken.exists():
            from engine.tokenizer import bundled_tekken_path

            tekken.symlink_to(bundled_tekken_path())
        convert_tekken_tokenizer(str(tekken)).save_pretrained(str(dst))
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlxLmServer:
    """`python -m mlx_lm.server` on a free port; `with MlxLmServer(folder) as s: s.url`."""

    def __init__(
        self,
        model_dir: str | Path,
        port: int | None = None,
        startup_s: float = 180,
        log: str | Path | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.port = port or free_port()
        self.startup_s = startup_s
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._hub = tempfile.TemporaryDirectory(prefix="mlx-server-hub-")
        self.log = Path(log) if log else Path(self._hub.name) / "server.log"

    def start(self) -> MlxLmServer:
        # An empty HF cache: /v1/models lists just this model (it fails on a missing cache dir).
        env = os.environ | {"HF_HUB_CACHE": self._hub.name, "HF_HUB_OFFLINE": "1"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _FINALIZE_FIX, "--model", str(self.model_dir)]
                + ["--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlx_lm.server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx2.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlx_lm.server did not start within {self.startup_s:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._hub.cleanup()

    def __enter__(self) -> MlxLmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
