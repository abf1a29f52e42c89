"""One conversation's KV cache across turns: prefix reuse, the num_ctx budget, honest overflow.

Each turn encodes the whole chat, keeps the longest common token prefix with what the cache
holds, trims the cache back to it and prefills only the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from mlx_lm.models.cache import QuantizedKVCache, can_trim_prompt_cache, trim_prompt_cache
from mlx_lm.utils import common_prefix_len

from engine.events import ContextTrimmed, Event
from engine.generate import stream_tokens
from engine.sampling import SamplingSettings, prefill_step_for

if TYPE_CHECKING:
    from engine import Engine

KV_GROUP_SIZE = 64


class ContextOverflow(Exception):
    """The newest message alone does not fit in num_ctx (a large document, say)."""

    def __init__(self, prompt_tokens: int, num_ctx: int, max_tokens: int):
        self.prompt_tokens, self.num_ctx, self.max_tokens = prompt_tokens, num_ctx, max_tokens
        super().__init__(
            f"The message needs {prompt_tokens:,} tokens plus room for a {max_tokens:,}-token "
            f"answer, but the context is {num_ctx:,} tokens. Summarize the document instead, "
            f"or raise the context length to at least {prompt_tokens + max_tokens:,}."
        )


def split_exchanges(
    messages: list[dict[str, str]],
) -> tuple[list[dict[str, str]], list[list[dict[str, str]]]]:
    """System messages, and the rest grouped into exchanges that each start with a user message."""
    system = [m for m in messages if m["role"] == "system"]
    exchanges: list[list[dict[str, str]]] = []
    for m in messages:
        if m["role"] == "system":
            continue
        # A stopped answer with no text says nothing; the chat format rejects it.
        if m["role"] == "assistant" and not m["content"].strip():
            continue
        if m["role"] == "user" or not exchanges:
            exchanges.append([])
        exchanges[-1].append(m)
    return system, exchanges


def _flat(exchanges: list[list[dict[str, str]]]) -> list[dict[str, str]]:
    return list(chain.from_iterable(exchanges))


@dataclass
class CacheState:
    """What a conversation keeps between turns; engine.cache_store holds these per key."""

    cache: list[Any] | None = None
    tokens: list[int] = field(default_factory=list)  # exactly what the cache holds
    skip: int = 0  # exchanges left out last turn: keeps the prefix stable at capacity

    def clear(self) -> None:
        self.cache, self.tokens, self.skip = None, [], 0

    def kv_bits(self) -> int | None:
        """The cache's KV precision (None: fp or no cache)."""
        first = self.cache[0] if self.cache else None
        return first.bits if isinstance(first, QuantizedKVCache) else None

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.cache) if self.cache else 0


def fit_chat(
    messages: list[dict[str, str]],
    encode_chat: Callable[[list[dict[str, str]]], list[int]],
    num_ctx: int,
    max_tokens: int,
    skip_from: int = 0,
) -> tuple[list[int], list[dict[str, str]], int, int]:
    """What of the chat fits num_ctx: (token ids, the messages kept, how many were left out,
    exchanges skipped). Whole exchanges go, oldest first; the system prompt and the newest
    message stay. Dropping a quarter of num_ctx more than needed keeps the prefix stable for
    later turns; `skip_from`: the exchanges left out last turn, which stay out.
    Raises ContextOverflow when the newest exchange alone cannot fit."""
    system, exchanges = split_exchanges(messages)
    if not exchanges:
        raise ValueError("the chat has no user message")
    budget = num_ctx - max_tokens
    kept = system + _flat(exchanges)
    ids = encode_chat(kept)
    if len(ids) <= budget:
        return ids, kept, 0, 0
    newest = system + exchanges[-1]
    newest_ids = encode_chat(newest)
    if len(newest_ids) > budget:
        raise ContextOverflow(len(newest_ids), num_ctx, max_tokens)
    target = budget - num_ctx // 4
    skip = min(skip_from, len(exchanges) - 1)
    kept = system + _flat(exchanges[skip:])
    ids = encode_chat(kept)
    while skip < len(exchanges) - 1 and (
        len(ids) > budget or (skip > skip_from and len(ids) > target)
    ):
        skip += 1
        kept = system + _flat(exchanges[skip:])
        ids = encode_chat(kept)
    if len(ids) > budget:  # only possible when the last step left just the newest exchange
        ids, kept = newest_ids, newest
    return ids, kept, sum(len(x) for x in exchanges[:skip]), skip


class ChatSession:
    def __init__(
        self,
        engine: Engine,
        num_ctx: int = 8192,
        kv_bits: int | None = None,
        prefill_step: int | None = None,
        available_bytes: int | None = None,
        state: CacheState | None = None,
    ):
        self.engine = engine
        self._prefill_step = prefill_step
        self.available_bytes = available_bytes
        self.num_ctx, self.kv_bits = self._checked(num_ctx, kv_bits)
        self.state = CacheState()
        if state is not None:
            self.adopt(state)

    # The state's fields, under the names this class has always used.
    _cache = property(lambda s: s.state.cache, lambda s, v: setattr(s.state, "cache", v))
    _tokens = property(lambda s: s.state.tokens, lambda s, v: setattr(s.state, "tokens", v))
    _skip = property(lambda s: s.state.skip, lambda s, v: setattr(s.state, "skip", v))

    def adopt(self, state: CacheState) -> None:
        """Continue from a stored state (shared, updated in place); one that cannot serve this
        session's num_ctx or KV bits is cleared."""
        self.state = state
        if state.cache is not None and (
            state.kv_bits() != self.kv_bits or len(state.tokens) > self.num_ctx
        ):
            state.clear()

    def _step_for(self, kv_bits: int | None) -> int:
        return self._prefill_step or prefill_step_for(kv_bits)

    @property
    def prefill_step(self) -> int:
        return self._step_for(self.kv_bits)

    @property
    def tokens(self) -> list[int]:
        return list(self._tokens)

    def _checked(self, num_ctx: int, kv_bits: int | None) -> tuple[int, int | None]:
        from engine.memory import activation_dtype_bytes, check

        if kv_bits not in (None, 4, 8):
            raise ValueError(f"kv_bits must be None, 8 or 4, got {kv_bits}")
        if num_ctx < 256:
            raise ValueError(f"num_ctx must be at least 256 tokens, got {num_ctx}")
        e = self.engine
        self.memory_plan = check(
            e.config,
            e.weights_bytes,
            num_ctx,
            kv_bits,
            dtype_bytes=activation_dtype_bytes(),
            prefill_step=self._step_for(kv_bits),
            available=self.available_bytes,
        )
        return num_ctx, kv_bits

    def set_num_ctx(self, num_ctx: int) -> None:
        """Change the budget without reloading weights; drops the cache if it no longer fits."""
        self.num_ctx, _ = self._checked(num_ctx, self.kv_bits)
        if len(self._tokens) > num_ctx:
            self.reset()

    def set_kv_bits(self, kv_bits: int | None) -> None:
        _, kv_bits = self._checked(self.num_ctx, kv_bits)
        if kv_bits != self.kv_bits:
            self.kv_bits = kv_bits
            self.reset()  # a cache of another precision cannot be reused

    def reset(self) -> None:
        self.state.clear()

    def _make_cache(self) -> list[Any]:
        model = self.engine.model
        if self.kv_bits is None or model.config.sliding_window:
            return model.make_cache()
        return [QuantizedKVCache(group_size=KV_GROUP_SIZE, bits=self.kv_bits) for _ in model.layers]

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        system, exchanges = split_exchanges(messages)
        return len(self.engine.tokenizer.encode_chat(system + _flat(exchanges)))

    def fit(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[list[int], int]:
        """Token ids of the chat, and how many messages were left out to fit num_ctx
        (fit_chat; the exchanges left out last turn stay out, so the prefix stays stable)."""
        ids, _, dropped, self._skip = fit_chat(
            messages, self.engine.tokenizer.encode_chat, self.num_ctx, max_tokens, self._skip
        )
        return ids, dropped

    def chat(
        self,
        messages: list[dict[str, str]],
        settings: SamplingSettings = SamplingSettings(),
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Answer the chat, reusing the cached prefix; raises ContextOverflow before any work."""
        ids, dropped = self.fit(messages, settings.max_tokens)
        return self._run(ids, dropped, settings, cancel)

    def generate_ids(
        self,
        ids: list[int],
        settings: SamplingSettings = SamplingSettings(),
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Raw completion of exactly `ids` (no chat template), reusing the cached prefix.

        Raises ContextOverflow before any work when the prompt and the answer cannot fit."""
        if not ids:
            raise ValueError("empty prompt: at least one token is needed")
        if len(ids) + settings.max_tokens > self.num_ctx:
            raise ContextOverflow(len(ids), self.num_ctx, settings.max_tokens)
        return self._run(list(ids), 0, settings, cancel)

    def _run(
        self,
        ids: list[int],
        dropped: int,
        settings: SamplingSettings,
        cancel: threading.Event | None,
    ) -> Iterator[Event]:
        if dropped:
            yield ContextTrimmed(dropped, len(ids), self.num_ctx)
        if self._cache is None:
            self._cache, self._tokens = self._make_cache(), []
        # At least one token must be fed to get logits, even when the whole prompt is cached.
        common = min(common_prefix_len(self._tokens, ids), len(ids) - 1)
        excess = len(self._tokens) - common
        if excess and (
            not can_trim_prompt_cache(self._cache)
            or trim_prompt_cache(self._cache, excess) != excess
        ):
            self._cache, common = self._make_cache(), 0
        del self._tokens[common:]
        try:
            yield from stream_tokens(
                self.engine.model,
                self.engine.tokenizer,
                ids[common:],
                self._cache,
                settings,
                cancel,
                fed=self._tokens,
                reused_tokens=common,
                prefill_step=self.prefill_step,
            )
        except Exception:
            self.reset()  # an MLX error may leave a half-written chunk in the cache
            raise
        finally:
            # Closed early (GeneratorExit) or done: keep the cache only if it matches `tokens`.
            if self._cache is not None and self._cache[0].offset != len(self._tokens):
                self.reset()
