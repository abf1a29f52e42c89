"""Nemo Chat's engine: Mistral Nemo 12B on MLX. Qt-free; used by the app, the CLI and the tests.

The package face only re-exports; each piece lives in its own module.
"""

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
from engine.generate import SamplingSettings
from engine.runtime import Engine, load
from engine.weights import WeightsError, convert

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
