"""The batched map step: several prompts in one batched generation on the engine thread.

mlx-lm's BatchGenerator runs the prompts with continuous batching (a finished sequence makes room
for the next), each sequence with its own KV cache; the batch size comes from the memory plan
(engine.memory.batch_size_that_fits). At temperature 0 the text equals the sequential path's.
Events are tagged with the prompt's position: (i, PrefillProgress | TextChunk | Finished).

On a bandwidth-bound GPU (Metal) a batch of B reads the weights once for B tokens; on the CPU
backend decoding is compute-bound and batching gains little (DESIGN.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from engine.backend import GenerationOptions
from engine.events import Event, Finished, GenerationStats, PrefillProgress, TextChunk

if TYPE_CHECKING:
    from engine.runtime import Engine

Messages = list[dict[str, str]]
MAX_BATCH = 8  # mlx-lm's default prefill batch


class BatchFn(Protocol):
    """Runs several one-message chats; events tagged with the prompt's index."""

    def batch_size(self, ctx_tokens: int) -> int:
        """How many sequences of `ctx_tokens` (prompt + answer) may run at once."""
        ...

    def __call__(
        self,
        prompts: Sequence[Messages],
        max_tokens: int,
        cancel: threading.Event | None,
        batch_size: int,
    ) -> Iterator[tuple[int, Event]]: ...


class _Sequence:
    """One prompt's bookkeeping inside a batch."""

    def __init__(self, index: int, prompt_tokens: int, detokenizer):
        self.index, self.prompt_tokens, self.detokenizer = index, prompt_tokens, detokenizer
        self.generated = 0
        self.prefill_s = self.decode_s = 0.0  # its share of each batched step's time

    def stats(self, reason: str) -> Finished:
        import mlx.core as mx

        return Finished(
            GenerationStats(
                prompt_tokens=self.prompt_tokens,
                reused_tokens=0,
                prefilled_tokens=self.prompt_tokens,
                generated_tokens=self.generated,
                ttft_s=self.prefill_s,
                prefill_tps=self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else 0.0,
                decode_tps=self.generated / self.decode_s if self.decode_s > 0 else 0.0,
                peak_memory_bytes=mx.get_peak_memory(),
                finish_reason=reason,  # type: ignore[arg-type]
            )
        )


class LocalBatch:
    """BatchFn on a loaded Engine (engine thread only)."""

    def __init__(self, eng: Engine, options: GenerationOptions, available: int | None = None):
        self.engine, self.options, self.available = eng, options, available

    def batch_size(self, ctx_tokens: int) -> int:
        from engine.memory import activation_dtype_bytes, batch_size_that_fits

        e = self.engine
        # mlx-lm batches fp caches only (a quantized cache cannot merge); a window needs care.
        if self.options.kv_bits is not None or e.config.sliding_window:
            return 1
        n = batch_size_that_fits(
            e.config,
            e.weights_bytes,
            ctx_tokens,
            None,
            available=self.available,
            max_batch=MAX_BATCH,
            dtype_bytes=activation_dtype_bytes(),
        )
        return max(1, n)

    def __call__(
        self,
        prompts: Sequence[Messages],
        max_tokens: int,
        cancel: threading.Event | None,
        batch_size: int,
    ) -> Iterator[tuple[int, Event]]:
        import mlx.core as mx
        from mlx_lm.generate import BatchGenerator
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        from engine.memory import activation_dtype_bytes, kv_bytes_per_token
        from engine.sampling import prefill_step_for
        from engine.session import ContextOverflow
        from engine.wired import wired_limit

        tok, model, sampling = self.engine.tokenizer, self.engine.model, self.options.sampling
        ids = [tok.encode_chat(m) for m in prompts]
        for prompt in ids:
            if len(prompt) + max_tokens > self.options.num_ctx:
                raise ContextOverflow(len(prompt), self.options.num_ctx, max_tokens)
        if not ids:
            return
        if sampling.seed is not None:
            mx.random.seed(sampling.seed)
        processors = make_logits_processors(repetition_penalty=sampling.repetition_penalty)
        mx.reset_peak_memory()
        gen = BatchGenerator(
            model,
            max_tokens=max_tokens,
            stop_tokens=[[tok.eos_id]],
            sampler=make_sampler(temp=sampling.temperature, top_p=sampling.top_p),
            logits_processors=processors,
            completion_batch_size=max(1, batch_size),
            prefill_batch_size=max(1, batch_size),
            prefill_step_size=prefill_step_for(None),
        )
        # BatchGenerator raises the wired limit to the device maximum, the reported trigger of
        # macOS kernel panics (mlx#3186): put it back at once and wire weights + the batch's KV.
        gen.close()
        longest = max(len(p) for p in ids) + max_tokens
        per_token = kv_bytes_per_token(self.engine.config, None, activation_dtype_bytes())
        kv = int(min(batch_size, len(ids)) * longest * per_token)
        try:
            uids = gen.insert(ids, [max_tokens] * len(ids))
            seqs = {u: _Sequence(i, len(ids[i]), tok.detokenizer()) for i, u in enumerate(uids)}
            with wired_limit(model, kv):
                yield from self._run(gen, seqs, cancel)
        finally:
            del gen
            mx.clear_cache()

    def _run(self, gen, seqs: dict[int, _Sequence], cancel) -> Iterator[tuple[int, Event]]:
        eos = self.engine.tokenizer.eos_id
        left = set(seqs)
        started: set[int] = set()
        while left:
            if cancel is not None and cancel.is_set():
                for uid in sorted(started & left, key=lambda u: seqs[u].index):
                    yield seqs[uid].index, seqs[uid].stats("cancelled")
                return
            with gen.stats() as step:
                began = time.perf_counter()
                prompt_responses, generation_responses = gen.next()
                wall = time.perf_counter() - began
            reading = [r.uid for r in prompt_responses]
            decoding = [r.uid for r in generation_responses]
            prefill_s = step.prompt_time if reading else 0.0
            decode_s = max(wall - prefill_s, 0.0) if decoding else 0.0
            if not decoding:
                prefill_s = wall
            for uid in reading:
                seqs[uid].prefill_s += prefill_s / len(reading)
            for uid in decoding:
                seqs[uid].decode_s += decode_s / len(decoding)
            for r in prompt_responses:
                started.add(r.uid)
                done, total = r.progress if isinstance(r.progress, tuple) else (0, 0)
                if total:
                    yield seqs[r.uid].index, PrefillProgress(done, total)
            for r in generation_responses:
                s = seqs[r.uid]
                started.add(r.uid)
                if r.token != eos:
                    s.generated += 1
                    text = s.detokenizer.add(r.token)
                    if text:
                        yield s.index, TextChunk(text)
                if r.finish_reason is not None:
                    rest = s.detokenizer.flush()
                    if rest:
                        yield s.index, TextChunk(rest)
                    left.discard(r.uid)
                    yield s.index, s.stats("stop" if r.token == eos else "length")
