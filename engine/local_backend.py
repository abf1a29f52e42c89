"""The local MLX backend: a loaded Engine and the KV caches of its conversations.

Runs on the engine thread only (DESIGN rule 1). Each conversation key has its own KV cache in
a CacheStore (memory LRU + disk snapshots), so switching chats keeps both caches and a restart
resumes them; summaries use scratch sessions outside the store that never evict a chat's.
"""

from __future__ import annotations

import gc
import platform
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from engine.backend import (
    MAX_CONTEXT,
    ChatRequest,
    CompletionRequest,
    GenerateFn,
    GenerationOptions,
    ModelInfo,
)
from engine.cache_snapshot import SnapshotIdentity
from engine.cache_store import CacheSettings, CacheStore
from engine.config import ModelConfig
from engine.events import Event
from engine.memory import cache_budget
from engine.runtime import Engine, load
from engine.session import ChatSession
from engine.tokenizer import TekkenTokenizer

_DTYPE_LABELS = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def model_name(model_dir: Path) -> str:
    """The folder name; for a Hugging Face cache snapshot, the repository name."""
    if model_dir.parent.name == "snapshots" and model_dir.parent.parent.name.startswith("models--"):
        return model_dir.parent.parent.name.split("--")[-1]
    return model_dir.name


def quantization_label(config: ModelConfig) -> str:
    if config.quantization:
        return f"{config.quantization['bits']}-bit g{config.quantization['group_size']}"
    return _DTYPE_LABELS.get(config.torch_dtype, config.torch_dtype)


def this_machine() -> str:
    return "this Mac" if platform.system() == "Darwin" else "this computer"


def local_model_info(eng: Engine) -> ModelInfo:
    config = eng.config
    return ModelInfo(
        name=model_name(Path(eng.model_dir)),
        location=this_machine(),
        local=True,
        path=str(eng.model_dir),
        num_parameters=config.num_parameters,
        weights_bytes=eng.weights_bytes,
        quantization=quantization_label(config),
        max_context=min(config.max_position_embeddings, MAX_CONTEXT),
        tekken=True,
        config=config,
    )


class LocalBackend:
    """The MLX engine behind the Backend protocol (engine.backend).

    caches: where and how much to keep (CacheSettings); None keeps caches in memory only and
    writes nothing (tests, scripts). `backend.caches` is the CacheStore (usage(), clear(),
    configure() for Settings)."""

    def __init__(self, eng: Engine, caches: CacheSettings | None = None):
        self.engine = eng
        self._info = local_model_info(eng)
        tokenizer_path = getattr(eng.tokenizer, "path", None)
        identity = SnapshotIdentity.of(eng.model_dir, tokenizer_path)
        self.caches = CacheStore(identity, eng.config, caches or CacheSettings(enabled=False))

    @classmethod
    def load(
        cls,
        path: str | Path,
        on_progress: Callable[[int, int], None] | None = None,
        caches: CacheSettings | None = None,
    ) -> LocalBackend:
        return cls(load(path, on_progress), caches)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def token_counter(self) -> TekkenTokenizer:
        return self.engine.tokenizer

    def _new_session(self, options: GenerationOptions) -> ChatSession:
        """A session for `options` (checked against memory); sets the idle caches' budget."""
        session = ChatSession(self.engine, num_ctx=options.num_ctx, kv_bits=options.kv_bits)
        self.caches.set_plan_budget(cache_budget(session.memory_plan))
        return session

    def session(self, key: str, options: GenerationOptions) -> ChatSession:
        """The conversation's session, its cache taken from the store (memory or disk)."""
        session = self._new_session(options)
        session.adopt(self.caches.take(key, options.kv_bits))
        return session

    def chat(self, request: ChatRequest, cancel: threading.Event) -> Iterator[Event]:
        messages, sampling = request.as_dicts(), request.options.sampling
        if request.key is not None:
            session = self.session(request.key, request.options)
            key = request.key
        else:  # a stateless client: the cached entry with the longest common prefix
            session = self._new_session(request.options)
            ids, _ = session.fit(messages, sampling.max_tokens)
            key = self._adopt_nearest(session, ids, request.options.kv_bits)
        return self._served(key, session.chat(messages, sampling, cancel))

    def complete(self, request: CompletionRequest, cancel: threading.Event) -> Iterator[Event]:
        tok = self.engine.tokenizer
        ids = [tok.bos_id, *tok.encode(request.prompt)]
        session = self._new_session(request.options)
        events = session.generate_ids(ids, request.options.sampling, cancel)  # checks first
        key = self._adopt_nearest(session, ids, request.options.kv_bits)
        return self._served(key, events)

    def _adopt_nearest(self, session: ChatSession, ids: list[int], kv_bits: int | None) -> str:
        key, state = self.caches.take_nearest(ids, kv_bits)
        session.adopt(state)
        return key

    def _served(self, key: str, events: Iterator[Event]) -> Iterator[Event]:
        try:
            yield from events
        finally:
            self.caches.done(key)

    def generate_fn(self, options: GenerationOptions) -> GenerateFn:
        # Scratch: outside the store, so a summary never evicts or snapshots a chat's cache.
        scratch = ChatSession(self.engine, num_ctx=options.num_ctx, kv_bits=options.kv_bits)

        def generate(
            messages: list[dict[str, str]], max_tokens: int, cancel: threading.Event | None
        ) -> Iterator[Event]:
            sampling = replace(options.sampling, max_tokens=max_tokens)
            return scratch.chat(messages, sampling, cancel)

        return generate

    def batch_generate_fn(self, options: GenerationOptions):  # -> engine.docs.batch.LocalBatch
        """Batched model calls for the map step of long documents (engine.docs.batch)."""
        from engine.docs.batch import LocalBatch

        return LocalBatch(self.engine, options)

    def forget(self, key: str) -> None:
        """A conversation was deleted: its memory cache and its snapshot."""
        self.caches.forget(key)

    def recover(self) -> None:
        """After a failed answer the active cache may hold half a chunk: start it afresh."""
        self.caches.recover()

    def idle(self) -> None:
        """The engine thread has nothing to do: snapshot conversations idle for a while."""
        self.caches.idle()

    def close(self) -> None:
        """Write the snapshots of what changed, then free memory."""
        self.caches.close()
        gc.collect()
        import mlx.core as mx

        mx.clear_cache()
