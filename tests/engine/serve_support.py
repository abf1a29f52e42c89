"""Helpers for the local API tests: a served tiny model and the engine's own answers to compare."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.events import TextChunk
from engine.generate import SamplingSettings
from engine.local_backend import LocalBackend
from engine.serve import ApiConfig, ApiServer
from engine.service import EngineService
from engine.session import ChatSession

NUM_CTX = 1024


def local_backend(engine: Any, cache_dir: Path) -> LocalBackend:
    """A backend whose caches stay in memory (no snapshots written outside the test)."""
    try:
        from engine.cache_store import CacheSettings
    except ImportError:  # before the cache store lands
        return LocalBackend(engine)
    return LocalBackend(engine, CacheSettings(dir=cache_dir, enabled=False))


def serve(engine: Any, cache_dir: Path, **config: Any) -> tuple[EngineService, ApiServer]:
    service = EngineService(local_backend(engine, cache_dir), prepare=False)
    config = {"port": 0, "num_ctx": NUM_CTX, **config}
    return service, ApiServer(service, ApiConfig(**config)).start()


def reference_chat(
    engine: Any, messages: list[dict[str, str]], settings: SamplingSettings
) -> tuple[str, ChatSession]:
    """The engine's own answer (no HTTP) and the session that holds its cache tokens."""
    session = ChatSession(engine, num_ctx=NUM_CTX)
    text = "".join(e.text for e in session.chat(messages, settings) if isinstance(e, TextChunk))
    return text, session


def reference_completion(engine: Any, prompt: str, settings: SamplingSettings) -> str:
    tok = engine.tokenizer
    session = ChatSession(engine, num_ctx=NUM_CTX)
    events = session.generate_ids([tok.bos_id, *tok.encode(prompt)], settings)
    return "".join(e.text for e in events if isinstance(e, TextChunk))


def wait_for(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until `condition()` is truthy; its value (fails the test past the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for a condition"
        time.sleep(0.02)


def long_text(words: int = 60) -> str:
    """A user message well over the cache store's minimum shared prefix (32 tokens)."""
    return " ".join(f"word{i}" for i in range(words))
