"""Terminal pieces every chat-like command shares: sampling from the flags, streaming an answer.

Their own module so `nemo chat`, `nemo generate` and `nemo chat --conversation` share them
without importing each other.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterable, Iterator

from engine.events import Finished, PrefillProgress, TextChunk
from engine.sampling import SamplingSettings


def sampling_from_args(args: argparse.Namespace) -> SamplingSettings:
    return SamplingSettings(
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )


def print_events(events: Iterable[object], cancel: threading.Event) -> str:
    """Stream an answer to the terminal; Ctrl+C stops it (and keeps what was said)."""
    text = []
    try:
        for event in events:
            if isinstance(event, PrefillProgress) and event.total > 2048:
                print(f"\rreading {event.done:,} / {event.total:,} tokens", end="", file=sys.stderr)
            elif isinstance(event, TextChunk):
                text.append(event.text)
                print(event.text, end="", flush=True)
            elif isinstance(event, Finished):
                s = event.stats
                print(
                    f"\n[{s.prompt_tokens:,} prompt tokens ({s.reused_tokens:,} reused), "
                    f"{s.generated_tokens:,} generated, ttft {s.ttft_s:.2f}s, "
                    f"{s.decode_tps:.1f} tok/s, {s.finish_reason}]",
                    file=sys.stderr,
                )
    except KeyboardInterrupt:
        cancel.set()
        print("\n[stopped]", file=sys.stderr)
    return "".join(text)


def prompts() -> Iterator[str]:
    """Lines typed at the "> " prompt, until an empty line or Ctrl+D."""
    while True:
        try:
            line = input("> ")
        except EOFError:
            return
        if not line.strip():
            return
        yield line
