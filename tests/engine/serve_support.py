"""Helpers for the local API tests: a served tiny model and the engine's own answers to compare."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

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


@contextmanager
def serving(engine: Any, cache_dir: Path, **config: Any) -> Iterator[ApiServer]:
    """The local API over a fresh engine service, stopped and shut down on the way out."""
    service = EngineService(local_backend(engine, cache_dir), prepare=False)
    config = {"port": 0, "num_ctx": NUM_CTX, **config}
    server = ApiServer(service, ApiConfig(**config)).start()
    try:
        yield server
    finally:
        server.stop()
        service.shutdown()


def api_fixture(**config: Any) -> Any:
    """A module's `api` fixture (assign it to `api`): the local API on the tiny model with
    `config`, started once for the module."""

    @pytest.fixture(scope="module", name="api")
    def api(tiny_engine: Any, tmp_path_factory: Any) -> Iterator[ApiServer]:
        with serving(tiny_engine, tmp_path_factory.mktemp("caches"), **config) as server:
            yield server

    return api


def greedy(n: int) -> SamplingSettings:
    return SamplingSettings(temperature=0.0, max_tokens=n)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


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
