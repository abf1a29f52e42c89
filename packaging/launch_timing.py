"""Launch-to-window and launch-to-ready of `nemo-chat` on a tiny random model.

    .venv/bin/python packaging/launch_timing.py [--runs 3] [--eager] [--xvfb]

Each run starts the app in a fresh history and settings folder with NEMO_CHAT_TIMING=quit: the
app prints when its window is shown and when the model is ready, then quits. --eager imports the
engine (MLX, mlx-lm, transformers) before the app starts, as the app did before issue 17 #13.
Offscreen by default; --xvfb runs it on a real X server (xvfb-run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EAGER = "import engine.runtime, app.bridge.engine_controller; from app.main import main; main()"


def tiny_model(folder: Path) -> Path:
    """A tiny random Nemo-shaped 4-bit model, built once and kept."""
    q4 = folder / "tiny-q4"
    if not (q4 / "config.json").exists():
        from engine.synthetic import preset_config, write_checkpoint
        from engine.weights import convert

        src = write_checkpoint(folder / "tiny-bf16", preset_config("tiny"))
        convert(src, q4, bits=4, group_size=64)
    return q4


def launch(model: Path, eager: bool, xvfb: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="nemo-launch-") as tmp:
        env = dict(
            os.environ, NEMO_CHAT_TIMING="quit", XDG_CONFIG_HOME=tmp, XDG_DATA_HOME=tmp,
            HOME=tmp, QT_QPA_PLATFORM="xcb" if xvfb else "offscreen",
        )  # fmt: skip
        app = ["--model", str(model), "--history", f"{tmp}/history.db"]
        cmd = (
            [sys.executable, "-c", EAGER, *app]
            if eager
            else [str(ROOT / ".venv/bin/nemo-chat"), *app]
        )
        if xvfb:
            cmd = ["xvfb-run", "-a", "-s", "-screen 0 1440x900x24", *cmd]
        start = time.time()
        out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    seen = {}
    for line in out.stderr.splitlines():
        if line.startswith("nemo-chat timing: "):
            event, at = line.split()[-2:]
            seen[event] = float(at) - start
    if "window" not in seen or "ready" not in seen:
        raise SystemExit(f"no timings (rc {out.returncode}):\n{out.stderr[-3000:]}")
    return seen["window"], seen["ready"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--eager", action="store_true", help="import the engine first (before)")
    parser.add_argument("--xvfb", action="store_true", help="a real X server instead of offscreen")
    parser.add_argument("--model", type=Path, help="model folder (default: a tiny random one)")
    args = parser.parse_args()
    model = args.model or tiny_model(Path(tempfile.gettempdir()) / "nemo-launch-timing")
    runs = [launch(model, args.eager, args.xvfb) for _ in range(args.runs)]
    for i, (window, ready) in enumerate(runs, 1):
        print(f"run {i}: window {window:.2f} s, ready {ready:.2f} s")
    window = statistics.median(r[0] for r in runs)
    ready = statistics.median(r[1] for r in runs)
    label = "eager engine import (before)" if args.eager else "lazy engine import (now)"
    print(
        f"median of {len(runs)}, {label}: launch-to-window {window:.2f} s, launch-to-ready {ready:.2f} s"
    )


if __name__ == "__main__":
    main()
