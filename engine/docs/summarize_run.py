"""Running a plan: the map step (sequential or batched), the reduce step, coverage, stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.docs.batch import BatchFn
from engine.docs.coverage import coverage, ranges
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
    Part,
    Plan,
    SummaryBudgetError,
    estimate_reduce_calls,
    label_tokens,
    page_range,
    summary_block,
    user_message,
)
from engine.events import Cancelled, Finished, GenerationStats, PrefillProgress, TextChunk
from engine.tokenizer import TekkenTokenizer


@dataclass(frozen=True)
class _Summary:
    first: int  # part numbers it covers
    last: int
    first_page: int | None
    last_page: int | None
    text: str
    source: str | None = None  # set when every part it covers is from this file

    def block(self, several: bool) -> str:
        pages = page_range(self.first_page, self.last_page) if self.source or not several else ""
        return summary_block(
            self.first, self.last, pages, self.text, self.source if several else None
        )


class _Stop(Exception):
    pass


class Run:
    def __init__(
        self,
        plan: Plan,
        generate_fn,
        tokenizer: TekkenTokenizer,
        cancel: threading.Event | None,
        batch_fn: BatchFn | None = None,
        batch_size: int = 1,
        finished: Sequence[FinishedPart] = (),
    ):
        self.plan, self.generate_fn, self.cancel = plan, generate_fn, cancel
        self.batch_fn, self.batch_size = batch_fn, batch_size
        self.finished = {f.digest: f for f in finished}
        self.tokenizer = tokenizer
        self.start = time.perf_counter()
        self.calls = self.map_calls = self.reduce_calls = self.levels = self.limited = 0
        self.prompt_tokens = self.generated = self.resumed = self.peak = 0
        self.prefill_s = self.decode_s = 0.0  # measured split of model time, when reported
        self.map_output = 0  # tokens of the part summaries read so far
        self.final_stats: GenerationStats | None = None
        self.answer: list[str] = []
        self.done_parts: dict[int, tuple[Part, str]] = {}  # index -> (part, summary)

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    # -- accounting -------------------------------------------------------------------------

    def account(self, stats: GenerationStats | None, text: str, spent: float, final: bool) -> None:
        if stats is not None:
            self.generated += stats.generated_tokens
            self.limited += stats.finish_reason == "length"
            self.peak = max(self.peak, stats.peak_memory_bytes)
            prefill = min(stats.ttft_s, spent) if spent else stats.ttft_s
            self.prefill_s += prefill
            if spent:
                self.decode_s += max(spent - stats.ttft_s, 0.0)
            elif stats.decode_tps > 0:
                self.decode_s += stats.generated_tokens / stats.decode_tps
            if final:
                self.final_stats = stats
        else:
            self.generated += self.tokenizer.count_tokens(text)
            self.prefill_s += spent  # no split reported: all of it counts per input token

    def call(self, content: str, max_tokens: int, final: bool) -> Iterator[SummaryEvent]:
        """One model call; streams it when final; returns the text (raises _Stop on cancel)."""
        if self.cancelled():
            raise _Stop
        messages = user_message(content)
        self.calls += 1
        self.prompt_tokens += len(self.tokenizer.encode_chat(messages))
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
        self.account(stats, text, time.perf_counter() - began, final)
        if self.cancelled() or (stats is not None and stats.finish_reason == "cancelled"):
            raise _Stop
        return text

    def eta(self, input_left: int, output_left: int) -> float:
        per_in = self.prefill_s / self.prompt_tokens if self.prompt_tokens else 0.0
        per_out = self.decode_s / self.generated if self.generated else 0.0
        return per_in * input_left + per_out * output_left

    # -- the run ----------------------------------------------------------------------------

    def events(self) -> Iterator[SummaryEvent]:
        p = self.plan
        infos = tuple(
            PartInfo(
                part.index,
                part.source,
                part.first_page,
                part.last_page,
                part.tokens,
                part.digest,
                part.digest in self.finished and not p.single_pass,
            )  # fmt: skip
            for part in p.parts
        )
        yield SummaryPlan(
            len(p.parts), p.total_tokens, p.model_calls_estimate, p.single_pass,
            p.part_budget, self.batch_size if not p.single_pass else 1, infos,
        )  # fmt: skip
        try:
            if p.single_pass:
                text = yield from self.call(p.parts[0].prompt, p.max_tokens, final=True)
                self.done_parts[1] = (p.parts[0], text)
            else:
                summaries = yield from self.map()
                text = yield from self.reduce(summaries)
        except _Stop:
            yield self.done(self.stopped_text(), cancelled=True)
            return
        footer = self.footer()
        yield TextChunk(footer)
        yield self.done(text + footer, cancelled=False)

    def part_done(self, part: Part, text: str, seconds: float, generated: int, resumed: bool):
        self.done_parts[part.index] = (part, text)
        if not resumed:
            self.map_calls += 1
            self.map_output += self.tokenizer.count_tokens(text)
        return PartDone(
            part.index, len(self.plan.parts), text, seconds, self.map_eta(),
            part.first_page, part.last_page, part.source, part.digest, generated, resumed,
            self.plan.prompts.relevant(text),
        )  # fmt: skip

    def map(self) -> Iterator[SummaryEvent]:
        p = self.plan
        todo = []
        for part in p.parts:
            prior = self.finished.get(part.digest)
            if prior is not None:
                self.resumed += 1
                yield self.part_done(part, prior.text, 0.0, 0, resumed=True)
            else:
                todo.append(part)
        if self.batch_fn is not None and len(todo) > 1:
            yield from self.map_batched(todo)
        else:
            for part in todo:
                yield PartStarted(part.index, len(p.parts), part.pages, part.tokens, part.source)
                began = time.perf_counter()
                before = self.generated
                text = yield from self.call(part.prompt, p.part_max_tokens, final=False)
                yield self.part_done(
                    part, text, time.perf_counter() - began, self.generated - before, False
                )
        return [self.summary_of(*self.done_parts[i]) for i in sorted(self.done_parts)]

    def map_batched(self, todo: list[Part]) -> Iterator[SummaryEvent]:
        """All remaining parts through the batched call; each part reported as it finishes."""
        p, count = self.plan, len(self.plan.parts)
        chunks: dict[int, list[str]] = {i: [] for i in range(len(todo))}
        began: dict[int, float] = {}
        assert self.batch_fn is not None  # map() batches only when there is a batch_fn
        events = self.batch_fn(
            [user_message(part.prompt) for part in todo], p.part_max_tokens, self.cancel,
            self.batch_size,
        )  # fmt: skip
        try:
            for i, event in events:
                part = todo[i]
                if i not in began:
                    began[i] = time.perf_counter()
                    self.calls += 1
                    self.prompt_tokens += part.tokens
                    yield PartStarted(part.index, count, part.pages, part.tokens, part.source)
                if isinstance(event, TextChunk):
                    chunks[i].append(event.text)
                elif isinstance(event, Finished):
                    text = "".join(chunks[i]).strip()
                    self.account(event.stats, text, 0.0, False)
                    if event.stats.finish_reason == "cancelled" or self.cancelled():
                        continue  # cut short: not a finished part
                    seconds = time.perf_counter() - began[i]
                    yield self.part_done(part, text, seconds, event.stats.generated_tokens, False)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # here, on the engine thread
        if self.cancelled():
            raise _Stop

    def summary_of(self, part: Part, text: str) -> _Summary:
        return _Summary(part.index, part.index, part.first_page, part.last_page, text, part.source)

    def map_eta(self) -> float:
        p = self.plan
        read = len(self.done_parts) - self.resumed
        if read <= 0:
            return 0.0
        left = [part for part in p.parts if part.index not in self.done_parts]
        per_summary = self.map_output / read
        label = label_tokens(self.tokenizer, p.paginated)
        reduce_calls = estimate_reduce_calls(
            len(p.parts), int(per_summary) + label, p.part_budget, p.final_budget
        )
        input_left = sum(part.tokens for part in left)
        input_left += int(len(p.parts) * (per_summary + label) * (1 + (reduce_calls > 1)))
        return self.eta(input_left, int((len(left) + reduce_calls) * per_summary))

    def prompt_len(self, content: str) -> int:
        return len(self.tokenizer.encode_chat(user_message(content)))

    def reduce(self, summaries: list[_Summary]) -> Iterator[SummaryEvent]:
        p, level = self.plan, 0
        summaries = [s for s in summaries if p.prompts.relevant(s.text)]
        if not summaries:  # a question that no part answers: say so, no model call
            text = p.prompts.none_found(p.what)
            self.answer.append(text)
            yield TextChunk(text)
            return text
        while True:
            level += 1
            self.levels = level
            content = self.combined(summaries, final=True)
            n = self.prompt_len(content)
            if n <= p.final_budget:
                yield CombineStarted(level, 1, 1, True, self.eta(n, p.max_tokens // 2))
                self.reduce_calls += 1
                return (yield from self.call(content, p.max_tokens, final=True))
            groups = self.groups(summaries)
            if len(groups) >= len(summaries):
                raise SummaryBudgetError(
                    f"the part summaries do not fit {p.part_budget:,} tokens to combine"
                )
            merged, start = [], 0
            sizes = [self.tokenizer.count_tokens(s.text) for s in summaries]
            for g, group in enumerate(groups, 1):
                # Left: this round's remaining summaries in, then about half-full answers out.
                input_left = sum(sizes[start:]) + len(groups) * p.part_max_tokens // 2
                output_left = (len(groups) - g + 1) * p.part_max_tokens // 2 + p.max_tokens // 2
                start += len(group)
                yield CombineStarted(
                    level, g, len(groups), False, self.eta(input_left, output_left)
                )
                self.reduce_calls += 1
                text = yield from self.call(self.combined(group, False), p.part_max_tokens, False)
                first, last = group[0], group[-1]
                same = first.source if all(s.source == first.source for s in group) else None
                merged.append(
                    _Summary(first.first, last.last, first.first_page, last.last_page, text, same)
                )
            summaries = merged

    def groups(self, summaries: list[_Summary]) -> list[list[_Summary]]:
        """Consecutive groups whose combine prompt fits the part budget."""
        limit = self.plan.part_budget
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
            same = all(s.source == group[0].source for s in group)
            pages = page_range(group[0].first_page, group[-1].last_page) if same else ""
            span = (
                f" (parts {group[0].first}–{group[-1].last}{f', pages {pages}' if pages else ''})"
            )
        blocks = "\n\n".join(s.block(p.several) for s in group)
        return p.prompts.combine(blocks, span, p.what, final)

    # -- coverage and the end ---------------------------------------------------------------

    def parts_read(self) -> list[Part]:
        return [part for part, _ in self.done_parts.values()]

    def footer(self) -> str:
        cov = coverage(self.plan, self.parts_read())
        lines = [f"Covered: {cov.line()}."]
        quiet = self.irrelevant()
        if quiet:
            lines.append(f"Nothing relevant in: {quiet}.")
        return "\n\n" + "\n".join(lines)

    def irrelevant(self) -> str:
        """Where the parts without anything relevant are (questions only)."""
        p = self.plan
        by_file: dict[str | None, list[int]] = {}
        parts: list[Part] = []
        for part, text in sorted(self.done_parts.values(), key=lambda x: x[0].index):
            if not p.prompts.relevant(text):
                parts.append(part)
                if part.first_page is not None and part.last_page is not None:
                    by_file.setdefault(part.source, []).extend(
                        range(part.first_page, part.last_page + 1)
                    )
        if not parts:
            return ""
        if not by_file:
            return f"parts {ranges(x.index for x in parts)}"
        items = [
            (f'"{name}" ' if p.several and name else "") + f"pages {ranges(pages)}"
            for name, pages in by_file.items()
        ]
        return "; ".join(items)

    def stopped_text(self) -> str:
        """A stopped run: what the answer had written, else the finished part summaries, and
        the pages not read yet."""
        cov = coverage(self.plan, self.parts_read())
        body = "".join(self.answer).strip()
        if not body and not self.plan.single_pass:
            body = "\n\n".join(
                self.summary_of(part, text).block(self.plan.several)
                for part, text in sorted(self.done_parts.values(), key=lambda x: x[0].index)
            )
        unread = cov.unread_line()
        note = f"Stopped after {cov.parts_done} of {cov.parts} parts"
        note += f"; not read yet: {unread}." if unread else "."
        return f"{body}\n\n{note}" if body else note

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
            resumed_parts=self.resumed,
            batch_size=self.batch_size,
            peak_memory_bytes=self.peak,
        )
        return SummaryDone(
            text, len(self.plan.parts), self.calls, self.prompt_tokens, stats, cancelled,
            coverage(self.plan, self.parts_read()),
        )  # fmt: skip
