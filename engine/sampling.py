"""How to sample an answer and in what chunks to prefill: plain, frozen, free of MLX, so the app,
the API and the memory planner need no MLX import (engine.generate applies them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.3  # Mistral's recommendation for Nemo
    top_p: float = 1.0
    max_tokens: int = 1024
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()  # the answer ends before the first of these strings
    presence_penalty: float | None = None  # additive, as in the OpenAI API (mlx-lm's)
    frequency_penalty: float | None = None


PREFILL_STEP = 2048  # mlx-lm's prefill_step_size
# Quantized-KV attention materializes chunk x cache scores even on Metal: smaller chunks.
QUANTIZED_PREFILL_STEP = 512


def prefill_step_for(kv_bits: int | None) -> int:
    return PREFILL_STEP if kv_bits is None else QUANTIZED_PREFILL_STEP


__all__ = ["PREFILL_STEP", "QUANTIZED_PREFILL_STEP", "SamplingSettings", "prefill_step_for"]
