"""The OpenAI dialect: /v1/models, /v1/chat/completions and /v1/completions (stream or not).

Streams are server-sent events ending in `data: [DONE]`; usage carries
prompt_tokens_details.cached_tokens (the prompt tokens the KV cache already held).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.events import GenerationStats
from engine.sampling import SamplingSettings
from engine.serve.bridge import JobStream
from engine.serve.errors import ApiError, Dialect
from engine.serve.exchange import JobAnswer, JobResponse, dumps, read_json
from engine.serve.params import chat_messages, number, sampling_of, text_of
from engine.serve.state import ApiState
from engine.serve.work import ApiGeneration

OWNER = "nemo-chat"
# Fields we cannot honour: refused (400) rather than silently ignored.
_REFUSED = ("logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction")


def _state(request: Request) -> ApiState:
    return request.app.state.api


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": OWNER}


async def list_models(request: Request) -> JSONResponse:
    state = _state(request)
    data = [_model_card(state.model_name)] if state.service.info is not None else []
    return JSONResponse({"object": "list", "data": data})


async def get_model(request: Request) -> JSONResponse:
    name = _state(request).check_model(request.path_params["model"])
    return JSONResponse(_model_card(name))


def _sampling(data: dict[str, Any]) -> tuple[SamplingSettings, int | None]:
    for key in _REFUSED:
        if data.get(key):
            raise ApiError(400, f"{key} is not supported by this server", param=key)
    number(data, "n", 1, 1, integer=True)  # one choice per request
    fmt = data.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise ApiError(400, "only the text response_format is supported", param="response_format")
    if data.get("tools") and data.get("tool_choice") != "none":
        raise ApiError(400, "tools are not supported by this server", param="tools")
    max_tokens = number(data, "max_completion_tokens", 1, 10**7, integer=True)
    if max_tokens is None:
        max_tokens = number(data, "max_tokens", 1, 10**7, integer=True)
    settings = sampling_of(data, 2**64 - 1)
    repetition = number(data, "repetition_penalty", 0.01, 10)  # mlx-lm's extension
    settings = replace(settings, repetition_penalty=repetition)
    if settings.seed is not None:  # mx.random.seed takes an unsigned 64-bit value
        settings = replace(settings, seed=settings.seed % 2**64)
    return settings, max_tokens


def _usage(stats: GenerationStats) -> dict[str, Any]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens + stats.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": stats.reused_tokens},
    }


def _finish_reason(stats: GenerationStats) -> str:
    return "length" if stats.finish_reason == "length" else "stop"


def _spec(state: ApiState, data: dict[str, Any], **what: Any) -> ApiGeneration:
    sampling, max_tokens = _sampling(data)
    cfg = state.config
    return ApiGeneration(
        sampling=sampling,
        max_tokens=max_tokens,
        num_ctx=cfg.num_ctx,
        kv_bits=cfg.kv_bits,
        default_max_tokens=cfg.default_max_tokens,
        **what,
    )


class _Answer(JobAnswer):
    """One job's answer in OpenAI's shape: `piece(text, reason)` is one choice of a chunk
    (delta or text), `whole(text, reason)` the choice of a non-streamed answer; streamed as
    server-sent events."""

    dialect: Dialect = "openai"
    content_type = "text/event-stream; charset=utf-8"
    end = b"data: [DONE]\n\n"

    def __init__(
        self,
        stream: JobStream,
        spec: ApiGeneration,
        base: dict[str, Any],
        piece: Callable[[str | None, str | None], dict[str, Any]],
        whole: Callable[[str, str], dict[str, Any]],
        chunk_object: str,
    ):
        super().__init__(stream, spec.max_tokens)
        self.base, self.piece, self.whole = base, piece, whole
        self.chunk_object = chunk_object
        self.include_usage = False

    def chunk(self, choice: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
        head = {**self.base, "object": self.chunk_object}
        if self.include_usage:
            head["usage"] = None
        return {**head, "choices": [choice] if choice else [], **extra}

    def frame(self, data: dict[str, Any]) -> bytes:
        return b"data: " + dumps(data) + b"\n\n"

    def on_open(self) -> list[dict[str, Any]]:
        return [self.chunk(self.piece("", None))]  # the role comes first, as OpenAI sends it

    def on_text(self, text: str) -> list[dict[str, Any]]:
        return [self.chunk(self.piece(text, None))]

    def on_finished(self, stats: GenerationStats) -> list[dict[str, Any]]:
        chunks = [self.chunk(self.piece(None, _finish_reason(stats)))]
        if self.include_usage:
            chunks.append(self.chunk(None, usage=_usage(stats)))
        return chunks

    def on_stopped(self) -> list[dict[str, Any]]:
        return [self.chunk(self.piece(None, "stop"))]  # stopped before it started (shutdown)

    def body_of(self, text: str, stats: GenerationStats) -> dict[str, Any]:
        choice = self.whole(text, _finish_reason(stats))
        return {**self.base, "choices": [choice], "usage": _usage(stats)}


async def chat_completions(request: Request) -> JobResponse:
    state = _state(request)
    data = await read_json(request, state.config.max_body_bytes)
    name = state.check_model(data.get("model"))
    spec = _spec(state, data, messages=chat_messages(data.get("messages"), ("tool_calls",)))
    stream = state.jobs.submit(spec)
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": None,
    }

    def piece(text: str | None, reason: str | None) -> dict[str, Any]:
        delta = {} if text is None else {"content": text}
        if text == "" and reason is None:
            delta = {"role": "assistant", "content": ""}
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}

    def whole(text: str, reason: str) -> dict[str, Any]:
        message = {"role": "assistant", "content": text, "refusal": None}
        return {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}

    answer = _Answer(stream, spec, base, piece, whole, "chat.completion.chunk")
    return _respond(answer, data)


async def completions(request: Request) -> JobResponse:
    state = _state(request)
    data = await read_json(request, state.config.max_body_bytes)
    name = state.check_model(data.get("model"))
    for key in ("echo", "suffix"):
        if data.get(key):
            raise ApiError(400, f"{key} is not supported by this server", param=key)
    number(data, "best_of", 1, 1, integer=True)
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt must be a string", param="prompt")
    spec = _spec(state, data, prompt=text_of(prompt, "prompt"))
    stream = state.jobs.submit(spec)
    base = {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": None,
    }

    def choice(text: str | None, reason: str | None) -> dict[str, Any]:
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}

    return _respond(_Answer(stream, spec, base, choice, choice, "text_completion"), data)


def _respond(answer: _Answer, data: dict[str, Any]) -> JobResponse:
    options = data.get("stream_options") or {}
    answer.include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    return answer.response(streamed=bool(data.get("stream")))


def routes() -> list[Route]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ]
