"""`nemo-chat --self-test [DIR]`: check a build without a screen, then exit.

It loads a model folder, generates a few tokens and prints one line of stats; it also checks that
Qt's platform and SVG plugins load, so a frozen bundle (packaging/) that is missing a native
library, the tokenizer data or a Qt plugin fails here, with the reason, instead of on a user's Mac.

It runs the engine on the calling thread (no window, no engine thread needed): it lives in
app/bridge/, the one app package that imports engine.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from engine.config import ModelConfig
from engine.local_backend import quantization_label

SELF_TEST_TOKENS = 8
PROMPT = [{"role": "user", "content": "Say hello in one short sentence."}]


def describe_weights(config: ModelConfig) -> str:
    """'4-bit g64' for a quantized model, else the checkpoint's float type, e.g. 'bf16'."""
    return quantization_label(config)


def check_qt() -> str:
    """Start (or reuse) a QGuiApplication and draw the SVG icon: proves the Qt plugins are there."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtGui import QGuiApplication, QImage

    from app.identity import APP_NAME, ORG_DOMAIN, ORG_NAME, resources_dir

    app = QGuiApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no screen needed
        app = QGuiApplication([sys.argv[0] if sys.argv else "nemo-chat"])
        app.setApplicationName(APP_NAME)
        app.setOrganizationName(ORG_NAME)
        app.setOrganizationDomain(ORG_DOMAIN)
        check_qt._app = app  # keep it alive: settings lookups below need it
    icon = resources_dir() / "icon.svg"
    if QImage(str(icon)).isNull():
        raise RuntimeError(f"{icon}: Qt could not draw the app icon (svg image plugin missing?)")
    return f"Qt {pyside_version} {QGuiApplication.platformName()}"


def saved_model_dir() -> str | None:
    """The model folder the app last used (its QSettings), if any."""
    from PySide6.QtCore import QSettings

    from app.settings import load_settings

    return load_settings(QSettings()).model_dir


def check_documents() -> str:
    """Read a small file through the document reader: it runs in a worker process, which a
    frozen bundle must be able to start (multiprocessing's spawn re-enters the app binary)."""
    import tempfile

    from engine.docs.extract import extract

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "self-test.txt"
        path.write_text("Nemo Chat reads documents.\n", encoding="utf-8")
        doc = extract(path)
    text = "".join(page.text for page in doc.pages)
    if "reads documents" not in text:
        raise RuntimeError(f"the reader returned {text!r}")
    return "documents ok"


def run_self_test(model_dir: str | None, max_tokens: int = SELF_TEST_TOKENS) -> int:
    """Load `model_dir` (default: the saved one), generate a few tokens, print stats; 0 if ok."""

    def fail(message: str) -> int:
        print(f"self-test failed: {message}", file=sys.stderr, flush=True)
        return 1

    try:
        qt = check_qt()
    except Exception as e:  # a missing plugin or resource: report it, do not crash
        return fail(str(e))
    model_dir = model_dir or saved_model_dir()
    if not model_dir:
        return fail("no model folder given and none saved in the settings; use --self-test DIR")

    import engine
    from engine.generate import SamplingSettings

    start = time.perf_counter()
    try:
        eng = engine.load(model_dir)
    except Exception as e:  # ConfigError, WeightsError, TokenizerError, OSError, ...
        return fail(f"cannot load {model_dir}: {e}")
    load_s = time.perf_counter() - start

    settings = SamplingSettings(temperature=0.0, max_tokens=max_tokens, seed=0)
    stats = None
    try:
        for event in eng.chat(PROMPT, settings):
            if isinstance(event, engine.Finished):
                stats = event.stats
    except Exception as e:
        return fail(f"generation with {model_dir} failed: {e}")
    if stats is None or stats.generated_tokens < 1:
        return fail(f"{model_dir}: the model generated no tokens")

    try:
        documents = check_documents()
    except Exception as e:  # the reader process could not start or read: every drop would fail
        return fail(f"reading a document failed: {e}")

    print(
        f"self-test ok: loaded {eng.model_dir.name} ({describe_weights(eng.config)}) in "
        f"{load_s:.2f} s, {stats.generated_tokens} tokens, ttft {stats.ttft_s:.2f} s, "
        f"{stats.decode_tps:.1f} tok/s, peak {stats.peak_memory_bytes / 1e9:.2f} GB; {qt}; {documents}",
        flush=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`--self-test [DIR]` alone, for the frozen entry point (packaging/entry.py)."""
    import argparse

    parser = argparse.ArgumentParser(prog="nemo-chat --self-test")
    parser.add_argument("--self-test", nargs="?", const="", metavar="DIR", required=True)
    parser.add_argument("--model", metavar="DIR")
    args, _unknown = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return run_self_test(args.self_test or args.model)
