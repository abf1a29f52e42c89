"""Streaming generation: chunked prefill with progress and cancel, then mlx-lm's generate_step.

The prefill loop lives here (not in generate_step's callback) so progress can be *yielded*
as events and cancel is honoured between chunks; decoding is mlx-lm's own loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import mlx.core as mx

from engine.events import (
    Event,
    Finished,
    FinishReason,
    GenerationStats,
    PrefillProgress,
    TextChunk,
)
from engine.sampling import PREFILL_STEP, SamplingSettings
from engine.stop_strings import StopStrings
from engine.tokenizer import TekkenTokenizer
from engine.wired import wired_limit

PENALTY_CONTEXT = 64  # prompt tail the repetition penalty sees (it looks at the last 20)


def _mlx_lm_generate() -> tuple[Any, Any]:
    """mlx-lm's generate_step and generation_stream, imported on first use: mlx_lm imports
    transformers (seconds), and `engine.generate`'s settings are needed before that (the app)."""
    from mlx_lm.generate import generate_step, generation_stream

    return generate_step, generation_stream


def _logits_processors(settings: SamplingSettings, prompt_tail: mx.array) -> list[Any]:
    from mlx_lm.sample_utils import make_logits_processors  # lazy: see _mlx_lm_generate

    processors = make_logits_processors(
        repetition_penalty=settings.repetition_penalty,
        presence_penalty=settings.presence_penalty,
        frequency_penalty=settings.frequency_penalty,
    )
    # generate_step sees only the last prompt token; give the penalty the prompt's tail too.
    return [lambda toks, logits, p=p: p(mx.concat([prompt_tail, toks]), logits) for p in processors]


def prefill(
    model: Any,
    tokens: list[int],
    cache: list[Any],
    cancel: threading.Event | None = None,
    step: int = PREFILL_STEP,
) -> Iterator[PrefillProgress]:
    """Feed `tokens` into the cache in chunks, yielding progress; stops early when cancelled."""
    done, total = 0, len(tokens)
    with mx.stream(_mlx_lm_generate()[1]):
        while done < total:
            if cancel is not None and cancel.is_set():
                return
            chunk = tokens[done : done + step]
            model(mx.array(chunk)[None], cache=cache)
            mx.eval([c.state for c in cache])
            done += len(chunk)
            mx.clear_cache()  # keep peak memory near weights + KV + one chunk
            yield PrefillProgress(done, total)


def stream_tokens(
    model: Any,
    tokenizer: TekkenTokenizer,
    prompt: list[int],
    cache: list[Any],
    settings: SamplingSettings = SamplingSettings(),
    cancel: threading.Event | None = None,
    fed: list[int] | None = None,
    reused_tokens: int = 0,
    prefill_step: int = PREFILL_STEP,
    kv_bytes: int = 0,
) -> Iterator[Event]:
    """Generate from `prompt` (new tokens only) on top of `cache` (holding `reused_tokens`).

    Appends every token that enters the cache to `fed`, so a session knows what the cache holds.
    Yields PrefillProgress, TextChunk, and one Finished with the stats. `kv_bytes`: the memory
    plan's KV cache for the active num_ctx, wired with the weights on Metal (engine.wired).
    """
    if not prompt:
        raise ValueError("empty prompt: at least one new token is needed")
    fed = fed if fed is not None else []
    if settings.seed is not None:
        mx.random.seed(settings.seed)
    mx.reset_peak_memory()
    start = time.perf_counter()
    generated, first_token_at = 0, None
    reason: FinishReason = "length"
    detokenizer = tokenizer.detokenizer()
    stops = StopStrings(settings.stop)

    def finish(reason: FinishReason) -> Finished:
        now = time.perf_counter()
        ttft = (first_token_at or now) - start
        decode_s = now - (first_token_at or now)
        return Finished(
            GenerationStats(
                prompt_tokens=reused_tokens + len(prompt),
                reused_tokens=reused_tokens,
                prefilled_tokens=len(prompt),
                generated_tokens=generated,
                ttft_s=ttft,
                prefill_tps=len(prompt) / ttft if ttft > 0 else 0.0,
                decode_tps=(generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
                peak_memory_bytes=mx.get_peak_memory(),
                finish_reason=reason,
            )
        )

    # Wires weights + kv_bytes (the plan's KV cache; 0: weights only) + a margin, not the maximum.
    from mlx_lm.sample_utils import make_sampler

    generate_step, generation_stream = _mlx_lm_generate()
    with wired_limit(model, kv_bytes, [generation_stream]):
        # All but the last prompt token go through our chunked prefill.
        done = 0
        for progress in prefill(model, prompt[:-1], cache, cancel, prefill_step):
            fed.extend(prompt[done : progress.done])
            done = progress.done
            yield PrefillProgress(done, len(prompt))
        if cancel is not None and cancel.is_set():
            yield finish("cancelled")
            return

        tail = mx.array(fed[-PENALTY_CONTEXT:], dtype=mx.int32)
        steps = generate_step(
            mx.array(prompt[-1:]),
            model,
            max_tokens=settings.max_tokens,
            sampler=make_sampler(temp=settings.temperature, top_p=settings.top_p),
            logits_processors=_logits_processors(settings, tail),
            prompt_cache=cache,
        )
        try:
            for token, _ in steps:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                    fed.append(prompt[-1])
                fed.append(token)  # generate_step has already fed it to the cache
                if token == tokenizer.eos_id:
                    reason = "stop"
                    break
                generated += 1
                text = stops.add(detokenizer.add(token))
                if text:
                    yield TextChunk(text)
                if stops.hit:  # the cache keeps the stop string's tokens: `fed` lists them
                    reason = "stop"
                    break
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    break
        finally:
            steps.close()
    rest = stops.add(detokenizer.flush()) + stops.flush()
    if rest:
        yield TextChunk(rest)
    yield finish(reason)
