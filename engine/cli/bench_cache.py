"""`nemo bench cache`: instant resume, measured. Same random weights: chat A grows to ~8K tokens,
then chat B, back to A with one new message, then a fresh engine (as after a restart) and A again.

Prints per step the prefilled tokens and TTFT against a cold prefill of the same prompt (target:
returning to A and resuming after a restart prefill only the new message, TTFT <= 0.05 of cold),
plus the snapshot's bytes and its save / load seconds.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
from pathlib import Path

from engine.backend import ChatRequest, GenerationOptions, collect, messages_of
from engine.cache_store import CacheSettings
from engine.generate import SamplingSettings
from engine.local_backend import LocalBackend
from engine.runtime import Engine, load
from engine.session import ChatSession
from engine.synthetic import write_checkpoint

DEFAULT_TOKENS = {"tiny": 8192, "small": 2048, "nemo-12b": 8192}  # small is slow on a CPU
TARGET = 0.05
WORDS = "river stone light paper market window garden engine letter signal".split()
SETTINGS = SamplingSettings(temperature=0.0, max_tokens=4)


def document(engine: Engine, tokens: int, seed: int) -> str:
    """Words that the Tekken tokenizer reads as about `tokens` tokens."""
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(tokens)]
    while len(engine.tokenizer.encode(" ".join(words))) > tokens:
        words = words[: len(words) * 9 // 10]
    return " ".join(words)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


class Run:
    def __init__(self, engine: Engine, folder: Path, options: GenerationOptions):
        self.engine, self.folder, self.options = engine, folder, options
        self.backend = LocalBackend(engine, CacheSettings(dir=folder))
        self.rows: list[tuple[str, int, int, float, float]] = []

    def turn(self, name: str, key: str, chat: list[dict[str, str]], cold: bool = True) -> str:
        """One answer; with `cold`, also a cold prefill of the same prompt (a new chat's own
        turn is its cold prefill; intermediate follow-ups skip it to keep a CPU run short)."""
        request = ChatRequest(messages_of(chat), self.options, key)
        text, stats = collect(self.backend.chat(request, threading.Event()))
        cold_ttft = float("nan")
        if cold and stats.reused_tokens:
            scratch = ChatSession(self.engine, self.options.num_ctx, self.options.kv_bits)
            cold_ttft = collect(scratch.chat(chat, self.options.sampling))[1].ttft_s
        elif cold:
            cold_ttft = stats.ttft_s
        self.rows.append(
            (name, stats.prompt_tokens, stats.prefilled_tokens, stats.ttft_s, cold_ttft)
        )
        return text or "ok"


def bench(preset: str, tokens: int, kv_bits: int | None, folder: Path) -> bool:
    model_dir = write_checkpoint(folder / f"model-{preset}", preset, seed=0)
    engine = load(model_dir)
    num_ctx = -(-(tokens + 1024) // 256) * 256
    options = GenerationOptions(SETTINGS, num_ctx=num_ctx, kv_bits=kv_bits)
    caches = folder / "kv-cache"
    run = Run(engine, caches, options)
    collect(engine.chat([user("warm up")], SETTINGS))

    a = [user("Read this: " + document(engine, tokens - 600, seed=1))]
    a.append({"role": "assistant", "content": run.turn("A: a new long chat", "chat:A", a)})
    for i, q in enumerate(("What is it about?", "And the second half?")):
        a.append(user(q))
        answer = run.turn(f"A: follow-up {i + 1}", "chat:A", a, cold=False)
        a.append({"role": "assistant", "content": answer})
    b = [user("Another topic: " + document(engine, tokens // 8, seed=2))]
    run.turn("B: another chat", "chat:B", b)
    a.append(user("Back to the first document: one more question."))
    a.append({"role": "assistant", "content": run.turn("back to A (+1 message)", "chat:A", a)})
    run.backend.close()  # quit: B, then A, are written
    timings = run.backend.caches.timings
    saved_bytes, save_s = timings.save_bytes, timings.save_s

    engine = load(model_dir)  # a fresh engine, as after a restart
    restarted = Run(engine, caches, options)
    restarted.rows = run.rows
    collect(engine.chat([user("warm up")], SETTINGS))
    a.append(user("After the restart: still there?"))
    restarted.turn("A after restart (+1 message)", "chat:A", a)
    load_s = restarted.backend.caches.timings.load_s
    restarted.backend.close()

    kv = "fp" if kv_bits is None else f"{kv_bits}-bit"
    print(f"\n{preset} preset, {kv} KV cache, num_ctx {num_ctx:,}")
    print(f"{'step':32} {'prompt':>7} {'prefilled':>9} {'TTFT s':>8} {'cold s':>8} {'ratio':>7}")
    ok = True
    for name, prompt, prefilled, ttft, cold in restarted.rows:
        ratio = ttft / cold if cold == cold and cold else float("nan")
        print(f"{name:32} {prompt:7,} {prefilled:9,} {ttft:8.3f} {cold:8.3f} {ratio:7.3f}")
        if name.startswith(("back to A", "A after restart")):
            ok = ok and ratio <= TARGET and prefilled < 64
    print(f"snapshot of A: {saved_bytes / 1e6:.1f} MB, save {save_s:.3f} s, load {load_s:.3f} s")
    print(
        f"target (resume prefills only the new message, TTFT <= {TARGET} of cold): "
        f"{'met' if ok else 'NOT met'}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nemo bench cache", description=__doc__)
    parser.add_argument("--preset", action="append", choices=list(DEFAULT_TOKENS))
    parser.add_argument("--tokens", type=int, default=None, help="chat A's size (default ~8K)")
    parser.add_argument("--kv-bits", type=int, choices=(4, 8), default=None)
    parser.add_argument("--dir", help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="nemo-bench-cache-") as tmp:
        folder = Path(args.dir) if args.dir else Path(tmp)
        for preset in args.preset or ["tiny", "small"]:
            tokens = args.tokens or DEFAULT_TOKENS[preset]
            ok = bench(preset, tokens, args.kv_bits, folder / preset) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
