"""The Backend seam: what the app, the CLI and the local API ask of "the model".

A backend runs on the engine thread (engine.service) and is either the local MLX engine
(engine.local_backend) or an OpenAI-compatible server (engine.remote). Requests and answers
are plain frozen data; answers are the engine's events (engine.events) ending in one Finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.config import ModelConfig
from engine.events import Event
from engine.sampling import SamplingSettings

MAX_CONTEXT = 131_072  # Nemo's trained context; its config says 1,024,000

# summarize()'s model call: (messages, max_tokens, cancel) -> events ending in Finished
GenerateFn = Callable[[list[dict[str, str]], int, "threading.Event | None"], Iterable[Event]]


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def messages_of(messages: Sequence[Mapping[str, str] | Message]) -> tuple[Message, ...]:
    """Frozen copies: the caller may go on editing its own list while the engine reads these."""
    return tuple(
        m if isinstance(m, Message) else Message(str(m["role"]), str(m["content"]))
        for m in messages
    )


@dataclass(frozen=True)
class GenerationOptions:
    """How to answer: sampling plus the context budget (num_ctx) and KV-cache precision."""

    sampling: SamplingSettings = SamplingSettings()
    num_ctx: int = 8192
    kv_bits: int | None = None


@dataclass(frozen=True)
class ChatRequest:
    """One answer to a chat. `key` names the conversation whose KV cache to reuse ("chat:42",
    "quick", ...); None lets the backend pick the cached entry with the longest common prefix
    (stateless API clients send the whole chat every time)."""

    messages: tuple[Message, ...]
    options: GenerationOptions = GenerationOptions()
    key: str | None = None

    def as_dicts(self) -> list[dict[str, str]]:
        return [m.as_dict() for m in self.messages]


@dataclass(frozen=True)
class CompletionRequest:
    """Raw text completion (/v1/completions, Ollama's raw generate): BOS + prompt, no template."""

    prompt: str
    options: GenerationOptions = GenerationOptions()


@dataclass(frozen=True)
class ModelInfo:
    """What the UI and the API show about the model behind a backend; plain data."""

    name: str
    location: str  # "this Mac" / "this computer", or "the server at http://…"
    local: bool
    path: str = ""  # the model folder (local) or the server's base URL (remote)
    num_parameters: int = 0  # unquantized count (Nemo: 12,247,782,400); 0 when unknown
    weights_bytes: int = 0  # in memory, as loaded; 0 when unknown (remote)
    quantization: str = ""  # "4-bit g64", "bf16", ... ("" when unknown)
    max_context: int | None = MAX_CONTEXT  # tokens the model was trained for, when known
    tekken: bool = True  # counts from our Tekken tokenizer are exact for this model
    config: ModelConfig | None = field(default=None, compare=False, repr=False)


class TokenCounter(Protocol):
    """The part of engine.tokenizer.TekkenTokenizer that budgets need (pure, any thread)."""

    def encode(self, text: str) -> list[int]: ...
    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]: ...


class Backend(Protocol):
    """Runs on the engine thread only; every call may block."""

    @property
    def info(self) -> ModelInfo: ...

    def chat(self, request: ChatRequest, cancel: threading.Event) -> Iterator[Event]:
        """Answer the chat: ContextTrimmed?, PrefillProgress*, TextChunk*, one Finished.
        Raises ContextOverflow (engine.session) before any work when the prompt cannot fit."""
        ...

    def complete(self, request: CompletionRequest, cancel: threading.Event) -> Iterator[Event]: ...

    def generate_fn(self, options: GenerationOptions) -> GenerateFn:
        """Model calls for summaries: scratch contexts that never evict a conversation's cache."""
        ...

    def token_counter(self) -> TokenCounter:
        """Exact (Tekken) or conservative token counts for num_ctx and summary planning."""
        ...

    def forget(self, key: str) -> None:
        """A conversation was deleted: drop whatever is kept for it (cache, snapshot)."""
        ...

    def close(self) -> None:
        """Write what must survive (cache snapshots), free memory."""
        ...


def collect(events: Iterable[Any]) -> tuple[str, Any]:
    """The whole text of an answer and its GenerationStats (for non-streaming callers)."""
    from engine.events import Finished, TextChunk

    text, stats = [], None
    for event in events:
        if isinstance(event, TextChunk):
            text.append(event.text)
        elif isinstance(event, Finished):
            stats = event.stats
    return "".join(text), stats
