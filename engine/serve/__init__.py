"""The local API: OpenAI- and Ollama-compatible endpoints over one engine thread."""

from engine.serve.bridge import ApiActivity
from engine.serve.config import DEFAULT_PORT, ApiConfig
from engine.serve.server import ApiServer

__all__ = ["DEFAULT_PORT", "ApiActivity", "ApiConfig", "ApiServer"]
