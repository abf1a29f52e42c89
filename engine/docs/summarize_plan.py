"""Planning a summary: single pass or parts, split on Tekken token counts; the prompts.

A document that does not fit num_ctx is split at page and paragraph boundaries (a paragraph over
the budget at lines, then sentences, then tokens) into parts that each fit their model call with
room for the summary, each starting with a small overlap from the part before. Every budget is
checked by counting the exact chat prompt, so no call can overflow and nothing is left out.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.docs.extract import Document, Page
from engine.tokenizer import TekkenTokenizer

DEFAULT_MAX_TOKENS = 1024
OVERLAP = 0.05  # of a part's budget, repeated from the end of the previous part
_WORST_INDEX = 999_999  # placeholder part numbers and pages when sizing the prompt template
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?;。！？])\s+")

DEFAULT_INSTRUCTION = (
    "Summarize this document faithfully and completely: its purpose, every main point and the "
    "key facts (parties, names, dates, amounts, obligations, conditions, deadlines). "
    "Add nothing that is not in it."
)


class SummaryBudgetError(ValueError):
    """num_ctx is too small to leave room for the document, the template and the answer."""


@dataclass(frozen=True)
class Part:
    index: int  # 1-based
    text: str  # the part's text, with "[page N]" lines for paginated documents
    first_page: int | None
    last_page: int | None
    tokens: int  # prompt tokens of its model call

    @property
    def pages(self) -> str:
        return page_range(self.first_page, self.last_page)


@dataclass(frozen=True)
class Plan:
    single_pass: bool
    parts: tuple[Part, ...]  # one part, the whole document, for a single pass
    total_tokens: int
    num_ctx: int
    max_tokens: int  # for the answer
    part_max_tokens: int  # for each part summary and intermediate combine
    part_budget: int  # prompt tokens a part's call may use: num_ctx - part_max_tokens
    model_calls_estimate: int
    name: str | None
    paginated: bool
    instruction: str | None


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


def _source(doc: Document | str | Sequence[Page]) -> tuple[list[tuple[int | None, str]], bool]:
    """(page number or None, text) pairs, and whether the numbers are real pages."""
    if isinstance(doc, str):
        return [(None, doc)], False
    if isinstance(doc, Document):
        if not doc.paginated:
            return [(None, doc.text)], False
        doc = doc.pages
    return [(p.number, p.text) for p in doc if p.text.strip()], True


def _cited(pages: list[tuple[int | None, str]], paginated: bool) -> str:
    if not paginated:
        return "\n\n".join(text for _, text in pages)
    return "\n\n".join(f"[page {n}]\n{text}" for n, text in pages)  # Document.cited_text()


def user_message(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def _name(name: str | None) -> str:
    return f' "{name}"' if name else ""


def single_prompt(text: str, name: str | None, instruction: str | None, paginated: bool) -> str:
    cite = " Cite pages as [page N] from the page markers." if paginated else ""
    return (
        f"<document{_name(name)}>\n{text}\n</document>\n\n"
        f"{instruction or DEFAULT_INSTRUCTION}{cite}"
    )


def part_prompt(
    text: str, index: int, count: int, pages: str, name: str | None, instruction: str | None
) -> str:
    where = f" (pages {pages})" if pages else ""
    cite = (
        " After each point cite its page as [page N] from the page markers."
        if pages
        else " Mention section numbers or headings where the text has them."
    )
    focus = (
        f" Keep in particular everything relevant to this request: {instruction}"
        if instruction
        else ""
    )
    return (
        f"This is part {index} of {count} of the document{_name(name)}{where}.\n\n"
        f"<part>\n{text}\n</part>\n\n"
        "Summarize this part faithfully: every main point and key fact (names, dates, amounts, "
        f"obligations, conditions, deadlines), and nothing that is not in it.{cite}{focus}"
    )


def combine_prompt(
    blocks: str, span: str, name: str | None, instruction: str | None, final: bool
) -> str:
    if final:
        task = (
            f"{instruction or DEFAULT_INSTRUCTION} Write one coherent summary of the whole document "
            "from these part summaries, keeping their page or section citations."
        )
    else:
        task = (
            "Combine them into one summary of these parts that keeps every main point, every key "
            "fact and their page or section citations. Add nothing that is not in them."
        )
    return (
        f"Below are summaries of consecutive parts of the document{_name(name)}{span}, in order."
        f"\n\n{blocks}\n\n{task}"
    )


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
    document_text_or_pages: Document | str | Sequence[Page],
    tokenizer: TekkenTokenizer,
    num_ctx: int,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    instruction: str | None = None,
    *,
    part_max_tokens: int | None = None,
) -> Plan:
    """Single pass if document + instruction + answer fit num_ctx, else the parts of a map-reduce."""
    instruction = instruction.strip() if instruction and instruction.strip() else None
    doc = document_text_or_pages
    name = doc.name if isinstance(doc, Document) else None
    pages, paginated = _source(doc)
    if not pages or not any(t.strip() for _, t in pages):
        raise ValueError("the document has no text to summarize")
    cited = _cited(pages, paginated)
    total = tokenizer.count_tokens(cited)

    def count(content: str) -> int:
        return len(tokenizer.encode_chat(user_message(content)))

    single = count(single_prompt(cited, name, instruction, paginated))
    part_max = part_max_tokens or min(max_tokens, max(64, num_ctx // 8))
    common = dict(
        total_tokens=total,
        num_ctx=num_ctx,
        max_tokens=max_tokens,
        part_max_tokens=part_max,
        part_budget=num_ctx - part_max,
        name=name,
        paginated=paginated,
        instruction=instruction,
    )
    if single + max_tokens <= num_ctx:
        part = Part(1, cited, pages[0][0], pages[-1][0], single)
        return Plan(True, (part,), model_calls_estimate=1, **common)

    worst = page_range(_WORST_INDEX, _WORST_INDEX) if paginated else ""
    overhead = count(part_prompt("", _WORST_INDEX, _WORST_INDEX, worst, name, instruction))
    label = label_tokens(tokenizer, paginated)
    inter = num_ctx - part_max - count(combine_prompt("", worst, name, instruction, False))
    final = num_ctx - max_tokens - count(combine_prompt("", worst, name, instruction, True))
    text_budget = num_ctx - part_max - overhead
    if text_budget < 64 or min(inter, final) < 2 * (part_max + label):
        raise SummaryBudgetError(
            f"a context of {num_ctx:,} tokens is too small to summarize in parts with a "
            f"{max_tokens:,}-token answer; raise the context length or lower the answer length"
        )
    marker = tokenizer.count_tokens(f"\n\n[page {_WORST_INDEX}]\n") if paginated else 0
    budget = text_budget
    while True:  # estimates are sums of pieces; the exact count of each whole prompt decides
        if budget < 64:
            raise SummaryBudgetError(f"the document cannot be split to fit {num_ctx:,} tokens")
        blocks = _blocks(pages, budget - marker - 2, tokenizer)
        packed = _pack(blocks, budget, marker, paginated, tokenizer)
        parts, excess = [], 0
        for i, part_blocks in enumerate(packed, 1):
            text = _render(part_blocks, paginated)
            pages_i = page_range(part_blocks[0].page, part_blocks[-1].page)
            n = count(part_prompt(text, i, len(packed), pages_i, name, instruction))
            excess = max(excess, n - (num_ctx - part_max))
            parts.append(Part(i, text, part_blocks[0].page, part_blocks[-1].page, n))
        if excess <= 0:
            break
        budget -= max(excess, 8)
    calls = len(parts) + estimate_reduce_calls(len(parts), part_max + label, inter, final)
    return Plan(False, tuple(parts), model_calls_estimate=calls, **common)


def label_tokens(tokenizer: TekkenTokenizer, paginated: bool) -> int:
    worst = page_range(_WORST_INDEX, _WORST_INDEX) if paginated else ""
    return tokenizer.count_tokens(summary_block(_WORST_INDEX, _WORST_INDEX, worst, "")) + 2


def summary_block(first: int, last: int, pages: str, text: str) -> str:
    which = f"Part {first}" if first == last else f"Parts {first}–{last}"
    return f"### {which}{f' (pages {pages})' if pages else ''}\n{text}"
