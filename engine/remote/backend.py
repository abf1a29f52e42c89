"""RemoteBackend: the Backend seam (engine.backend) over an OpenAI-compatible server.

Yields the same events as the local engine: ContextTrimmed?, PrefillProgress* (when the server
reports it), TextChunk*, one Finished whose stats hold the server's usage numbers (when given)
and the time to first token and decode tok/s as this client measured them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from engine.backend import (
    MAX_CONTEXT,
    ChatRequest,
    CompletionRequest,
    GenerateFn,
    GenerationOptions,
    ModelInfo,
)
from engine.events import (
    ContextTrimmed,
    Event,
    Finished,
    GenerationStats,
    PrefillProgress,
    TextChunk,
)
from engine.remote.budget import BudgetCounter, fit_messages
from engine.remote.client import Progress, RemoteClient
from engine.remote.config import RemoteConfig, RemoteModel, is_nemo
from engine.remote.errors import RemoteError
from engine.sampling import SamplingSettings
from engine.session import ContextOverflow

log = logging.getLogger(__name__)

NEMO_CHAT_OWNER = "nemo-chat"  # another Nemo Chat's `nemo serve` (engine.serve): always Nemo


def list_models(config: RemoteConfig) -> list[RemoteModel]:
    """The server's models for a picker (any thread; blocks up to config.timeout).
    Raises RemoteError (unreachable, TLS, 401/403, ...) with a one-line message."""
    client = RemoteClient(config)
    try:
        return client.list_models()
    finally:
        client.close()


def _pick(config: RemoteConfig, models: list[RemoteModel]) -> RemoteModel | None:
    if config.model:
        return next((m for m in models if m.id == config.model), RemoteModel(config.model))
    if not models:
        return None  # the server's default model (mlx_lm.server with no HF cache, ...)
    return next((m for m in models if is_nemo(m.id)), models[0])


def remote_model_info(config: RemoteConfig, model: RemoteModel | None, tekken: bool) -> ModelInfo:
    name = model.id if model is not None else "the server's model"
    known = model.max_context if model is not None else None
    return ModelInfo(
        name=name.rstrip("/").rsplit("/", 1)[-1] if name.startswith("/") else name,  # a folder
        location=f"the server at {config.server}",
        local=False,
        path=config.api_root,
        max_context=known or (MAX_CONTEXT if tekken else None),
        tekken=tekken,
    )


class RemoteBackend:
    """An OpenAI-compatible server behind the Backend protocol. Engine thread only."""

    def __init__(self, config: RemoteConfig, model: RemoteModel | None = None):
        from engine.tokenizer import load_tokenizer

        self.config = config
        self.model = model
        self.client = RemoteClient(config)
        nemo = model is not None and (is_nemo(model.id) or model.owned_by == NEMO_CHAT_OWNER)
        tekken = config.tokenizer == "tekken" or (config.tokenizer == "auto" and nemo)
        self.counter = BudgetCounter(load_tokenizer(None), exact=tekken)
        self._info = remote_model_info(config, model, tekken)

    @classmethod
    def connect(cls, config: RemoteConfig) -> RemoteBackend:
        """Check that the server answers (and accepts the key); pick the model. Raises RemoteError."""
        models = list_models(config)
        if config.model and models and all(m.id != config.model for m in models):
            names = ", ".join(m.id for m in models[:8])
            raise RemoteError(
                f"The server at {config.server} has no model {config.model!r} (it has: {names})",
                "not_found",
                404,
            )
        return cls(config, _pick(config, models))

    @property
    def info(self) -> ModelInfo:
        return self._info

    def token_counter(self) -> BudgetCounter:
        return self.counter

    def num_ctx(self, options: GenerationOptions) -> int:
        """num_ctx, bounded by the context the server reports for the model."""
        limit = self._info.max_context
        return min(options.num_ctx, limit) if limit else options.num_ctx

    # --- answers ---

    def chat(self, request: ChatRequest, cancel: threading.Event) -> Iterator[Event]:
        sampling = request.options.sampling
        num_ctx = self.num_ctx(request.options)
        messages, dropped, prompt_tokens = fit_messages(
            request.as_dicts(), self.counter, num_ctx, sampling.max_tokens
        )
        body = self._body(sampling) | {"messages": messages}
        events = self._answer("/chat/completions", body, prompt_tokens, cancel, messages)
        if dropped:
            return _prepend(ContextTrimmed(dropped, prompt_tokens, num_ctx), events)
        return events

    def complete(self, request: CompletionRequest, cancel: threading.Event) -> Iterator[Event]:
        sampling = request.options.sampling
        num_ctx = self.num_ctx(request.options)
        prompt_tokens = self.counter.count_tokens(request.prompt) + 1  # BOS
        if prompt_tokens + sampling.max_tokens > num_ctx:
            raise ContextOverflow(prompt_tokens, num_ctx, sampling.max_tokens)
        body = self._body(sampling) | {"prompt": request.prompt}
        return self._answer("/completions", body, prompt_tokens, cancel, None)

    def generate_fn(self, options: GenerationOptions) -> GenerateFn:
        """Summaries: each call a one-shot chat; the server keeps no state of ours."""

        def generate(
            messages: list[dict[str, str]], max_tokens: int, cancel: threading.Event | None
        ) -> Iterator[Event]:
            sampling = replace(options.sampling, max_tokens=max_tokens)
            request = ChatRequest(
                tuple(_message(m) for m in messages), replace(options, sampling=sampling)
            )
            return self.chat(request, cancel or threading.Event())

        return generate

    def forget(self, key: str) -> None:
        """The server keeps no conversation of ours."""

    def close(self) -> None:
        self.client.close()

    # --- the stream ---

    def _body(self, sampling: SamplingSettings) -> dict[str, Any]:
        body: dict[str, Any] = {
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if self.model is not None:
            body["model"] = self.model.id
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.repetition_penalty is not None:
            body["repetition_penalty"] = sampling.repetition_penalty  # vLLM, mlx_lm, llama.cpp
        stop = getattr(sampling, "stop", None)
        if stop:
            body["stop"] = list(stop)
        return body

    def _answer(
        self,
        path: str,
        body: dict[str, Any],
        prompt_tokens: int,
        cancel: threading.Event,
        messages: list[dict[str, str]] | None,
    ) -> Iterator[Event]:
        start = time.perf_counter()
        first = last = None
        chunks = 0
        usage: dict[str, Any] = {}
        reason: str | None = None
        for item in self.client.stream(path, body, cancel):
            if isinstance(item, Progress):
                yield PrefillProgress(item.done, item.total)
                continue
            if isinstance(item.get("usage"), dict):
                usage = item["usage"]
            for choice in item.get("choices") or []:
                text = _text_of(choice)
                if text:
                    last = time.perf_counter()
                    first = first or last
                    chunks += 1
                    yield TextChunk(text)
                reason = choice.get("finish_reason") or reason
        if cancel.is_set():
            reason = "cancelled"
        elif reason is None:
            raise self.client.cut()  # the stream ended without saying why: it was cut
        if messages is not None and isinstance(usage.get("prompt_tokens"), int):
            self.counter.observe(messages, usage["prompt_tokens"])
        yield Finished(_stats(usage, prompt_tokens, chunks, start, first, last, reason))


def _stats(
    usage: dict[str, Any],
    prompt_tokens: int,
    chunks: int,
    start: float,
    first: float | None,
    last: float | None,
    reason: str,
) -> GenerationStats:
    """Server-side counts where the usage gives them, client-side times (TTFT, decode tok/s)."""
    now = time.perf_counter()
    prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else None
    prompt = prompt if prompt is not None else prompt_tokens
    generated = usage.get("completion_tokens")
    generated = generated if isinstance(generated, int) else chunks
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    reused = cached if isinstance(cached, int) and 0 <= cached <= prompt else 0
    ttft = (first or now) - start
    decode_s = (last or now) - (first or now)
    return GenerationStats(
        prompt_tokens=prompt,
        reused_tokens=reused,
        prefilled_tokens=prompt - reused,
        generated_tokens=generated,
        ttft_s=ttft,
        prefill_tps=(prompt - reused) / ttft if ttft > 0 else 0.0,
        decode_tps=(generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
        peak_memory_bytes=0,  # the server's memory is not ours to see
        finish_reason=reason if reason in ("length", "cancelled") else "stop",
    )


def _text_of(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content")
        return content if isinstance(content, str) else ""
    text = choice.get("text")  # /v1/completions
    return text if isinstance(text, str) else ""


def _message(m: dict[str, str]):
    from engine.backend import Message

    return Message(str(m["role"]), str(m["content"]))


def _prepend(event: Event, events: Iterator[Event]) -> Iterator[Event]:
    yield event
    yield from events
