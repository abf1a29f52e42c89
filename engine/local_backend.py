"""The local MLX backend: a loaded Engine and the KV caches of its conversations.

Runs on the engine thread only (DESIGN rule 1). Each conversation key gets its own ChatSession,
so switching chats keeps both caches; summaries use scratch sessions that never evict a chat's.
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
from engine.config import ModelConfig
from engine.events import Event
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
    """The MLX engine behind the Backend protocol (engine.backend)."""

    def __init__(self, eng: Engine):
        self.engine = eng
        self._info = local_model_info(eng)
        self._sessions: dict[str | None, ChatSession] = {}

    @classmethod
    def load(
        cls, path: str | Path, on_progress: Callable[[int, int], None] | None = None
    ) -> LocalBackend:
        return cls(load(path, on_progress))

    @property
    def info(self) -> ModelInfo:
        return self._info

    def token_counter(self) -> TekkenTokenizer:
        return self.engine.tokenizer

    def session(self, key: str | None, options: GenerationOptions) -> ChatSession:
        """The conversation's session, configured for `options` (checked against memory)."""
        session = self._sessions.get(key)
        if session is None:
            session = ChatSession(self.engine, num_ctx=options.num_ctx, kv_bits=options.kv_bits)
            self._sessions[key] = session
        else:
            session.set_num_ctx(options.num_ctx)
            session.set_kv_bits(options.kv_bits)
        return session

    def chat(self, request: ChatRequest, cancel: threading.Event) -> Iterator[Event]:
        session = self.session(request.key, request.options)
        return session.chat(request.as_dicts(), request.options.sampling, cancel)

    def complete(self, request: CompletionRequest, cancel: threading.Event) -> Iterator[Event]:
        tok = self.engine.tokenizer
        ids = [tok.bos_id, *tok.encode(request.prompt)]
        session = self.session(None, request.options)
        return session.generate_ids(ids, request.options.sampling, cancel)

    def generate_fn(self, options: GenerationOptions) -> GenerateFn:
        scratch = ChatSession(self.engine, num_ctx=options.num_ctx, kv_bits=options.kv_bits)

        def generate(
            messages: list[dict[str, str]], max_tokens: int, cancel: threading.Event | None
        ) -> Iterator[Event]:
            sampling = replace(options.sampling, max_tokens=max_tokens)
            return scratch.chat(messages, sampling, cancel)

        return generate

    def forget(self, key: str) -> None:
        self._sessions.pop(key, None)

    def recover(self) -> None:
        """After a failed answer a cache may hold half a chunk: start every session afresh."""
        for session in self._sessions.values():
            session.reset()

    def close(self) -> None:
        self._sessions.clear()
        gc.collect()
        import mlx.core as mx

        mx.clear_cache()
