"""Plain, frozen events that generation yields; safe to send across threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int  # the whole prompt, reused + prefilled
    reused_tokens: int  # taken from the KV cache of the previous turn
    prefilled_tokens: int  # computed for this answer
    generated_tokens: int
    ttft_s: float  # time to first token
    prefill_tps: float
    decode_tps: float
    peak_memory_bytes: int
    finish_reason: FinishReason


@dataclass(frozen=True)
class TextChunk:
    """Newly decoded text; never ends inside a UTF-8 character."""

    text: str


@dataclass(frozen=True)
class PrefillProgress:
    """Prompt tokens processed so far, e.g. 12,288 of 48,000."""

    done: int
    total: int


@dataclass(frozen=True)
class ContextTrimmed:
    """Older messages were left out so that the chat fits in num_ctx."""

    dropped_messages: int
    prompt_tokens: int
    num_ctx: int


@dataclass(frozen=True)
class Finished:
    stats: GenerationStats


Event = TextChunk | PrefillProgress | ContextTrimmed | Finished


class Cancelled(Exception):
    """Raised inside the prefill loop when the cancel event is set."""
