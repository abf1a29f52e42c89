"""The batched map step against sequential, same random weights, one run (for bench_summarize).

Parts of `--part-tokens` prompt tokens each answer `--gen-tokens` tokens at temperature 0: one
after another on fresh caches (the sequential path), then all through engine.docs.batch at the
memory plan's batch size. Reports wall and decode-only ratios, whether the texts agree, peak
memory against the plan, and the weight bytes read per generated token (weights / batch): the
figure that carries to a bandwidth-bound GPU, where decoding a batch costs about one sequence.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from engine.units import size as gb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-map", action="store_true", help="no batched map benchmark")
    parser.add_argument("--preset", default="tiny", help="tiny, small or nemo-12b (GPU)")
    parser.add_argument("--bits", type=int, choices=(4, 8), default=None, help="quantize weights")
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--part-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=None, help="default: the memory plan's")


@dataclass(frozen=True)
class MapResult:
    preset: str
    weights_bytes: int
    parts: int
    part_tokens: int
    gen_tokens: int
    batch: int
    planned_batch: int
    seq_wall_s: float
    seq_decode_s: float
    batch_wall_s: float
    batch_decode_s: float
    same_text: bool
    peak_bytes: int
    planned_bytes: int
    device: str


def _engine(preset: str, bits: int | None):
    import mlx.core as mx
    import mlx.nn as nn

    from engine.runtime import Engine
    from engine.synthetic import preset_config, random_model
    from engine.tokenizer import load_tokenizer
    from engine.weights import weights_nbytes

    config = preset_config(preset)
    on_cpu = mx.default_device().type == mx.cpu
    model = random_model(config, dtype=mx.float32 if on_cpu else mx.bfloat16)
    if bits:
        nn.quantize(model, group_size=64, bits=bits)
    mx.eval(model.parameters())
    return Engine(
        Path(f"<random {preset}>"), config, model, load_tokenizer(), weights_nbytes(model)
    )


def _prompts(tokenizer, parts: int, tokens: int) -> list[list[dict[str, str]]]:
    from engine.cli.bench_text import paragraph

    out = []
    for i in range(parts):
        paras, n = [], i * 1000
        while tokenizer.count_tokens("\n\n".join(paras)) < tokens - 40:
            paras.append(paragraph(n))
            n += 1
        out.append([{"role": "user", "content": "\n\n".join(paras) + "\n\nSummarize."}])
    return out


def run(args: argparse.Namespace) -> MapResult:
    import mlx.core as mx

    from engine.backend import GenerationOptions
    from engine.docs.batch import LocalBatch
    from engine.events import Finished, TextChunk
    from engine.generate import SamplingSettings, stream_tokens
    from engine.memory import activation_dtype_bytes, available_memory, batch_size_that_fits, plan

    eng = _engine(args.preset, args.bits)
    prompts = _prompts(eng.tokenizer, args.parts, args.part_tokens)
    ctx = max(len(eng.tokenizer.encode_chat(p)) for p in prompts) + args.gen_tokens
    options = GenerationOptions(SamplingSettings(temperature=0.0), num_ctx=ctx + 256)
    dtype = activation_dtype_bytes()
    available = available_memory()
    planned_batch = max(1, batch_size_that_fits(eng.config, eng.weights_bytes, ctx, None, available=available, dtype_bytes=dtype))  # fmt: skip
    batch = min(args.batch or planned_batch, args.parts)
    one = plan(eng.config, eng.weights_bytes, ctx, None, dtype_bytes=dtype, available=available)
    planned_bytes = eng.weights_bytes + batch * (one.kv_bytes + one.working_bytes)

    # Warm both paths once (kernels, allocator) so neither pays first-use costs in the timing.
    settings = SamplingSettings(temperature=0.0, max_tokens=4)
    list(stream_tokens(eng.model, eng.tokenizer, eng.tokenizer.encode_chat(prompts[0]), eng.model.make_cache(), settings))  # fmt: skip
    runner = LocalBatch(eng, options)
    list(runner(prompts[:2], 4, None, 2))

    seq_text, seq_decode = [], 0.0
    settings = SamplingSettings(temperature=0.0, max_tokens=args.gen_tokens)
    began = time.perf_counter()
    for p in prompts:
        ids = eng.tokenizer.encode_chat(p)
        chunks = []
        for e in stream_tokens(eng.model, eng.tokenizer, ids, eng.model.make_cache(), settings):
            if isinstance(e, TextChunk):
                chunks.append(e.text)
            elif isinstance(e, Finished):
                s = e.stats
                seq_decode += (s.generated_tokens - 1) / s.decode_tps if s.decode_tps else 0.0
        seq_text.append("".join(chunks))
    seq_wall = time.perf_counter() - began

    mx.reset_peak_memory()
    texts: dict[int, list[str]] = {i: [] for i in range(len(prompts))}
    batch_decode = 0.0
    began = time.perf_counter()
    for i, e in runner(prompts, args.gen_tokens, None, batch):
        if isinstance(e, TextChunk):
            texts[i].append(e.text)
        elif isinstance(e, Finished) and e.stats.decode_tps:
            batch_decode += e.stats.generated_tokens / e.stats.decode_tps
    batch_wall = time.perf_counter() - began
    peak = mx.get_peak_memory()
    same = all("".join(texts[i]) == seq_text[i] for i in range(len(prompts)))
    device = str(mx.default_device())
    return MapResult(
        args.preset, eng.weights_bytes, args.parts, ctx - args.gen_tokens, args.gen_tokens,
        batch, planned_batch, seq_wall, seq_decode, batch_wall, batch_decode, same, peak,
        planned_bytes, device,
    )  # fmt: skip


def report(r: MapResult) -> None:
    print()
    print(
        f"map step, batched vs sequential: {r.parts} parts of {r.part_tokens} prompt tokens, "
        f"{r.gen_tokens} generated each, preset {r.preset} ({gb(r.weights_bytes)} weights), "
        f"{r.device}"
    )
    print(f"  batch size {r.batch} (memory plan allows {r.planned_batch})")
    print(
        f"  wall: sequential {r.seq_wall_s:.2f}s, batched {r.batch_wall_s:.2f}s, "
        f"ratio {r.seq_wall_s / r.batch_wall_s:.2f}x"
    )
    if r.batch_decode_s > 0:
        print(
            f"  decode only: sequential {r.seq_decode_s:.2f}s, batched {r.batch_decode_s:.2f}s, "
            f"ratio {r.seq_decode_s / r.batch_decode_s:.2f}x"
        )
    print(f"  same text at temperature 0: {'yes' if r.same_text else 'NO'}")
    print(
        f"  peak memory {gb(r.peak_bytes)} vs plan {gb(r.planned_bytes)} "
        f"({r.peak_bytes / r.planned_bytes:.2f} of it)"
    )
    print(
        f"  weight bytes read per generated token: sequential {gb(r.weights_bytes)}, "
        f"batched {gb(r.weights_bytes / r.batch)} (weights / {r.batch})"
    )
