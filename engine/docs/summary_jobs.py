"""Summary and question requests over long documents, run on the engine thread.

A request is frozen plain data (documents, instruction or question, options, the part cap, the
parts finished by an earlier run); `EngineService.summarize(request, sink)` / `.ask(...)` submit
`run_job` as a Job. The job's events are the run's (engine.docs.summarize_events), PartDone
carrying what to store for resuming; its result is the run's GenerationStats (what was really
generated, also when stopped), and the SummaryDone event before it has the text and coverage.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.backend import Backend, GenerationOptions
from engine.docs.extract import Document
from engine.docs.summarize import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_PART_CAP,
    FinishedPart,
    SummaryDone,
    SummaryOptions,
    summarize,
)
from engine.events import GenerationStats

if TYPE_CHECKING:
    from engine.jobs import Job
    from engine.service import EngineService


@dataclass(frozen=True)
class SummaryRequest:
    documents: tuple[Document | str, ...]  # one or more; a str is a text without pages
    instruction: str | None = None  # what to summarize for; None: everything
    options: GenerationOptions = GenerationOptions()
    max_tokens: int = DEFAULT_MAX_TOKENS  # the answer's length
    part_cap: int = DEFAULT_PART_CAP  # prompt tokens a part may use (never more than num_ctx)
    finished: tuple[FinishedPart, ...] = ()  # parts stored by an earlier run: not read again
    batched: bool = True  # batch the map step when the backend can


@dataclass(frozen=True)
class AskRequest:
    documents: tuple[Document | str, ...]
    question: str
    options: GenerationOptions = GenerationOptions()
    max_tokens: int = DEFAULT_MAX_TOKENS
    part_cap: int = DEFAULT_PART_CAP
    finished: tuple[FinishedPart, ...] = ()
    batched: bool = True


def counter_for(backend: Backend) -> Any:
    """The backend's Tekken tokenizer; the bundled Nemo one where it has another counter."""
    counter = backend.token_counter()
    if hasattr(counter, "count_tokens") and hasattr(counter, "token_bytes"):
        return counter
    from engine.tokenizer import load_tokenizer

    return load_tokenizer(None)


def events_for(
    backend: Backend, request: SummaryRequest | AskRequest, cancel: threading.Event | None
) -> Iterator[object]:
    """The run's events (engine thread); plans first, so budget errors raise here."""
    if not request.documents:
        raise ValueError("no document to read")
    docs = request.documents[0] if len(request.documents) == 1 else list(request.documents)
    make_batch = getattr(backend, "batch_generate_fn", None)  # local backend only
    batch_fn = make_batch(request.options) if request.batched and make_batch else None
    common = SummaryOptions(
        max_tokens=request.max_tokens,
        cancel=cancel,
        part_cap=request.part_cap,
        batch_fn=batch_fn,
        finished=request.finished,
    )
    generate_fn = backend.generate_fn(request.options)
    tokenizer, num_ctx = counter_for(backend), request.options.num_ctx
    if isinstance(request, AskRequest):
        from engine.docs.ask import ask

        return ask(docs, request.question, generate_fn, tokenizer, num_ctx, **common)
    return summarize(
        docs, generate_fn, tokenizer, num_ctx, instruction=request.instruction, **common
    )


def run_job(
    service: EngineService, request: SummaryRequest | AskRequest, job: Job
) -> GenerationStats:
    """The job's body on the engine thread: every event to the job; the run's stats."""
    events = events_for(service.backend, request, job.cancel)
    done = service.forward(job, events, SummaryDone)
    if done is None:
        raise RuntimeError("the summary ended without its result")
    return done.generation_stats()
