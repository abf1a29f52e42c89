"""Long documents: one pass when they fit the faithful part cap, else map-reduce, never cut.

Every page is read (see summarize_plan for how documents are split). Each part is summarized
keeping its "[page N]" citations — several parts at once when a batched model call is given
(engine.docs.batch) — and the part summaries are combined, hierarchically when they do not fit
one call, into one answer that ends with what it covered ("pages 1–312 of 312, 14 parts").

Each finished part is reported as a PartDone (index, pages, file, text, digest) so it can be
stored; a run given those parts back (`finished`) reads only the rest. The same run answers a
question over the whole document with engine.docs.ask's prompts.

`generate_fn(messages, max_tokens, cancel)` is the model call; `session_generate_fn` makes one
from a ChatSession. Events are plain frozen data, safe to send across threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypedDict, Unpack

from engine.docs.batch import BatchFn
from engine.docs.coverage import Coverage
from engine.docs.extract import Document, Page
from engine.docs.summarize_events import (
    CombineStarted,
    FinishedPart,
    PartDone,
    PartInfo,
    PartStarted,
    SummaryDone,
    SummaryEvent,
    SummaryPlan,
    SummaryStats,
)
from engine.docs.summarize_plan import (
    DEFAULT_INSTRUCTION,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PART_CAP,
    Part,
    Plan,
    SummaryBudgetError,
    plan_summary,
)
from engine.docs.summarize_prompts import Prompts
from engine.docs.summarize_run import Run
from engine.events import Event
from engine.tokenizer import TekkenTokenizer

if TYPE_CHECKING:
    from engine.generate import SamplingSettings
    from engine.session import ChatSession

__all__ = [
    "DEFAULT_INSTRUCTION",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_PART_CAP",
    "CombineStarted",
    "Coverage",
    "FinishedPart",
    "GenerateFn",
    "Part",
    "PartDone",
    "PartInfo",
    "PartStarted",
    "Plan",
    "SummaryBudgetError",
    "SummaryDone",
    "SummaryOptions",
    "SummaryEvent",
    "SummaryPlan",
    "SummaryStats",
    "plan_summary",
    "run_plan",
    "session_generate_fn",
    "summarize",
]

GenerateFn = Callable[[list[dict[str, str]], int, "threading.Event | None"], Iterable[Event]]


def run_plan(
    plan: Plan,
    generate_fn: GenerateFn,
    tokenizer: TekkenTokenizer,
    *,
    cancel: threading.Event | None = None,
    batch_fn: BatchFn | None = None,
    batch_size: int | None = None,
    finished: Sequence[FinishedPart] = (),
):
    """Run a plan: SummaryPlan, PartStarted/PartDone per part, CombineStarted per combine, the
    answer as TextChunks (its coverage line last), one SummaryDone.

    batch_fn: batched model calls for the map step (None: one part after another through
    generate_fn); batch_size: sequences at once (None: what batch_fn's memory plan allows).
    finished: parts read by an earlier run (matched by digest), not read again.
    """
    if batch_fn is not None and batch_size is None:
        batch_size = batch_fn.batch_size(plan.part_budget + plan.part_max_tokens)
    size = batch_size or 1
    return Run(
        plan, generate_fn, tokenizer, cancel, batch_fn if size > 1 else None, size, finished
    ).events()


class SummaryOptions(TypedDict, total=False):
    """The keyword options that summarize() and ask() share, each optional."""

    max_tokens: int  # the answer's length; DEFAULT_MAX_TOKENS
    cancel: threading.Event | None
    part_max_tokens: int | None  # a part summary's length; None: the plan's choice
    part_cap: int  # prompt tokens a part may use; DEFAULT_PART_CAP
    batch_fn: BatchFn | None
    batch_size: int | None
    finished: Sequence[FinishedPart]


def summarize(
    doc: Document | str | Sequence[Page] | Sequence[Document | str],
    generate_fn: GenerateFn,
    tokenizer: TekkenTokenizer,
    num_ctx: int,
    *,
    instruction: str | None = None,
    prompts: Prompts | None = None,
    **options: Unpack[SummaryOptions],
):
    """Plan (several documents: a list of them) and run; see run_plan for the events.

    Plans before returning, so SummaryBudgetError is raised by this call, before any model call.
    Cancel is checked between calls and passed into each; a cancelled run ends with
    SummaryDone(cancelled=True) and makes no further model call.
    """
    plan = plan_summary(
        doc,
        tokenizer,
        num_ctx,
        options.get("max_tokens", DEFAULT_MAX_TOKENS),
        instruction,
        part_max_tokens=options.get("part_max_tokens"),
        part_cap=options.get("part_cap", DEFAULT_PART_CAP),
        prompts=prompts,
    )
    return run_plan(
        plan,
        generate_fn,
        tokenizer,
        cancel=options.get("cancel"),
        batch_fn=options.get("batch_fn"),
        batch_size=options.get("batch_size"),
        finished=options.get("finished", ()),
    )


def session_generate_fn(
    session: ChatSession, settings: SamplingSettings | None = None
) -> GenerateFn:
    """The model call for summarize(): each call is a one-message chat on the session's cache."""
    from engine.generate import SamplingSettings

    base = settings or SamplingSettings()

    def generate(messages: list[dict[str, str]], max_tokens: int, cancel: threading.Event | None):
        return session.chat(messages, replace(base, max_tokens=max_tokens), cancel)

    return generate
