"""`nemo summarize FILE...`: the app's summarizer from a terminal; progress on stderr, summary on stdout.

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

from engine.cli.backend_args import add_backend_args, backend_from_args
from engine.docs.extract import DocumentError, extract
from engine.docs.summarize import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_PART_CAP,
    CombineStarted,
    PartDone,
    PartStarted,
    SummaryDone,
    SummaryPlan,
)
from engine.events import PrefillProgress, TextChunk
from engine.remote.errors import RemoteError
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
        help="summarize whole documents, however long (in faithful parts when they do not fit)",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="PDF, DOCX, RTF, HTML, text, code …")
    p.add_argument("--instruction", metavar="TEXT", help="what to summarize for, if not all")
    add_common(p)
    p.set_defaults(func=run)
    return p


def add_common(p: argparse.ArgumentParser) -> None:
    """Options that `nemo summarize` and `nemo ask` share."""
    # --model DIR (default: the app's last model), or --server URL [--api-key K] [--model NAME]
    add_backend_args(p, "model folder (default: the app's last model); with --server, its name")
    p.add_argument("--num-ctx", type=int, default=8192, help="context length in tokens")
    p.add_argument("--kv-bits", type=int, choices=(4, 8), default=None)
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="answer length")
    p.add_argument(
        "--part-cap", type=int, default=DEFAULT_PART_CAP,
        help="prompt tokens a part may use (Nemo reads ~16K faithfully)",
    )  # fmt: skip
    p.add_argument("--no-batch", action="store_true", help="read the parts one at a time")
    p.add_argument("--out", metavar="FILE", help="write the answer here instead of stdout")
    p.add_argument("--temperature", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--plan", action="store_true", help="print the plan as JSON; run nothing")
    p.add_argument("--prefill-tps", type=float, help="measured prefill tokens/s (for --plan)")
    p.add_argument("--decode-tps", type=float, help="measured decode tokens/s (for --plan)")
    p.add_argument("--memory-gb", type=float, help="memory to plan with (default: this machine)")


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
    count = finished = 0
    streamed = False
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
                f"{_bar(finished, count)} part {event.index} of {event.count}{pages}" + _left(eta)
            )
        elif isinstance(event, PartDone):
            eta = event.eta_s
            finished += 1
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
            streamed = True
        elif isinstance(event, SummaryDone):
            progress.clear()
            if out is not None and event.cancelled and not streamed:
                out.write(event.text)  # the finished parts and the pages not yet read
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
    return guarded("summarize", args, lambda docs: _summary_request(args, docs))


def guarded(name: str, args: argparse.Namespace, make_request) -> int:
    try:
        return _run(name, args, make_request)
    except KeyboardInterrupt:
        print(f"\nnemo {name}: stopped", file=sys.stderr)
        return 130
    # ValueError covers ConfigError, WeightsError, TokenizerError, MemoryPlanError and
    # SummaryBudgetError: each says what is wrong in one line.
    except (DocumentError, ContextOverflow, ValueError, OSError, RemoteError) as e:
        print(f"nemo {name}: {e}", file=sys.stderr)
        return 1


def _summary_request(args: argparse.Namespace, docs: tuple):
    from engine.docs.summary_jobs import SummaryRequest

    return SummaryRequest(docs, args.instruction, _options(args), args.max_tokens, args.part_cap)


def _options(args: argparse.Namespace):
    from engine.backend import GenerationOptions
    from engine.generate import SamplingSettings

    sampling = SamplingSettings(temperature=args.temperature, seed=args.seed)
    return GenerationOptions(sampling, args.num_ctx, args.kv_bits)


def _run(name: str, args: argparse.Namespace, make_request) -> int:
    from dataclasses import replace

    docs = []
    for file in args.files:  # before loading the model: a bad file fails fast
        doc = extract(file)
        for warning in doc.warnings:
            print(f"nemo {name}: {doc.name}: {warning}", file=sys.stderr)
        docs.append(doc)
    request = make_request(tuple(docs))
    server = getattr(args, "server", None)  # with --server, --model names the server's model
    model = args.model or (None if args.plan or server else last_model_dir())
    if args.plan:
        return print_plan(args, request, None if server else model)
    if not model and not server:
        print(
            f"nemo {name}: no model folder; pass --model DIR or --server URL "
            "(no model is set in the app)",
            file=sys.stderr,
        )
        return 1
    from engine.docs.summary_jobs import events_for

    backend = backend_from_args(args, default_model=model)  # a local folder or --server URL
    num_ctx = min(request.options.num_ctx, backend.info.max_context or request.options.num_ctx)
    options = replace(request.options, num_ctx=num_ctx)  # a server's own limit bounds it
    request = replace(request, batched=not args.no_batch, options=options)
    events = events_for(backend, request, threading.Event())
    try:
        done = report(events, Progress(sys.stderr), None if args.out else sys.stdout)
    finally:
        events.close()
    if args.out:
        out = Path(args.out).expanduser()
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(done.text + "\n", encoding="utf-8")
        tmp.replace(out)  # never a half-written answer under the real name
        print(f"wrote {out}", file=sys.stderr)
    return 0


def print_plan(args: argparse.Namespace, request, model: str | None) -> int:
    """`--plan`: the plan as JSON on stdout; the model folder is read for its config only."""
    import json

    from engine.docs.summary_estimate import DEFAULT_RATES, MemoryFacts, Rates, plan_report
    from engine.memory import NEMO_4BIT_WEIGHTS_BYTES, activation_dtype_bytes
    from engine.tokenizer import load_tokenizer

    if model:
        from engine.config import load_config

        config = load_config(Path(model).expanduser())
        weights = sum(f.stat().st_size for f in Path(model).expanduser().glob("*.safetensors"))
    else:
        from engine.synthetic import preset_config

        config, weights = preset_config("nemo-12b"), NEMO_4BIT_WEIGHTS_BYTES
    available = int(args.memory_gb * 2**30) if args.memory_gb else None
    memory = MemoryFacts(config, weights, args.kv_bits, available, activation_dtype_bytes())
    measured = args.prefill_tps is not None and args.decode_tps is not None
    rates = Rates(
        args.prefill_tps or DEFAULT_RATES.prefill_tps,
        args.decode_tps or DEFAULT_RATES.decode_tps,
        measured=measured,
    )
    tokenizer = load_tokenizer(Path(model).expanduser() if model else None)
    docs = request.documents[0] if len(request.documents) == 1 else list(request.documents)
    plan = plan_report(
        docs,
        tokenizer,
        request.options.num_ctx,
        max_tokens=request.max_tokens,
        part_cap=request.part_cap,
        instruction=getattr(request, "instruction", None),
        question=getattr(request, "question", None),
        rates=rates,
        memory=memory,
    )
    print(json.dumps(plan.as_dict(), indent=2, ensure_ascii=False))
    return 0
