"""The engine's state as the views see it; pure (no Qt, no engine), so any module may import it."""

from __future__ import annotations

from enum import StrEnum


class EngineState(StrEnum):
    NONE = "none"  # no model loaded
    LOADING = "loading"
    READY = "ready"
    GENERATING = "generating"  # an answer (chat, quick prompt, summary) is being written
    ERROR = "error"  # the last load failed
