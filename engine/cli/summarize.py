"""`nemo summarize FILE`: the app's summarizer from a terminal; progress on stderr, summary on stdout.

Wired into engine/__main__.py with `add_parser(subparsers)`; `run(args)` returns the exit status
(the parser's handler raises SystemExit with it when it is not 0, like `nemo pull`).
"""

from __future__ import annotations

import argparse
import configparser
import os
import plistlib
import sys
import threading
from pathlib import Path
from typing import TextIO

from engine.docs.extract import DocumentError, extract
from engine.docs.summarize import (
    DEFAULT_MAX_TOKENS,
    CombineStarted,
    PartDone,
    PartStarted,
    SummaryDone,
    SummaryPlan,
    session_generate_fn,
    summarize,
)
from engine.events import PrefillProgress, TextChunk
from engine.session import ContextOverflow
from engine.units import duration

# Where the app's QSettings keep `chat/model_dir`, read without Qt. macOS: a plist named from the
# domain nemochat.app (Qt's comify() makes it "com.nemochat-app.Nemo Chat.plist"), with the key
# "chat.model_dir". Elsewhere: an INI file named from the organization and application.
_PLIST_GLOB = "*nemochat*.plist"
_INI_PATH = Path("Nemo Chat") / "Nemo Chat.conf"


def last_model_dir() -> str | None:
    """The model folder the app used last, or None when there is none we can read."""
    home = Path.home()
    for plist in sorted((home / "Library" / "Preferences").glob(_PLIST_GLOB)):
        try:
            data = plistlib.loads(plist.read_bytes())
        except (OSError, plistlib.InvalidFileException, ValueError):
            continue
        chat = data.get("chat") if isinstance(data.get("chat"), dict) else {}
        value = data.get("chat.model_dir") or data.get("chat/model_dir") or chat.get("model_dir")
        if isinstance(value, str) and value.strip():
            return value.strip()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    ini = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        ini.read(config_home / _INI_PATH, encoding="utf-8")
        value = ini.get("chat", "model_dir", fallback="").strip().strip('"')
    except (configparser.Error, UnicodeDecodeError):
        return None
    return value or None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "summarize",
        help="summarize a whole document, however long (map-reduce when it does not fit)",
    )
    p.add_argument("file", metavar="FILE", help="PDF, DOCX, RTF, HTML, Markdown, text, code …")
    p.add_argument("--model", metavar="DIR", help="model folder (default: the app's last model)")
    p.add_argument("--num-ctx", type=int, default=8192, help="context length in tokens")
    p.add_argument("--kv-bits", type=int, choices=(4, 8), default=None)
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="summary length")
    p.add_argument("--instruction", metavar="TEXT", help="what to summarize for, if not all")
    p.add_argument("--out", metavar="FILE", help="write the summary here instead of stdout")
    p.add_argument("--temperature", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=run)
    return p


class Progress:
    """One status line on stderr: redrawn in place on a terminal, one line per step otherwise."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = False

    def show(self, line: str) -> None:
        if self.tty:
            self.stream.write(f"\r\x1b[K{line}")
            self.shown = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = width * done // max(total, 1)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _left(eta: float | None) -> str:
    return f" · ~{duration(eta)} left" if eta else ""


def report(events, progress: Progress, out: TextIO | None) -> SummaryDone:
    """Show the events; stream the answer to `out` (when given); return the SummaryDone."""
    eta: float | None = None
    count = 0
    for event in events:
        if isinstance(event, SummaryPlan):
            count = event.parts
            how = (
                "one pass"
                if event.single_pass
                else f"{event.parts} parts, at most {event.model_calls_estimate} model calls"
            )
            progress.show(f"{event.total_tokens:,} tokens: {how}")
        elif isinstance(event, PartStarted):
            pages = f" (pages {event.pages})" if event.pages else ""
            progress.show(
                f"{_bar(event.index - 1, count)} part {event.index} of {event.count}{pages}"
                + _left(eta)
            )
        elif isinstance(event, PartDone):
            eta = event.eta_s
        elif isinstance(event, CombineStarted):
            what = (
                "writing the summary"
                if event.final
                else f"combining {event.index} of {event.count} (round {event.level})"
            )
            progress.show(f"{_bar(count, count)} {what}{_left(event.eta_s)}")
        elif isinstance(event, PrefillProgress) and event.total > 2048:
            progress.show(f"reading {event.done:,} / {event.total:,} tokens")
        elif isinstance(event, TextChunk) and out is not None:
            progress.clear()
            out.write(event.text)
            out.flush()
        elif isinstance(event, SummaryDone):
            progress.clear()
            if out is not None and event.text:
                out.write("\n")
            state = "stopped, " if event.cancelled else ""
            progress.stream.write(
                f"[{state}{event.parts} part(s), {event.model_calls} model call(s), "
                f"{event.tokens_processed:,} tokens processed, "
                f"{duration(event.stats.seconds)}]\n"
            )
            return event
    raise RuntimeError("the summarizer ended without a result")


def run(args: argparse.Namespace) -> int:
    """Run `nemo summarize`: 0 done, 1 failed (one line on stderr), 130 stopped with Ctrl+C."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\nnemo summarize: stopped", file=sys.stderr)
        return 130
    # ValueError covers ConfigError, WeightsError, TokenizerError, MemoryPlanError and
    # SummaryBudgetError: each says what is wrong in one line.
    except (DocumentError, ContextOverflow, ValueError, OSError) as e:
        print(f"nemo summarize: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import engine
    from engine.generate import SamplingSettings

    model = args.model or last_model_dir()
    if not model:
        print(
            "nemo summarize: no model folder; pass --model DIR (no model is set in the app)",
            file=sys.stderr,
        )
        return 1
    doc = extract(args.file)  # before loading the model: a bad file fails fast
    for warning in doc.warnings:
        print(f"nemo summarize: {doc.name}: {warning}", file=sys.stderr)
    eng = engine.load(model)
    session = eng.session(num_ctx=args.num_ctx, kv_bits=args.kv_bits)
    settings = SamplingSettings(temperature=args.temperature, seed=args.seed)
    events = summarize(
        doc,
        session_generate_fn(session, settings),
        eng.tokenizer,
        args.num_ctx,
        instruction=args.instruction,
        max_tokens=args.max_tokens,
        cancel=threading.Event(),
    )
    done = report(events, Progress(sys.stderr), None if args.out else sys.stdout)
    if args.out:
        out = Path(args.out).expanduser()
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(done.text + "\n", encoding="utf-8")
        tmp.replace(out)  # never a half-written summary under the real name
        print(f"wrote {out}", file=sys.stderr)
    return 0
