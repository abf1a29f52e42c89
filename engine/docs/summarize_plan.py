"""Planning a long-document run: single pass or parts, split on Tekken token counts.

Each part's prompt is capped at a faithful size (`part_cap`, default 16K tokens: RULER scores
Nemo 87.7 at 16K and 69.0 at 32K, see DESIGN.md) and never more than num_ctx allows; a single
pass only when everything fits under that cap. Documents are split at page and paragraph
boundaries (a paragraph over the budget at lines, then sentences, then tokens), each part starting
with a small overlap from the part before; a part never spans two documents. Every budget is
checked by counting the exact chat prompt, so no call can overflow and nothing is left out.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from engine.docs.extract import Document, Page
from engine.docs.summarize_prompts import (
    DEFAULT_INSTRUCTION,
    Prompts,
    SummaryPrompts,
    combine_prompt,
    document_block,
    part_prompt,
    single_prompt,
    subject,
    summary_block,
)
from engine.tokenizer import TekkenTokenizer

__all__ = [
    "DEFAULT_INSTRUCTION",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_PART_CAP",
    "Part",
    "Plan",
    "Source",
    "SummaryBudgetError",
    "combine_prompt",
    "estimate_reduce_calls",
    "label_tokens",
    "page_range",
    "part_prompt",
    "plan_summary",
    "single_prompt",
    "summary_block",
    "user_message",
]

DEFAULT_MAX_TOKENS = 1024
DEFAULT_PART_CAP = 16_384  # prompt tokens Nemo reads faithfully (RULER 87.7 at 16K)
OVERLAP = 0.05  # of a part's budget, repeated from the end of the previous part
_WORST_INDEX = 999_999  # placeholder part numbers and pages when sizing the prompt template
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?;。！？])\s+")

Input = Document | str | Sequence[Page]


class SummaryBudgetError(ValueError):
    """num_ctx is too small to leave room for the document, the template and the answer."""


@dataclass(frozen=True)
class Source:
    """One input document as the plan sees it: its name and the pages that have text."""

    name: str | None
    pages: tuple[tuple[int | None, str], ...]  # (page number or None, text)
    paginated: bool
    page_count: int | None  # pages in the file (empty ones included); None when not paginated

    def cited(self) -> str:
        if not self.paginated:
            return "\n\n".join(text for _, text in self.pages)
        return "\n\n".join(f"[page {n}]\n{text}" for n, text in self.pages)

    @property
    def first_page(self) -> int | None:
        return self.pages[0][0] if self.pages else None

    @property
    def last_page(self) -> int | None:
        return self.pages[-1][0] if self.pages else None


@dataclass(frozen=True)
class Part:
    index: int  # 1-based, across all documents of the run
    text: str  # the part's text, with "[page N]" lines for paginated documents
    first_page: int | None
    last_page: int | None
    tokens: int  # prompt tokens of its model call
    source: str | None = None  # the file name of its document
    document: int = 0  # which document of the run (0-based)
    prompt: str = field(default="", compare=False, repr=False)  # exactly what is sent

    @property
    def pages(self) -> str:
        return page_range(self.first_page, self.last_page)

    @property
    def digest(self) -> str:
        """Names this part's content: a stored part summary resumes only the same part."""
        h = hashlib.sha256(f"{self.source or ''}\0{self.text}".encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    single_pass: bool
    parts: tuple[Part, ...]  # one part, every document, for a single pass
    total_tokens: int
    num_ctx: int
    max_tokens: int  # for the answer
    part_max_tokens: int  # for each part summary and intermediate combine
    part_budget: int  # prompt tokens a part or intermediate combine may use
    model_calls_estimate: int
    name: str | None  # the document's name (the first one's, for several)
    paginated: bool
    instruction: str | None
    part_cap: int = DEFAULT_PART_CAP
    final_budget: int = 0  # prompt tokens the answer's call may use
    sources: tuple[Source, ...] = field(default=(), repr=False)
    prompts: Prompts = field(default_factory=SummaryPrompts, compare=False, repr=False)

    @property
    def several(self) -> bool:
        return len(self.sources) > 1

    @property
    def what(self) -> str:
        return subject([s.name for s in self.sources] or [self.name])


@dataclass(frozen=True)
class _Block:
    text: str
    page: int | None
    joiner: str  # what separated it from the block before in the source
    tokens: int


def page_range(first: int | None, last: int | None) -> str:
    if first is None:
        return ""
    return str(first) if first == last else f"{first}–{last}"


def _source(doc: Input) -> Source:
    if isinstance(doc, str):
        return Source(None, ((None, doc),), False, None)
    if isinstance(doc, Document):
        if not doc.paginated:
            return Source(doc.name, ((None, doc.text),), False, None)
        pages = tuple((p.number, p.text) for p in doc.pages if p.text.strip())
        return Source(doc.name, pages, True, doc.page_count)
    pages = tuple((p.number, p.text) for p in doc if p.text.strip())
    return Source(None, pages, True, pages[-1][0] if pages else None)


def sources_of(docs: Input | Sequence[Document | str]) -> tuple[Source, ...]:
    """One Source per document; a list of Documents or strings is several documents."""
    several = (
        isinstance(docs, (list, tuple))
        and bool(docs)
        and all(isinstance(d, (Document, str)) for d in docs)
    )
    # `all` above does not narrow: a list of Documents/strings is several inputs, else one input
    items = list(cast("Sequence[Document | str]", docs)) if several else [cast(Input, docs)]
    sources = tuple(_source(d) for d in items)
    if len(sources) > 1:  # unnamed texts among several get a name to cite them by
        sources = tuple(
            s if s.name else Source(f"text {i}", s.pages, s.paginated, s.page_count)
            for i, s in enumerate(sources, 1)
        )
    return sources


def user_message(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


_SPLITTERS = ((lambda text: text.split("\n"), "\n"), (_SENTENCE_END.split, " "))


def _pieces(
    text: str, limit: int, tokenizer: TekkenTokenizer, level: int = 0, joiner: str = "\n\n"
) -> Iterator[tuple[str, str]]:
    """(joiner, text) pieces of at most `limit` tokens: whole, else at lines, sentences, tokens."""
    if tokenizer.count_tokens(text) <= limit:
        yield joiner, text
    elif level == len(_SPLITTERS):
        for i, piece in enumerate(_token_pieces(text, limit, tokenizer)):
            yield (joiner if i == 0 else ""), piece
    else:
        split, inner = _SPLITTERS[level]
        for i, piece in enumerate(p for p in split(text) if p.strip()):
            yield from _pieces(piece, limit, tokenizer, level + 1, joiner if i == 0 else inner)


def _token_pieces(text: str, limit: int, tokenizer: TekkenTokenizer) -> Iterator[str]:
    # A run without sentence ends (a table, a hash): cut on tokens, never inside a UTF-8 character.
    ids = tokenizer.encode(text)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    step = max(1, limit - 4)  # re-encoding a cut piece can merge differently at its edges
    for i in range(0, len(ids), step):
        chunk = b"".join(tokenizer.token_bytes(t) for t in ids[i : i + step])
        piece = decoder.decode(chunk, final=i + step >= len(ids))
        if piece:
            yield piece


def _blocks(
    pages: list[tuple[int | None, str]], limit: int, tokenizer: TekkenTokenizer
) -> list[_Block]:
    blocks = []
    for page, text in pages:
        for para in filter(None, (p.strip() for p in _PARAGRAPH.split(text))):
            for joiner, piece in _pieces(para, limit, tokenizer):
                blocks.append(_Block(piece, page, joiner, tokenizer.count_tokens(piece)))
    return blocks


def _render(blocks: Sequence[_Block], paginated: bool) -> str:
    out: list[str] = []
    page: object = object()
    for b in blocks:
        if paginated and b.page != page:
            out.append(("\n\n" if out else "") + f"[page {b.page}]\n{b.text}")
            page = b.page
        else:
            out.append((b.joiner if out else "") + b.text)
    return "".join(out)


def _overlap(blocks: Sequence[_Block], limit: int, tokenizer: TekkenTokenizer) -> list[_Block]:
    """Trailing blocks of a part within `limit` tokens; else the last block's trailing sentences."""
    taken: list[_Block] = []
    total = 0
    for b in reversed(blocks):
        if total + b.tokens + 1 > limit:
            break
        taken.insert(0, b)
        total += b.tokens + 1
    if taken or not blocks:
        return taken
    last = blocks[-1]
    tail = ""
    for sentence in reversed(_SENTENCE_END.split(last.text)):
        candidate = f"{sentence} {tail}" if tail else sentence
        if tokenizer.count_tokens(candidate) > limit:
            break
        tail = candidate
    return [_Block(tail, last.page, "\n\n", tokenizer.count_tokens(tail))] if tail else []


def _pack(
    blocks: list[_Block], budget: int, marker: int, paginated: bool, tokenizer: TekkenTokenizer
) -> list[list[_Block]]:
    """Greedy parts of at most `budget` estimated tokens, each starting with a small overlap."""
    parts: list[list[_Block]] = []
    i = 0
    while i < len(blocks):
        part = _overlap(parts[-1], int(budget * OVERLAP), tokenizer) if parts else []
        if part and sum(b.tokens + 1 for b in part) + marker + blocks[i].tokens + 1 > budget:
            part = []  # the next block is big: room for it comes first
        cost = sum(b.tokens + 1 for b in part) + marker
        start = i
        while i < len(blocks):
            b = blocks[i]
            step = b.tokens + 1 + (marker if paginated and part and b.page != part[-1].page else 0)
            if cost + step > budget and i > start:
                break
            part.append(b)
            cost += step
            i += 1
        parts.append(part)
    return parts


def _combine_groups(sizes: Sequence[int], budget: int) -> list[int]:
    """Group lengths for consecutive summaries of `sizes` tokens, each group within budget."""
    groups: list[int] = []
    total = 0
    for size in sizes:
        if groups and total + size <= budget:
            groups[-1] += 1
            total += size
        else:
            groups.append(1)
            total = size
    return groups


def estimate_reduce_calls(n: int, size: int, inter_budget: int, final_budget: int) -> int:
    """Combine calls for n summaries of `size` tokens: rounds of groups, then the final call."""
    calls = 0
    while n * size > final_budget:
        groups = len(_combine_groups([size] * n, inter_budget))
        if groups >= n:
            break
        calls += groups
        n = groups
    return calls + 1


def plan_summary(
    document_text_or_pages: Input | Sequence[Document | str],
    tokenizer: TekkenTokenizer,
    num_ctx: int,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    instruction: str | None = None,
    *,
    part_max_tokens: int | None = None,
    part_cap: int = DEFAULT_PART_CAP,
    prompts: Prompts | None = None,
) -> Plan:
    """Single pass if every document + instruction fit under min(part_cap, num_ctx - answer),
    else the parts of a map-reduce, each prompt within min(part_cap, num_ctx - part answer)."""
    instruction = instruction.strip() if instruction and instruction.strip() else None
    prompts = prompts or SummaryPrompts(instruction)
    sources = sources_of(document_text_or_pages)
    if not any(text.strip() for s in sources for _, text in s.pages):
        raise ValueError("the document has no text to summarize")
    sources = tuple(s for s in sources if s.pages)
    several = len(sources) > 1
    paginated = any(s.paginated for s in sources)
    total = sum(tokenizer.count_tokens(s.cited()) for s in sources)

    def count(content: str) -> int:
        return len(tokenizer.encode_chat(user_message(content)))

    part_max = part_max_tokens or min(max_tokens, max(64, num_ctx // 8))
    part_limit = min(part_cap, num_ctx - part_max)
    final_limit = min(part_cap, num_ctx - max_tokens)
    common: dict[str, Any] = dict(
        total_tokens=total,
        num_ctx=num_ctx,
        max_tokens=max_tokens,
        part_max_tokens=part_max,
        part_budget=part_limit,
        name=sources[0].name,
        paginated=paginated,
        instruction=instruction,
        part_cap=part_cap,
        final_budget=final_limit,
        sources=sources,
        prompts=prompts,
    )
    documents = "\n\n".join(document_block(s.cited(), s.name) for s in sources)
    single_text = prompts.single(documents, paginated, several)
    single = count(single_text)
    if single <= final_limit:
        part = Part(
            1, documents, sources[0].first_page, sources[-1].last_page, single,
            sources[0].name, 0, single_text,
        )  # fmt: skip
        return Plan(True, (part,), model_calls_estimate=1, **common)

    worst = page_range(_WORST_INDEX, _WORST_INDEX) if paginated else ""
    longest = max(sources, key=lambda s: len(s.name or "")).name
    what = subject([longest])
    overhead = count(prompts.part("", _WORST_INDEX, _WORST_INDEX, worst, what))
    label = label_tokens(tokenizer, paginated, longest if several else None)
    span = f" (parts {_WORST_INDEX}–{_WORST_INDEX}, pages {worst})"
    every = subject([s.name for s in sources])
    inter = part_limit - count(prompts.combine("", span, every, False))
    final = final_limit - count(prompts.combine("", "", every, True))
    text_budget = part_limit - overhead
    if text_budget < 64 or min(inter, final) < 2 * (part_max + label):
        capped = (
            f" and parts capped at {part_cap:,} tokens" if part_cap < num_ctx - part_max else ""
        )
        raise SummaryBudgetError(
            f"a context of {num_ctx:,} tokens is too small to summarize in parts with a "
            f"{max_tokens:,}-token answer{capped}; raise the context length or lower the "
            "answer length"
        )
    marker = tokenizer.count_tokens(f"\n\n[page {_WORST_INDEX}]\n") if paginated else 0
    budget = text_budget
    while True:  # estimates are sums of pieces; the exact count of each whole prompt decides
        if budget < 64:
            raise SummaryBudgetError(f"the document cannot be split to fit {part_limit:,} tokens")
        packed: list[tuple[int, list[_Block]]] = []
        for d, s in enumerate(sources):
            blocks = _blocks(list(s.pages), budget - marker - 2, tokenizer)
            packed += [(d, p) for p in _pack(blocks, budget, marker, s.paginated, tokenizer)]
        parts, excess = [], 0
        per_doc = [sum(1 for d, _ in packed if d == k) for k in range(len(sources))]
        seen = [0] * len(sources)
        for i, (d, part_blocks) in enumerate(packed, 1):
            s = sources[d]
            seen[d] += 1
            text = _render(part_blocks, s.paginated)
            first, last = part_blocks[0].page, part_blocks[-1].page
            prompt = prompts.part(
                text, seen[d], per_doc[d], page_range(first, last), subject([s.name])
            )
            n = count(prompt)
            excess = max(excess, n - part_limit)
            parts.append(Part(i, text, first, last, n, s.name, d, prompt))
        if excess <= 0:
            break
        budget -= max(excess, 8)
    calls = len(parts) + estimate_reduce_calls(len(parts), part_max + label, inter, final)
    return Plan(False, tuple(parts), model_calls_estimate=calls, **common)


def label_tokens(tokenizer: TekkenTokenizer, paginated: bool, source: str | None = None) -> int:
    worst = page_range(_WORST_INDEX, _WORST_INDEX) if paginated else ""
    block = summary_block(_WORST_INDEX, _WORST_INDEX, worst, "", source)
    return tokenizer.count_tokens(block) + 2
