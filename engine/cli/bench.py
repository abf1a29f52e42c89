"""`python -m engine.cli.bench`: our engine against mlx-lm on the same random weights, in one run.

Prints prefill/decode tok/s and peak memory with ratios (target >= 0.95 of mlx-lm), the 4-bit
weight bytes against the 0.5625 B/param ideal, multi-turn reuse against re-sending the chat to
mlx_lm.stream_generate, live KV bytes per token against the planner, and a long prefill's peak.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.generate import stream_generate
from mlx_lm.models import llama
from mlx_lm.models.cache import QuantizedKVCache
from mlx_lm.tokenizer_utils import TokenizerWrapper

from engine import Engine, Finished, SamplingSettings
from engine.memory import activation_dtype_bytes, kv_bytes_per_token, plan
from engine.model import Model
from engine.session import ChatSession
from engine.synthetic import preset_config
from engine.tokenizer import TekkenTokenizer, load_tokenizer
from engine.weights import compute_dtype, weights_nbytes

SIZES = {  # preset: (prompt tokens, decoded tokens, chat turns' user tokens)
    "tiny": (1024, 128, 300),
    "small": (1024, 64, 300),
    "nemo-12b": (2048, 128, 400),
}


class _MlxLmTokenizer(TokenizerWrapper):
    """Just what mlx_lm.stream_generate uses of a tokenizer, over our Tekken."""

    class _Detok:
        def __init__(self, tok: TekkenTokenizer):
            self.tok = tok
            self.reset()

        def reset(self) -> None:
            self._d, self.segment = self.tok.detokenizer(), ""

        def add_token(self, token: int) -> None:
            self.segment += self._d.add(token)

        def finalize(self) -> None:
            self.segment += self._d.flush()

        @property
        def last_segment(self) -> str:
            s, self.segment = self.segment, ""
            return s

    def __init__(self, tok: TekkenTokenizer):  # no HF tokenizer to wrap
        self._detokenizer = self._Detok(tok)
        self._eos_token_ids = {tok.eos_id}


def build_models(preset: str, bits: int, seed: int = 0) -> tuple[Model, nn.Module, int]:
    """Our Model and mlx-lm's llama Model with the same random 4-bit weights."""
    config = preset_config(preset)
    mx.random.seed(seed)
    ours = Model(config)  # lazy random init: materialized already quantized, never in fp
    ours.set_dtype(mx.bfloat16)
    nn.quantize(ours, group_size=64, bits=bits)
    mx.eval(ours.parameters())
    checkpoint_bytes = weights_nbytes(ours)  # scales and biases in bf16, as on disk
    ours.set_dtype(compute_dtype(mx.bfloat16))
    theirs = llama.Model(llama.ModelArgs.from_dict(config.raw))
    nn.quantize(theirs, group_size=64, bits=bits)
    # tree_flatten returns a list unless given a dict destination; its stub says either
    theirs.load_weights(cast("list[tuple[str, mx.array]]", tree_flatten(ours.parameters())))
    mx.eval(theirs.parameters())
    return ours, theirs, checkpoint_bytes


def _last(responses):
    return deque(responses, maxlen=1)[0]  # keeps no earlier response (their logprobs) alive


@dataclass
class Run:
    prefill_tps: float
    decode_tps: float
    peak_bytes: int


def run_ours(engine: Engine, prompt: list[int], n: int) -> Run:
    settings = SamplingSettings(temperature=0.0, max_tokens=n)
    stats = [e.stats for e in engine.generate(prompt, settings) if isinstance(e, Finished)][0]
    return Run(stats.prefill_tps, stats.decode_tps, stats.peak_memory_bytes)


def run_mlx_lm(model: nn.Module, tok: TokenizerWrapper, prompt: list[int], n: int) -> Run:
    mx.reset_peak_memory()
    r = _last(stream_generate(model, tok, mx.array(prompt), max_tokens=n))
    return Run(r.prompt_tps, r.generation_tps, mx.get_peak_memory())


def interleaved(runs: dict[str, Callable[[], Run]], rounds: int) -> dict[str, Run]:
    results: dict[str, list[Run]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            results[name].append(fn())
    return {
        k: Run(
            statistics.median(r.prefill_tps for r in v),
            statistics.median(r.decode_tps for r in v),
            max(r.peak_bytes for r in v),
        )
        for k, v in results.items()
    }


def bench_throughput(engine: Engine, theirs: nn.Module, tok, prompt_len: int, n: int, rounds: int):
    prompt = [1] + [1000 + (i * 7919) % 130000 for i in range(prompt_len - 1)]
    runs = interleaved(
        {
            "nemo-chat": lambda: run_ours(engine, prompt, n),
            "mlx-lm": lambda: run_mlx_lm(theirs, tok, prompt, n),
        },
        rounds,
    )
    ours, ref = runs["nemo-chat"], runs["mlx-lm"]
    print(f"\n## Throughput: {prompt_len:,}-token prompt, {n} decoded tokens, median of {rounds}")
    print(f"{'':12}{'prefill tok/s':>15}{'decode tok/s':>15}{'peak memory':>14}")
    for name, r in runs.items():
        print(f"{name:12}{r.prefill_tps:15.1f}{r.decode_tps:15.1f}{r.peak_bytes / 2**20:11.0f} MiB")
    print(
        f"{'ratio':12}{ours.prefill_tps / ref.prefill_tps:15.3f}"
        f"{ours.decode_tps / ref.decode_tps:15.3f}{ours.peak_bytes / ref.peak_bytes:14.3f}"
        "   (target: prefill and decode >= 0.95)"
    )


def bench_multi_turn(engine: Engine, theirs: nn.Module, tok, user_tokens: int, turns: int = 10):
    """Our session reuses the cache; mlx-lm's stream_generate re-reads the whole chat each turn."""
    session = ChatSession(engine, num_ctx=32768)
    settings = SamplingSettings(temperature=0.0, max_tokens=32)
    words = "the quick brown fox jumps over a lazy dog near river banks".split()
    history: list[dict[str, str]] = []
    print(f"\n## {turns}-turn chat (~{user_tokens} tokens a message, 32-token answers)")
    print(
        f"{'turn':>4}{'prompt':>8}{'ours: prefilled':>17}{'ttft s':>8}{'mlx-lm: prefilled':>19}{'ttft s':>8}"
    )
    for t in range(turns):
        text = " ".join(words[(t + i) % len(words)] for i in range(user_tokens))
        history.append({"role": "user", "content": f"Turn {t}: {text}"})
        stats = [e.stats for e in session.chat(history, settings) if isinstance(e, Finished)][0]
        prompt = engine.tokenizer.encode_chat(history)
        tic = time.perf_counter()
        _last(stream_generate(theirs, tok, mx.array(prompt), max_tokens=1))
        their_ttft = time.perf_counter() - tic
        answer = engine.tokenizer.decode(session.tokens[stats.prompt_tokens :])
        history.append({"role": "assistant", "content": answer or "ok"})
        print(
            f"{t + 1:4}{len(prompt):8,}{stats.prefilled_tokens:17,}{stats.ttft_s:8.3f}"
            f"{len(prompt):19,}{their_ttft:8.3f}"
        )
    print(f"last turn: time to first token ours / mlx-lm = {stats.ttft_s / their_ttft:.3f}")


def bench_kv_bytes(engine: Engine, tokens: int = 1024):
    dtype_bytes = activation_dtype_bytes()
    print(
        f"\n## KV cache bytes per token (live cache after {tokens:,} tokens, {dtype_bytes}-byte activations)"
    )
    prompt = mx.array([[1] + [2000 + i for i in range(tokens - 1)]])
    for bits in (None, 8, 4):
        cache: list[Any]  # mlx-lm's cache classes type nbytes loosely
        if bits is None:
            cache = engine.model.make_cache()
        else:
            cache = [QuantizedKVCache(group_size=64, bits=bits) for _ in engine.model.layers]
        engine.model(prompt, cache=cache)
        mx.eval([c.state for c in cache])
        live = sum(c.nbytes for c in cache) / tokens
        planned = kv_bytes_per_token(engine.config, bits, dtype_bytes=dtype_bytes)
        nemo = kv_bytes_per_token(preset_config("nemo-12b"), bits, dtype_bytes=2)
        label = "fp" if bits is None else f"{bits}-bit"
        print(
            f"{label:>6}: live {live:10.1f} B  planned {planned:10.1f} B  (Nemo on a Mac: {nemo / 1024:.0f} KiB)"
        )


def bench_long_prefill(engine: Engine, num_ctx: int):
    session = ChatSession(engine, num_ctx=num_ctx)
    text = " ".join(f"w{i}" for i in range(num_ctx))
    ids = engine.tokenizer.encode(text)[: num_ctx - 200]
    message = [{"role": "user", "content": engine.tokenizer.decode(ids)}]
    mx.clear_cache()
    stats = [
        e.stats
        for e in session.chat(message, SamplingSettings(max_tokens=8))
        if isinstance(e, Finished)
    ][0]
    p = plan(
        engine.config, engine.weights_bytes, num_ctx, None, dtype_bytes=activation_dtype_bytes()
    )
    print(f"\n## Long prefill: {stats.prompt_tokens:,} tokens into num_ctx {num_ctx:,}")
    print(
        f"peak {stats.peak_memory_bytes / 2**20:.0f} MiB vs plan {p.total_bytes / 2**20:.0f} MiB "
        f"({p.describe()}); ratio {stats.peak_memory_bytes / p.total_bytes:.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine.cli.bench", description=__doc__)
    parser.add_argument("--preset", choices=list(SIZES), default="tiny")
    parser.add_argument("--bits", type=int, choices=(4, 8), default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument(
        "--long-prefill", type=int, default=8192, help="num_ctx of the long-prefill run"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["throughput", "turns", "kv", "prefill"]
    )
    args = parser.parse_args(argv)

    prompt_len, n, user_tokens = SIZES[args.preset]
    print(
        f"# engine.cli.bench — preset {args.preset}, {args.bits}-bit g64, device {mx.default_device()}"
    )
    ours, theirs, checkpoint_bytes = build_models(args.preset, args.bits)
    config = ours.config
    params = config.num_parameters
    print(
        f"weights: {checkpoint_bytes:,} bytes for {params:,} params = "
        f"{checkpoint_bytes / params:.4f} B/param (ideal {0.5 + 4 / 64 if args.bits == 4 else 1 + 4 / 64:.4f})"
    )
    model_dir = Path(f"<random {args.preset}>")  # no folder: random weights, as in bench_map
    engine = Engine(model_dir, config, ours, load_tokenizer(None), weights_nbytes(ours))
    tok = _MlxLmTokenizer(engine.tokenizer)
    mx.eval(ours(mx.array([[1, 2, 3]])), theirs(mx.array([[1, 2, 3]])))  # warm up both
    if "throughput" not in args.skip:
        bench_throughput(engine, theirs, tok, prompt_len, n, args.rounds)
    if "turns" not in args.skip:
        bench_multi_turn(engine, theirs, tok, user_tokens, args.turns)
    if "kv" not in args.skip:
        bench_kv_bytes(engine)
    if "prefill" not in args.skip:
        bench_long_prefill(engine, args.long_prefill)


if __name__ == "__main__":
    main()
