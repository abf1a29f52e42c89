"""A loaded model (Engine) and load(): config, weights and tokenizer from one folder."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.config import ConfigError, ModelConfig, load_config
from engine.events import (
    Event,
)
from engine.generate import SamplingSettings, stream_tokens
from engine.model import Model
from engine.tokenizer import TekkenTokenizer, load_tokenizer
from engine.weights import load_model, weights_nbytes

if TYPE_CHECKING:
    from engine.session import ChatSession


@dataclass
class Engine:
    """A loaded model: config, MLX model, tokenizer. Use it from one thread only (MLX streams)."""

    model_dir: Path
    config: ModelConfig
    model: Model
    tokenizer: TekkenTokenizer
    weights_bytes: int

    def generate(
        self,
        prompt: str | list[int],
        settings: SamplingSettings = SamplingSettings(),
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Raw completion: text gets BOS in front; a token list is used as it is."""
        ids = (
            [self.tokenizer.bos_id, *self.tokenizer.encode(prompt)]
            if isinstance(prompt, str)
            else list(prompt)
        )
        return stream_tokens(
            self.model, self.tokenizer, ids, self.model.make_cache(), settings, cancel
        )

    def chat(
        self,
        messages: list[dict[str, str]],
        settings: SamplingSettings = SamplingSettings(),
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """One answer to a chat, from a fresh cache. A ChatSession reuses the cache across turns."""
        return self.generate(self.tokenizer.encode_chat(messages), settings, cancel)

    def session(self, num_ctx: int = 8192, kv_bits: int | None = None) -> ChatSession:
        from engine.session import ChatSession

        return ChatSession(self, num_ctx=num_ctx, kv_bits=kv_bits)


def load(model_dir: str | Path, on_progress: Callable[[int, int], None] | None = None) -> Engine:
    """Load a model folder (HF bf16 or MLX-quantized) with its Tekken tokenizer.

    on_progress(bytes_loaded, bytes_total) follows the weight shards.
    """
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise ConfigError(f"{model_dir}: not a folder")
    config = load_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    if config.vocab_size < tokenizer.vocab_size:
        # MLX does not bounds-check embedding lookups: an id past the table would crash.
        raise ConfigError(
            f"{model_dir / 'config.json'}: vocab_size {config.vocab_size} is smaller than the "
            f"Tekken tokenizer's {tokenizer.vocab_size}; this is not a Mistral Nemo checkpoint"
        )
    model = load_model(model_dir, config, on_progress=on_progress)
    return Engine(model_dir, config, model, tokenizer, weights_nbytes(model))
