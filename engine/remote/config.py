"""Where the remote model lives: plain, frozen settings (safe to pass between threads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

TokenizerChoice = Literal["auto", "tekken", "estimate"]


@dataclass(frozen=True)
class RemoteConfig:
    """An OpenAI-compatible server: vLLM, Ollama, LM Studio, mlx_lm.server, another `nemo serve`.

    `base_url` may end in /v1 or not ("http://mac-studio.local:8080", "http://host:8000/v1").
    `model` None picks the server's only (or first) model from /v1/models.
    `tokenizer`: "auto" counts with our Tekken tokenizer when the model is Nemo (by name),
    "tekken"/"estimate" force one way.
    """

    base_url: str
    api_key: str | None = None
    model: str | None = None
    timeout: float = 10.0  # connecting (TCP + TLS) and the /v1/models probe
    read_timeout: float = 300.0  # the longest silence allowed mid-request (a long prefill, a stall)
    tokenizer: TokenizerChoice = "auto"

    @property
    def api_root(self) -> str:
        """The URL that /chat/completions, /completions and /models hang from."""
        root = self.base_url.strip().rstrip("/")
        if "://" not in root:
            root = "http://" + root
        return root if root.endswith("/v1") else root + "/v1"

    @property
    def server(self) -> str:
        """The server as messages name it: scheme://host:port, no path, no credentials."""
        parts = urlsplit(self.api_root)
        host = parts.hostname or "?"
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"


@dataclass(frozen=True)
class RemoteModel:
    """One entry of the server's /v1/models."""

    id: str
    max_context: int | None = None  # where the server reports it (vLLM, LM Studio, llama.cpp)
    owned_by: str = ""


def is_nemo(model_id: str) -> bool:
    """Mistral Nemo (Tekken tokenizer) by its name: "Mistral-Nemo-Instruct-2407", "mistral-nemo:12b"."""
    return "nemo" in model_id.lower()
