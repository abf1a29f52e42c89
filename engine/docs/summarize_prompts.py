"""The prompts of a long-document run: one pass, each part, each combine (summary or question).

A `Prompts` object writes every prompt of a run, so the planner can size parts against the exact
template and the runner sends exactly what was counted. `SummaryPrompts` summarizes;
engine.docs.ask has the question-answering twin. Page citations are "[page N]" throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

DEFAULT_INSTRUCTION = (
    "Summarize this document faithfully and completely: its purpose, every main point and the "
    "key facts (parties, names, dates, amounts, obligations, conditions, deadlines). "
    "Add nothing that is not in it."
)


def quoted(name: str | None) -> str:
    return f' "{name}"' if name else ""


def subject(names: Sequence[str | None]) -> str:
    """'the document "a.pdf"', or 'the documents "a.pdf" and "b.txt"' for several."""
    named = [n for n in names if n]
    if len(names) <= 1 or not named:
        return f"the document{quoted(named[0] if named else None)}"
    listed = ", ".join(f'"{n}"' for n in named[:-1]) + f' and "{named[-1]}"'
    return f"the documents {listed}"


def document_block(text: str, name: str | None) -> str:
    return f"<document{quoted(name)}>\n{text}\n</document>"


def summary_block(first: int, last: int, pages: str, text: str, source: str | None = None) -> str:
    """A part summary inside a combine prompt, labelled with its parts, file and pages."""
    which = f"Part {first}" if first == last else f"Parts {first}–{last}"
    where = ", ".join(
        x for x in (f'"{source}"' if source else "", f"pages {pages}" if pages else "") if x
    )
    return f"### {which}{f' ({where})' if where else ''}\n{text}"


class Prompts(Protocol):
    """Writes a run's prompts; `documents` is one or more document_block()s."""

    def single(self, documents: str, paginated: bool, several: bool) -> str: ...
    def part(self, text: str, index: int, count: int, pages: str, what: str) -> str: ...
    def combine(self, blocks: str, span: str, what: str, final: bool) -> str: ...
    def relevant(self, text: str) -> bool:
        """Whether a part's answer belongs in the combine (a summary always does)."""
        ...

    def none_found(self, what: str) -> str:
        """The answer when no part had anything relevant (no model call)."""
        ...


def single_prompt(text: str, name: str | None, instruction: str | None, paginated: bool) -> str:
    return SummaryPrompts(instruction).single(document_block(text, name), paginated, False)


def part_prompt(
    text: str, index: int, count: int, pages: str, name: str | None, instruction: str | None
) -> str:
    return SummaryPrompts(instruction).part(text, index, count, pages, subject([name]))


def combine_prompt(
    blocks: str, span: str, name: str | None, instruction: str | None, final: bool
) -> str:
    return SummaryPrompts(instruction).combine(blocks, span, subject([name]), final)


def _cite_files(several: bool) -> str:
    return " With each citation name the file it comes from." if several else ""


@dataclass(frozen=True)
class SummaryPrompts:
    instruction: str | None = None

    def single(self, documents: str, paginated: bool, several: bool) -> str:
        cite = " Cite pages as [page N] from the page markers." if paginated else ""
        return (
            f"{documents}\n\n{self.instruction or DEFAULT_INSTRUCTION}{cite}{_cite_files(several)}"
        )

    def part(self, text: str, index: int, count: int, pages: str, what: str) -> str:
        where = f" (pages {pages})" if pages else ""
        cite = (
            " After each point cite its page as [page N] from the page markers."
            if pages
            else " Mention section numbers or headings where the text has them."
        )
        focus = (
            f" Keep in particular everything relevant to this request: {self.instruction}"
            if self.instruction
            else ""
        )
        return (
            f"This is part {index} of {count} of {what}{where}.\n\n"
            f"<part>\n{text}\n</part>\n\n"
            "Summarize this part faithfully: every main point and key fact (names, dates, "
            f"amounts, obligations, conditions, deadlines), and nothing that is not in it.{cite}"
            f"{focus}"
        )

    def combine(self, blocks: str, span: str, what: str, final: bool) -> str:
        if final:
            task = (
                f"{self.instruction or DEFAULT_INSTRUCTION} Write one coherent summary of the "
                "whole from these part summaries, keeping their page or section citations "
                "(and file names, where there are several files)."
            )
        else:
            task = (
                "Combine them into one summary of these parts that keeps every main point, every "
                "key fact and their page or section citations. Add nothing that is not in them."
            )
        return (
            f"Below are summaries of consecutive parts of {what}{span}, in order."
            f"\n\n{blocks}\n\n{task}"
        )

    def relevant(self, text: str) -> bool:
        return True

    def none_found(self, what: str) -> str:
        return f"Nothing in {what} could be summarized."
