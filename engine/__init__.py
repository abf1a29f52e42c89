"""Nemo Chat's engine: Mistral Nemo 12B on MLX. Qt-free; used by the app, the CLI and the tests.

The package face only re-exports; each piece lives in its own module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names for type checkers; at run time __getattr__ loads them
    from engine.config import ConfigError, ModelConfig
    from engine.events import (
        Cancelled,
        ContextTrimmed,
        Event,
        Finished,
        GenerationStats,
        PrefillProgress,
        TextChunk,
    )
    from engine.runtime import Engine, load
    from engine.sampling import SamplingSettings
    from engine.weights import WeightsError, convert

# Loaded on first use (PEP 562): `import engine.config` must not pull in MLX, mlx-lm and
# transformers (seconds) — the app shows its window first and loads those on the engine thread.
_WHERE = {
    "ConfigError": "engine.config",
    "ModelConfig": "engine.config",
    "Cancelled": "engine.events",
    "ContextTrimmed": "engine.events",
    "Event": "engine.events",
    "Finished": "engine.events",
    "GenerationStats": "engine.events",
    "PrefillProgress": "engine.events",
    "TextChunk": "engine.events",
    "SamplingSettings": "engine.sampling",
    "Engine": "engine.runtime",
    "load": "engine.runtime",
    "WeightsError": "engine.weights",
    "convert": "engine.weights",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # once: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "Cancelled",
    "ConfigError",
    "ContextTrimmed",
    "Engine",
    "Event",
    "Finished",
    "GenerationStats",
    "ModelConfig",
    "PrefillProgress",
    "SamplingSettings",
    "TextChunk",
    "WeightsError",
    "convert",
    "load",
]
