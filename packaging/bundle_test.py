"""Smoke test of the built bundle (`make bundle-test`): build it, then run its --self-test.

    python packaging/bundle_test.py [--skip-build]

The model is a tiny random Nemo-shaped checkpoint *without* tekken.json, so the run also proves
that the bundle carries mistral-common's Tekken file. Qt runs offscreen: no screen needed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import build_app
import bundle_info

REPO = bundle_info.REPO
MODEL = REPO / "build" / "tiny-model"


def bundle_executable(dist: Path) -> Path:
    if sys.platform == "darwin":
        return dist / f"{bundle_info.APP_NAME}.app" / "Contents" / "MacOS" / bundle_info.EXECUTABLE
    return dist / bundle_info.EXECUTABLE / bundle_info.EXECUTABLE


def tiny_model(dst: Path = MODEL) -> Path:
    if not (dst / "config.json").exists():
        subprocess.run(
            [sys.executable, "-c", f"from engine.synthetic import write_checkpoint; write_checkpoint({str(dst)!r}, 'tiny')"],
            check=True,
            cwd=REPO,
        )  # fmt: skip
    (dst / "tekken.json").unlink(missing_ok=True)  # use the tokenizer inside the bundle
    return dst


def check_desktop_file(dist: Path) -> None:
    desktop = dist / bundle_info.EXECUTABLE / "share" / "applications" / "nemo-chat.desktop"
    validator = shutil.which("desktop-file-validate")
    if validator:
        subprocess.run([validator, str(desktop)], check=True)
        print(f"{desktop.name}: desktop-file-validate ok")
    else:
        print(f"{desktop.name}: desktop-file-validate not installed, not checked")


def bare_env(home: Path) -> dict[str, str]:
    """Nothing of the developer's: no venv, no settings, no history; Qt offscreen."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
    }


def self_test(exe: Path, model: Path, timeout_s: float = 300) -> str:
    """Run the bundle's own --self-test from a neutral folder with a bare environment."""
    proc = subprocess.run(
        [str(exe), "--self-test", str(model)],
        env=bare_env(REPO / "build" / "bundle-test-home"),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    output = proc.stdout + proc.stderr
    # "documents ok": the bundle started the document reader's worker process (spawn re-enters
    # the frozen binary), so dropped files can be read in the packaged app.
    if (
        proc.returncode != 0
        or "self-test ok:" not in proc.stdout
        or "documents ok" not in proc.stdout
    ):
        sys.exit(f"bundle self-test failed (exit {proc.returncode}):\n{output}")
    return proc.stdout.strip()


def window_starts(exe: Path, seconds: float = 10) -> str:
    """The full app (window, views, history store) imports and keeps running for a while.

    A module PyInstaller missed would end it at once with a traceback; here it runs until killed.
    """
    home = REPO / "build" / "bundle-test-home"
    proc = subprocess.Popen(
        [str(exe)], env=bare_env(home), cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        output, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        return f"window ok: the app ran {seconds:.0f} s offscreen"
    sys.exit(
        f"the bundled app exited with {proc.returncode} at start:\n{output.decode(errors='replace')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-build", action="store_true", help="test dist/ as it is")
    parser.add_argument("--dist", type=Path, default=REPO / "dist")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    if not args.skip_build:
        build_app.main(["--dist", str(args.dist), "--no-dmg"])
    built = time.perf_counter()
    exe = bundle_executable(args.dist)
    if not os.access(exe, os.X_OK):
        sys.exit(f"{exe}: no bundle executable; run `make bundle` first")
    if sys.platform != "darwin":
        check_desktop_file(args.dist)
    print(self_test(exe, tiny_model()))
    print(window_starts(exe))
    done = time.perf_counter()
    print(f"bundle-test ok: build {built - start:.0f} s, checks {done - built:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
