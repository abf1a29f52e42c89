"""`nemo pull`: download a model, or the original weights to quantize here, with a progress bar.

The work runs on a worker thread so that Ctrl+C in the terminal sets the same cancel event the
app uses: the download stops between chunks, keeps what arrived, and resumes next time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

from engine.config import ConfigError
from engine.events import Cancelled
from engine.hub import download as hub
from engine.hub.convert_flow import PullProgress, from_download, pull_and_convert
from engine.hub.local_models import model_dir_for, models_dir
from engine.units import duration, size
from engine.weights import WeightsError

T = TypeVar("T")
_REDRAW_S = 0.1  # at most ~10 redraws a second on a terminal


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `pull` to the `nemo` command's subparsers; args.func(args) runs it (exits if not 0)."""
    p = subparsers.add_parser(
        "pull",
        help="download a model from the Hugging Face Hub (resumable)",
        description="Download a model into the app's models folder. Ctrl+C stops; running "
        "the same command again resumes. With --convert, download Mistral's bf16 original "
        "and quantize it here.",
    )
    p.add_argument(
        "repo",
        nargs="?",
        help=f"repo id (default {hub.DEFAULT_REPO}; with --convert {hub.ORIGINAL_REPO})",
    )
    p.add_argument(
        "--convert", action="store_true", help="download the bf16 original and quantize it here"
    )
    p.add_argument("--bits", type=int, choices=(4, 8), default=4, help="with --convert (4)")
    p.add_argument("--group-size", type=int, choices=(32, 64, 128), default=64, help="(64)")
    p.add_argument(
        "--delete-original",
        action="store_true",
        help="with --convert: delete the bf16 download once the conversion is complete",
    )
    p.add_argument(
        "--dest",
        type=Path,
        default=None,
        help=f"folder that holds the models, one subfolder each (default {models_dir()})",
    )
    p.add_argument(
        "--token", default=None, help="Hugging Face token (default: HF_TOKEN or `hf auth login`)"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run `nemo pull`; prints the model folder on stdout. 0 done, 1 failed, 130 cancelled."""
    if not args.convert and (args.bits != 4 or args.group_size != 64 or args.delete_original):
        print(
            "nemo pull: --bits, --group-size and --delete-original need --convert", file=sys.stderr
        )
        return 1
    repo = args.repo or (hub.ORIGINAL_REPO if args.convert else hub.DEFAULT_REPO)
    dest = args.dest.expanduser() if args.dest is not None else None
    cancel = threading.Event()
    bar = ProgressBar(sys.stderr)
    if args.convert:

        def work() -> Path:
            return pull_and_convert(
                dest,
                repo_id=repo,
                bits=args.bits,
                group_size=args.group_size,
                token=args.token,
                keep_original=not args.delete_original,
                on_progress=bar,
                cancel=cancel,
            )
    else:

        def work() -> Path:
            return hub.download(
                repo,
                model_dir_for(repo, dest),
                token=args.token,
                on_progress=lambda p: bar(from_download(p)),
                cancel=cancel,
            )

    try:
        path = run_cancellable(work, cancel)
    except hub.DownloadCancelled:
        bar.end()
        print(
            "nemo pull: download stopped; what arrived is kept — run the same command again "
            "to resume",
            file=sys.stderr,
        )
        return 130
    except Cancelled as e:  # the conversion phase
        bar.end()
        print(f"nemo pull: {e}", file=sys.stderr)
        return 130
    except (hub.DownloadError, ConfigError, WeightsError, ValueError, OSError) as e:
        bar.end()
        print(f"nemo pull: {e}", file=sys.stderr)
        return 1
    bar.end()
    if args.convert and not args.delete_original:
        original = model_dir_for(repo, dest)
        print(
            f"the bf16 original is kept in {original} (delete it from the app's settings, "
            "or pull with --delete-original)",
            file=sys.stderr,
        )
    print(path)
    return 0


def run_cancellable(work: Callable[[], T], cancel: threading.Event) -> T:
    """Run `work` on a worker thread; Ctrl+C sets `cancel` and waits for it to stop cleanly."""
    result: list[T] = []
    error: list[BaseException] = []
    finished = threading.Event()  # not Thread.join: a Ctrl+C inside join can leave it confused

    def target() -> None:
        try:
            result.append(work())
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            error.append(e)
        finally:
            finished.set()

    threading.Thread(target=target, name="nemo-pull", daemon=True).start()
    try:
        while not finished.wait(0.1):
            pass
    except KeyboardInterrupt:
        cancel.set()
        print("\nstopping…", file=sys.stderr)
        finished.wait()  # a second Ctrl+C leaves at once: the thread is a daemon
    if error:
        raise error[0]
    return result[0]


class ProgressBar:
    """PullProgress as one line redrawn in place on a terminal; on a pipe (a log), one line per
    phase start, 10% step and phase end."""

    def __init__(self, stream: TextIO, width: int = 24):
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.phase, self.step, self.last_draw, self.drawn = "", -1, 0.0, False

    def __call__(self, p: PullProgress) -> None:
        frac = p.done / p.total if p.total else 1.0
        now, new_phase = time.monotonic(), p.phase != self.phase
        if self.tty:
            if not new_phase and p.done < p.total and now - self.last_draw < _REDRAW_S:
                return
            if new_phase and self.drawn:
                self.stream.write("\n")
            width = shutil.get_terminal_size().columns - 1  # a wrapped line can't be redrawn
            self.stream.write("\r" + self.line(p, frac)[:width] + "\x1b[K")
        else:
            step = int(frac * 10)
            if not new_phase and step == self.step:
                return
            self.step = step
            self.stream.write(self.line(p, frac) + "\n")
        self.stream.flush()
        self.phase, self.last_draw, self.drawn = p.phase, now, True

    def line(self, p: PullProgress, frac: float) -> str:
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        speed = f"{size(p.speed_bps)}/s" if p.speed_bps > 0 else "--/s"
        left = f"{duration(p.eta_s)} left" if p.eta_s is not None else "-- left"
        return (
            f"{p.phase:<8} [{bar}] {frac:4.0%}  {size(p.done)} / {size(p.total)}  "
            f"{speed}  {left}  {p.detail}"
        )

    def end(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = False
