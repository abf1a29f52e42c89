"""What an API request runs on the engine thread: count the prompt, budget the answer, generate.

API clients send the whole chat each time and expect it used whole: a chat that does not fit
num_ctx is refused with its counts (never trimmed), and without max_tokens the answer may use
what the context has left, up to a default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import chain

from engine.backend import ChatRequest, CompletionRequest, GenerationOptions, Message
from engine.events import GenerationStats
from engine.jobs import Job
from engine.sampling import SamplingSettings
from engine.service import EngineService
from engine.session import ContextOverflow, split_exchanges


@dataclass(frozen=True)
class ApiGeneration:
    """One API request as plain data: a chat (messages) or a raw completion (prompt)."""

    sampling: SamplingSettings
    max_tokens: int | None  # None: what fits, up to default_max_tokens
    num_ctx: int
    kv_bits: int | None = None
    default_max_tokens: int = 2048
    messages: tuple[Message, ...] = ()
    prompt: str | None = None  # set for a raw completion (BOS + prompt, no chat template)


def answer_budget(spec: ApiGeneration, prompt_tokens: int) -> int:
    """max_tokens for this prompt; raises ContextOverflow when the prompt leaves no room."""
    if spec.max_tokens is not None:
        if prompt_tokens + spec.max_tokens > spec.num_ctx:
            raise ContextOverflow(prompt_tokens, spec.num_ctx, spec.max_tokens)
        return spec.max_tokens
    room = spec.num_ctx - prompt_tokens
    if room < 1:
        raise ContextOverflow(prompt_tokens, spec.num_ctx, 1)
    return min(spec.default_max_tokens, room)


def run_generation(service: EngineService, spec: ApiGeneration, job: Job) -> GenerationStats:
    """The job's body (engine thread): the answer's events go to the job's own sink."""
    backend = service.backend
    counter = backend.token_counter()
    if spec.prompt is not None:
        max_tokens = answer_budget(spec, 1 + len(counter.encode(spec.prompt)))  # BOS + prompt
        options = _options(spec, max_tokens)
        events = backend.complete(CompletionRequest(spec.prompt, options), job.cancel)
        return service.stream(job, events)
    system, exchanges = split_exchanges([m.as_dict() for m in spec.messages])
    if not exchanges:
        raise ValueError("the chat has no user message")
    prompt_tokens = len(counter.encode_chat(system + list(chain.from_iterable(exchanges))))
    options = _options(spec, answer_budget(spec, prompt_tokens))
    # key=None: the backend reuses the cached entry with the longest common prefix.
    request = ChatRequest(spec.messages, options, key=None)
    return service.stream(job, backend.chat(request, job.cancel))


def _options(spec: ApiGeneration, max_tokens: int) -> GenerationOptions:
    return GenerationOptions(
        replace(spec.sampling, max_tokens=max_tokens), spec.num_ctx, spec.kv_bits
    )
