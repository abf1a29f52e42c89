"""Plain data that crosses the engine thread's boundary, and the pure helpers that make it.

Requests are frozen dataclasses built by EngineController on the GUI thread and read by
EngineWorker on the engine thread; ModelInfo and the error messages travel back as signals
(DESIGN rule 2). Nothing here touches MLX arrays or Qt, so any thread may call it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import engine
from engine.config import ConfigError, ModelConfig
from engine.events import GenerationStats
from engine.generate import SamplingSettings
from engine.tokenizer import TokenizerError
from engine.weights import WeightsError

MAX_CONTEXT = 131_072  # Nemo's trained context; its config says 1,024,000
_DTYPE_LABELS = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


@dataclass(frozen=True)
class ModelInfo:
    """What the UI shows about the loaded model; plain data."""

    path: str
    name: str
    num_parameters: int  # unquantized count (Nemo: 12,247,782,400)
    weights_bytes: int  # in memory, as loaded
    quantization: str  # "4-bit g64", "bf16", ...
    max_context: int  # tokens the model was trained for (Nemo: 128K)
    config: ModelConfig = field(compare=False, repr=False)  # for memory plans


class ChatSettingsLike(Protocol):
    """The fields of app.settings.ChatSettings that a request uses."""

    num_ctx: int
    kv_bits: int | None
    system_prompt: str
    temperature: float
    top_p: float
    max_tokens: int


@dataclass(frozen=True)
class Request:
    """One answer to generate; built by the controller, read by the worker."""

    rid: int
    conversation_id: int
    messages: tuple[Mapping[str, str], ...]  # copies: the GUI may edit its own list meanwhile
    settings: ChatSettingsLike
    cancel: threading.Event  # set from the GUI thread to stop this request


@dataclass(frozen=True)
class SummaryRequest:
    """Summarize one document (engine.docs.extract.Document: frozen plain data) into the chat."""

    rid: int
    conversation_id: int
    document: Any
    settings: ChatSettingsLike
    cancel: threading.Event
    instruction: str | None = None


def summary_max_tokens(settings: ChatSettingsLike) -> int:
    # The summary's length, capped at a quarter of num_ctx so that the parts keep room to split.
    return min(settings.max_tokens, max(64, settings.num_ctx // 4))


@dataclass(frozen=True)
class ConvertRequest:
    """Quantize downloaded original weights (engine.hub.convert_flow.pull_and_convert) on this thread."""

    root: str  # the models folder; the original is in root/owner--name, the copy next to it
    repo_id: str
    bits: int
    group_size: int
    token: str | None
    cancel: threading.Event  # the download panel's Cancel


def model_name(model_dir: Path) -> str:
    """The folder name; for a Hugging Face cache snapshot, the repository name."""
    if model_dir.parent.name == "snapshots" and model_dir.parent.parent.name.startswith("models--"):
        return model_dir.parent.parent.name.split("--")[-1]
    return model_dir.name


def quantization_label(config: ModelConfig) -> str:
    if config.quantization:
        return f"{config.quantization['bits']}-bit g{config.quantization['group_size']}"
    return _DTYPE_LABELS.get(config.torch_dtype, config.torch_dtype)


def model_info(eng: engine.Engine) -> ModelInfo:
    config = eng.config
    return ModelInfo(
        path=str(eng.model_dir),
        name=model_name(Path(eng.model_dir)),
        num_parameters=config.num_parameters,
        weights_bytes=eng.weights_bytes,
        quantization=quantization_label(config),
        max_context=min(config.max_position_embeddings, MAX_CONTEXT),
        config=config,
    )


def sampling_settings(settings: ChatSettingsLike) -> SamplingSettings:
    return SamplingSettings(
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_tokens=settings.max_tokens,
        repetition_penalty=getattr(settings, "repetition_penalty", None),
        seed=getattr(settings, "seed", None),
    )


def with_system_prompt(messages: Sequence[Mapping[str, str]], system_prompt: str) -> list[dict]:
    """The chat as the engine sees it: the settings' system prompt first, unless one is there."""
    chat = [dict(m) for m in messages]
    if system_prompt.strip() and not (chat and chat[0].get("role") == "system"):
        chat.insert(0, {"role": "system", "content": system_prompt})
    return chat


def load_error_message(path: str, error: Exception) -> str:
    # The engine's own errors already name the file and the problem.
    if isinstance(error, (ConfigError, WeightsError, TokenizerError)):
        return str(error)
    return f"{path}: cannot load the model ({type(error).__name__}: {error})"


def generation_error_message(error: Exception) -> str:
    # The engine's ValueErrors (a malformed chat, a num_ctx that does not fit in memory) and
    # ContextOverflow (token counts) are written for the user; anything else is a bug report.
    if isinstance(error, ValueError) or hasattr(error, "prompt_tokens"):
        return str(error)
    return f"Generation failed: {type(error).__name__}: {error}"


def cancelled_stats() -> GenerationStats:
    """Stats of a request stopped before it began."""
    return GenerationStats(0, 0, 0, 0, 0.0, 0.0, 0.0, 0, "cancelled")
