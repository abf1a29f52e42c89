"""The Ollama dialect: /api/version, /api/tags, /api/show, /api/ps, /api/chat, /api/generate.

Answers stream as NDJSON by default (`"stream": false` gives one object); the last object
carries the counters Ollama clients read (prompt_eval_count, eval_count, durations in ns).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.backend import Message, ModelInfo
from engine.events import GenerationStats
from engine.sampling import SamplingSettings
from engine.serve.bridge import JobStream
from engine.serve.errors import ApiError, Dialect
from engine.serve.exchange import JobAnswer, JobResponse, dumps, read_json
from engine.serve.naming import parameter_size, quant_tag
from engine.serve.params import chat_messages, number, sampling_of
from engine.serve.state import ApiState
from engine.serve.work import ApiGeneration

VERSION = "0.12.0"  # the Ollama API level these routes follow (clients check it)
NDJSON = "application/x-ndjson"


def _state(request: Request) -> ApiState:
    return request.app.state.api


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _modified_at(info: ModelInfo) -> str:
    try:
        mtime = os.path.getmtime(os.path.join(info.path, "config.json"))
    except OSError:
        return _now()
    return datetime.fromtimestamp(mtime, timezone.utc).isoformat().replace("+00:00", "Z")


def _details(info: ModelInfo) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "mlx",
        "family": "llama",  # Ollama files Mistral Nemo under the llama architecture
        "families": ["llama"],
        "parameter_size": parameter_size(info),
        "quantization_level": quant_tag(info).upper(),
    }


def _digest(name: str, info: ModelInfo) -> str:
    return hashlib.sha256(f"{name}\0{info.path}\0{info.weights_bytes}".encode()).hexdigest()


def _entry(state: ApiState) -> dict[str, Any]:
    info, name = state.info(), state.model_name
    return {
        "name": name,
        "model": name,
        "modified_at": _modified_at(info),
        "size": info.weights_bytes,
        "digest": _digest(name, info),
        "details": _details(info),
    }


async def version(request: Request) -> JSONResponse:
    return JSONResponse({"version": VERSION})


async def tags(request: Request) -> JSONResponse:
    state = _state(request)
    models = [_entry(state)] if state.service.info is not None else []
    return JSONResponse({"models": models})


async def ps(request: Request) -> JSONResponse:
    state = _state(request)
    if state.service.info is None:
        return JSONResponse({"models": []})
    entry = _entry(state)
    entry.pop("modified_at")
    entry.update(
        expires_at="2318-01-01T00:00:00Z",  # kept loaded while the app runs
        size_vram=entry["size"],
        context_length=state.config.num_ctx,
    )
    return JSONResponse({"models": [entry]})


async def show(request: Request) -> JSONResponse:
    state = _state(request)
    data = await read_json(request, state.config.max_body_bytes)
    state.check_model(data.get("model") or data.get("name"))
    info = state.info()
    model_info: dict[str, Any] = {
        "general.architecture": "llama",
        "general.parameter_count": info.num_parameters,
        "llama.context_length": info.max_context or 0,
    }
    if info.config is not None:
        c = info.config
        model_info.update(
            {
                "llama.block_count": c.num_hidden_layers,
                "llama.embedding_length": c.hidden_size,
                "llama.attention.head_count": c.num_attention_heads,
                "llama.attention.head_count_kv": c.num_key_value_heads,
            }
        )
    return JSONResponse(
        {
            "modelfile": f"FROM {info.path}\n",
            "parameters": f"num_ctx {state.config.num_ctx}\ntemperature {SamplingSettings().temperature}",
            "template": "[INST] {{ .Prompt }} [/INST]",
            "details": _details(info),
            "model_info": model_info,
            "capabilities": ["completion"],
            "modified_at": _modified_at(info),
        }
    )


def _spec(state: ApiState, data: dict[str, Any], **what: Any) -> ApiGeneration:
    for key in ("format", "tools", "images"):
        if data.get(key):
            raise ApiError(400, f"{key} is not supported by this server")
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "options must be an object")
    cfg = state.config
    predict = number(options, "num_predict", -2, 10**7, integer=True)
    num_ctx = number(options, "num_ctx", 256, 1 << 20, integer=True)
    repeat = number(options, "repeat_penalty", 0, 10)
    sampling = replace(
        sampling_of(options, 2**63 - 1),
        repetition_penalty=None if not repeat or repeat == 1 else float(repeat),
    )
    if sampling.seed is not None and sampling.seed < 0:  # Ollama's -1: no seed
        sampling = replace(sampling, seed=None)
    return ApiGeneration(
        sampling=sampling,
        max_tokens=predict if predict is not None and predict > 0 else None,  # -1/-2: unbounded
        num_ctx=int(num_ctx or cfg.num_ctx),
        kv_bits=cfg.kv_bits,
        default_max_tokens=cfg.default_max_tokens,
        **what,
    )


def _counters(stats: GenerationStats, began: float) -> dict[str, Any]:
    decode_s = (stats.generated_tokens - 1) / stats.decode_tps if stats.decode_tps else 0.0
    return {
        "done_reason": "length" if stats.finish_reason == "length" else "stop",
        "total_duration": int((time.perf_counter() - began) * 1e9),
        "load_duration": 0,
        "prompt_eval_count": stats.prompt_tokens,
        "prompt_eval_duration": int(stats.ttft_s * 1e9),
        "eval_count": stats.generated_tokens,
        "eval_duration": int(decode_s * 1e9),
    }


class _Answer(JobAnswer):
    """One job's answer as Ollama objects; `piece(text)` is the body of one (message or
    response), NDJSON when streamed."""

    dialect: Dialect = "ollama"
    content_type = NDJSON
    end = b""

    def __init__(self, stream: JobStream, spec: ApiGeneration, model: str, chat: bool):
        super().__init__(stream, spec.max_tokens)
        self.model, self.chat = model, chat
        self.began = time.perf_counter()

    def piece(self, text: str) -> dict[str, Any]:
        if self.chat:
            return {"message": {"role": "assistant", "content": text}}
        return {"response": text}

    def head(self, done: bool) -> dict[str, Any]:
        return {"model": self.model, "created_at": _now(), "done": done}

    def frame(self, data: dict[str, Any]) -> bytes:
        return dumps(data) + b"\n"

    def on_text(self, text: str) -> list[dict[str, Any]]:
        return [{**self.head(False), **self.piece(text)}]

    def on_finished(self, stats: GenerationStats) -> list[dict[str, Any]]:
        return [self.body_of("", stats)]

    def on_stopped(self) -> list[dict[str, Any]]:
        return [{**self.head(True), **self.piece(""), "done_reason": "stop"}]

    def body_of(self, text: str, stats: GenerationStats) -> dict[str, Any]:
        return {**self.head(True), **self.piece(text), **_counters(stats, self.began)}


def _respond(answer: _Answer, data: dict[str, Any]) -> JobResponse:
    return answer.response(streamed=data.get("stream", True) is not False)


async def chat(request: Request) -> JobResponse | JSONResponse:
    state = _state(request)
    data = await read_json(request, state.config.max_body_bytes)
    name = state.check_model(data.get("model"))
    if not data.get("messages"):  # Ollama: an empty chat loads the model and returns
        msg = {"role": "assistant", "content": ""}
        return JSONResponse({**_loaded(name), "message": msg})
    spec = _spec(state, data, messages=chat_messages(data["messages"], ("images", "tool_calls")))
    return _respond(_Answer(state.jobs.submit(spec), spec, name, chat=True), data)


async def generate(request: Request) -> JobResponse | JSONResponse:
    state = _state(request)
    data = await read_json(request, state.config.max_body_bytes)
    name = state.check_model(data.get("model"))
    prompt, system = data.get("prompt") or "", data.get("system") or ""
    if not isinstance(prompt, str) or not isinstance(system, str):
        raise ApiError(400, "prompt and system must be strings")
    if data.get("suffix"):
        raise ApiError(400, "suffix is not supported by this server")
    if not prompt:  # Ollama: an empty prompt loads the model and returns
        return JSONResponse({**_loaded(name), "response": ""})
    if data.get("raw"):
        spec = _spec(state, data, prompt=prompt)
    else:
        messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
        spec = _spec(state, data, messages=tuple(messages))
    return _respond(_Answer(state.jobs.submit(spec), spec, name, chat=False), data)


def _loaded(name: str) -> dict[str, Any]:
    return {"model": name, "created_at": _now(), "done": True, "done_reason": "load"}


def routes() -> list[Route]:
    return [
        Route("/api/version", version, methods=["GET"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/ps", ps, methods=["GET"]),
        Route("/api/show", show, methods=["POST"]),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
    ]
