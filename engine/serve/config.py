"""The local API's settings: where it listens, who may call it, and the generation defaults."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_PORT = 11435  # next to Ollama's 11434, so both can run
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0: a free port chosen by the OS (tests)
    api_key: str | None = None  # required when host is not a loopback address
    allowed_origins: tuple[str, ...] = ()  # browser Origins allowed to call ("*" for any)
    max_body_bytes: int = 16 * 1024 * 1024  # 128K tokens of text is ~0.5 MB; images are refused
    model_name: str | None = None  # None: "mistral-nemo:12b-instruct-4bit" (engine.serve.naming)
    num_ctx: int = 8192  # per request; an Ollama request's options.num_ctx overrides it
    kv_bits: int | None = None
    default_max_tokens: int = 2048  # an answer's cap when the request sets none

    def check(self) -> None:
        """Refuse settings that would expose the model: a public address needs a key."""
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(
                f"serving on {self.host} (not this machine only) requires an API key (--api-key)"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("", "0.0.0.0", "::")
