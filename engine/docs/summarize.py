"""Long-document summarization: one pass when the document fits, else map-reduce, never cut.

The whole document is always read (see summarize_plan for how it is split). Each part is
summarized keeping its "[page N]" citations, and the part summaries are combined, hierarchically
when they do not fit one call, into one summary. Model calls grow linearly: parts + about
parts / (summaries per combine) + 1.

`generate_fn(messages, max_tokens, cancel)` is the model call; `session_generate_fn` makes one from
a ChatSession. Events are plain frozen data, safe to send across threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from engine.docs.extract import Document, Page
from engine.docs.summarize_plan import (
    DEFAULT_INSTRUCTION,
    DEFAULT_MAX_TOKENS,
    Part,
    Plan,
    SummaryBudgetError,
    combine_prompt,
    estimate_reduce_calls,
    label_tokens,
    page_range,
    part_prompt,
    plan_summary,
    single_prompt,
    summary_block,
    user_message,
)
from engine.events import Cancelled, Event, Finished, GenerationStats, PrefillProgress, TextChunk
from engine.tokenizer import TekkenTokenizer

if TYPE_CHECKING:
    from engine.generate import SamplingSettings
    from engine.session import ChatSession

__all__ = [
    "DEFAULT_INSTRUCTION",
    "DEFAULT_MAX_TOKENS",
    "CombineStarted",
    "GenerateFn",
    "PartDone",
    "PartStarted",
    "Part",
    "Plan",
    "SummaryBudgetError",
    "SummaryDone",
    "SummaryEvent",
    "SummaryPlan",
    "SummaryStats",
    "plan_summary",
    "session_generate_fn",
    "summarize",
]

GenerateFn = Callable[[list[dict[str, str]], int, "threading.Event | None"], Iterable[Event]]


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryPlan:
    parts: int  # 1 for a single pass
    total_tokens: int  # tokens of the document text (with page markers)
    model_calls_estimate: int  # at most: parts + combines if every summary were full length
    single_pass: bool


@dataclass(frozen=True)
class PartStarted:
    index: int  # 1-based
    count: int
    pages: str  # "12–18", "12", or "" when the document has no pages
    tokens: int  # prompt tokens of this call


@dataclass(frozen=True)
class PartDone:
    index: int
    count: int
    summary: str
    seconds: float
    eta_s: float  # time left, from the speed measured so far


@dataclass(frozen=True)
class CombineStarted:
    """A reduce call: part summaries being merged; final=True is the answer the user sees."""

    level: int  # 1 for the first round of combining
    index: int  # 1-based, within this level
    count: int
    final: bool
    eta_s: float


@dataclass(frozen=True)
class SummaryStats:
    seconds: float
    map_calls: int
    reduce_calls: int
    reduce_levels: int  # rounds of combining, the final one included
    prompt_tokens: int  # all tokens fed to the model, every call
    generated_tokens: int
    length_limited_calls: int  # calls that stopped at their max_tokens
    final: GenerationStats | None  # the call that wrote the answer, when the model reported it


@dataclass(frozen=True)
class SummaryDone:
    text: str  # the summary; when cancelled, what the final call had written ("" before it)
    parts: int
    model_calls: int
    tokens_processed: int
    stats: SummaryStats
    cancelled: bool = False


SummaryEvent = (
    SummaryPlan
    | PartStarted
    | PartDone
    | CombineStarted
    | PrefillProgress
    | TextChunk
    | SummaryDone
)


# -- running it --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Summary:
    first: int  # part numbers it covers
    last: int
    first_page: int | None
    last_page: int | None
    text: str

    def block(self) -> str:
        return summary_block(
            self.first, self.last, page_range(self.first_page, self.last_page), self.text
        )


class _Stop(Exception):
    pass


class _Run:
    def __init__(
        self,
        plan: Plan,
        generate_fn: GenerateFn,
        tokenizer: TekkenTokenizer,
        cancel: threading.Event | None,
    ):
        self.plan, self.generate_fn, self.cancel = plan, generate_fn, cancel
        self.tokenizer = tokenizer
        self.start = time.perf_counter()
        self.calls = self.map_calls = self.reduce_calls = self.levels = self.limited = 0
        self.prompt_tokens = self.generated = 0
        self.prefill_s = self.decode_s = 0.0  # measured split of model time, when reported
        self.map_output = 0  # tokens of the part summaries so far
        self.final_stats: GenerationStats | None = None
        self.answer: list[str] = []

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def call(self, content: str, max_tokens: int, final: bool) -> Iterator[SummaryEvent]:
        """One model call; streams it when final; returns the text (raises _Stop on cancel)."""
        if self.cancelled():
            raise _Stop
        messages = user_message(content)
        n = len(self.tokenizer.encode_chat(messages))
        self.calls += 1
        self.prompt_tokens += n
        chunks, stats, began = [], None, time.perf_counter()
        try:
            for event in self.generate_fn(messages, max_tokens, self.cancel):
                if isinstance(event, TextChunk):
                    chunks.append(event.text)
                    if final:
                        self.answer.append(event.text)
                        yield event
                elif isinstance(event, PrefillProgress) and final:
                    yield event
                elif isinstance(event, Finished):
                    stats = event.stats
        except Cancelled:
            raise _Stop from None
        text = "".join(chunks).strip()
        spent = time.perf_counter() - began
        if stats is not None:
            self.generated += stats.generated_tokens
            self.limited += stats.finish_reason == "length"
            self.prefill_s += min(stats.ttft_s, spent)
            self.decode_s += max(spent - stats.ttft_s, 0.0)
            if final:
                self.final_stats = stats
        else:
            self.generated += self.tokenizer.count_tokens(text)
            self.prefill_s += spent  # no split reported: all of it counts per input token
        if self.cancelled() or (stats is not None and stats.finish_reason == "cancelled"):
            raise _Stop
        return text

    def eta(self, input_left: int, output_left: int) -> float:
        per_in = self.prefill_s / self.prompt_tokens if self.prompt_tokens else 0.0
        per_out = self.decode_s / self.generated if self.generated else 0.0
        return per_in * input_left + per_out * output_left

    def events(self) -> Iterator[SummaryEvent]:
        p = self.plan
        yield SummaryPlan(len(p.parts), p.total_tokens, p.model_calls_estimate, p.single_pass)
        try:
            if p.single_pass:
                prompt = single_prompt(p.parts[0].text, p.name, p.instruction, p.paginated)
                text = yield from self.call(prompt, p.max_tokens, final=True)
            else:
                summaries = yield from self.map()
                text = yield from self.reduce(summaries)
        except _Stop:
            yield self.done("".join(self.answer).strip(), cancelled=True)
            return
        yield self.done(text, cancelled=False)

    def map(self) -> Iterator[SummaryEvent]:
        p, summaries = self.plan, []
        count = len(p.parts)
        for part in p.parts:
            yield PartStarted(part.index, count, part.pages, part.tokens)
            began = time.perf_counter()
            content = part_prompt(part.text, part.index, count, part.pages, p.name, p.instruction)
            text = yield from self.call(content, p.part_max_tokens, final=False)
            self.map_calls += 1
            self.map_output += self.tokenizer.count_tokens(text)
            summaries.append(
                _Summary(part.index, part.index, part.first_page, part.last_page, text)
            )
            yield PartDone(
                part.index, count, text, time.perf_counter() - began, self.map_eta(part.index)
            )
        return summaries

    def map_eta(self, done: int) -> float:
        p = self.plan
        left = len(p.parts) - done
        per_summary = self.map_output / done
        label = label_tokens(self.tokenizer, p.paginated)
        reduce_calls = estimate_reduce_calls(
            len(p.parts), int(per_summary) + label, p.part_budget, p.num_ctx - p.max_tokens
        )
        input_left = sum(part.tokens for part in p.parts[done:])
        input_left += int(len(p.parts) * (per_summary + label) * (1 + (reduce_calls > 1)))
        return self.eta(input_left, int((left + reduce_calls) * per_summary))

    def prompt_len(self, content: str) -> int:
        return len(self.tokenizer.encode_chat(user_message(content)))

    def reduce(self, summaries: list[_Summary]) -> Iterator[SummaryEvent]:
        p, level = self.plan, 0
        while True:
            level += 1
            self.levels = level
            content = self.combined(summaries, final=True)
            n = self.prompt_len(content)
            if n + p.max_tokens <= p.num_ctx:
                yield CombineStarted(level, 1, 1, True, self.eta(n, p.max_tokens // 2))
                self.reduce_calls += 1
                return (yield from self.call(content, p.max_tokens, final=True))
            groups = self.groups(summaries)
            if len(groups) >= len(summaries):
                raise SummaryBudgetError(
                    f"the part summaries do not fit a context of {p.num_ctx:,} tokens to combine"
                )
            merged, start = [], 0
            sizes = [self.tokenizer.count_tokens(s.text) for s in summaries]
            for g, group in enumerate(groups, 1):
                # Left: this round's remaining summaries in, then about half-full answers out.
                input_left = sum(sizes[start:]) + len(groups) * p.part_max_tokens // 2
                output_left = (len(groups) - g + 1) * p.part_max_tokens // 2 + p.max_tokens // 2
                start += len(group)
                eta = self.eta(input_left, output_left)
                yield CombineStarted(level, g, len(groups), False, eta)
                self.reduce_calls += 1
                text = yield from self.call(self.combined(group, False), p.part_max_tokens, False)
                first, last = group[0], group[-1]
                merged.append(
                    _Summary(first.first, last.last, first.first_page, last.last_page, text)
                )
            summaries = merged

    def groups(self, summaries: list[_Summary]) -> list[list[_Summary]]:
        """Consecutive groups whose combine prompt leaves room in num_ctx for its summary."""
        limit = self.plan.num_ctx - self.plan.part_max_tokens
        groups: list[list[_Summary]] = [[]]
        for s in summaries:
            if groups[-1] and self.prompt_len(self.combined([*groups[-1], s], False)) > limit:
                groups.append([])
            groups[-1].append(s)
        return groups

    def combined(self, group: Sequence[_Summary], final: bool) -> str:
        p = self.plan
        span = ""
        if not final:
            pages = page_range(group[0].first_page, group[-1].last_page)
            span = (
                f" (parts {group[0].first}–{group[-1].last}{f', pages {pages}' if pages else ''})"
            )
        blocks = "\n\n".join(s.block() for s in group)
        return combine_prompt(blocks, span, p.name, p.instruction, final)

    def done(self, text: str, cancelled: bool) -> SummaryDone:
        stats = SummaryStats(
            seconds=time.perf_counter() - self.start,
            map_calls=self.map_calls,
            reduce_calls=self.reduce_calls,
            reduce_levels=self.levels,
            prompt_tokens=self.prompt_tokens,
            generated_tokens=self.generated,
            length_limited_calls=self.limited,
            final=self.final_stats,
        )
        return SummaryDone(
            text, len(self.plan.parts), self.calls, self.prompt_tokens, stats, cancelled
        )


def summarize(
    doc: Document | str | Sequence[Page],
    generate_fn: GenerateFn,
    tokenizer: TekkenTokenizer,
    num_ctx: int,
    *,
    instruction: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    cancel: threading.Event | None = None,
    part_max_tokens: int | None = None,
) -> Iterator[SummaryEvent]:
    """SummaryPlan, then PartStarted/PartDone per part (map-reduce), CombineStarted per reduce
    call, the answer as TextChunks (with its PrefillProgress), and one SummaryDone last.

    Plans before returning, so SummaryBudgetError is raised by this call, before any model call.
    Cancel is checked between calls and passed into each; a cancelled run ends with
    SummaryDone(cancelled=True) and makes no further model call.
    """
    plan = plan_summary(
        doc, tokenizer, num_ctx, max_tokens, instruction, part_max_tokens=part_max_tokens
    )
    return _Run(plan, generate_fn, tokenizer, cancel).events()


def session_generate_fn(
    session: ChatSession, settings: SamplingSettings | None = None
) -> GenerateFn:
    """The model call for summarize(): each call is a one-message chat on the session's cache."""
    from engine.generate import SamplingSettings

    base = settings or SamplingSettings()

    def generate(
        messages: list[dict[str, str]], max_tokens: int, cancel: threading.Event | None
    ) -> Iterator[Event]:
        return session.chat(messages, replace(base, max_tokens=max_tokens), cancel)

    return generate
