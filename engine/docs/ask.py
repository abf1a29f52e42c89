"""Ask the whole document: the question goes to every part, the answers that found something
are combined with their page citations, and the parts with nothing relevant are named.

Complete coverage instead of retrieval's misses: the same planner, batched map step, resume and
coverage as summaries (engine.docs.summarize), with question prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Unpack

from engine.docs.extract import Document, Page
from engine.docs.summarize import GenerateFn, SummaryOptions, summarize
from engine.tokenizer import TekkenTokenizer

NOTHING = "NOTHING RELEVANT"  # what a part with nothing on the question answers


def _cite_files(several: bool) -> str:
    return " With each citation name the file it comes from." if several else ""


@dataclass(frozen=True)
class AskPrompts:
    question: str

    def single(self, documents: str, paginated: bool, several: bool) -> str:
        cite = " Cite the page of each fact as [page N] from the page markers." if paginated else ""
        return (
            f"{documents}\n\nAnswer this question from the text above, and only from it: "
            f"{self.question}{cite}{_cite_files(several)} If the text does not answer it, say so."
        )

    def part(self, text: str, index: int, count: int, pages: str, what: str) -> str:
        where = f" (pages {pages})" if pages else ""
        cite = " Cite each fact's page as [page N] from the page markers." if pages else ""
        return (
            f"This is part {index} of {count} of {what}{where}.\n\n<part>\n{text}\n</part>\n\n"
            f"Question: {self.question}\n\n"
            "Answer only from this part: state the facts in it that bear on the question."
            f"{cite} If this part has nothing relevant to the question, answer exactly: {NOTHING}"
        )

    def combine(self, blocks: str, span: str, what: str, final: bool) -> str:
        if final:
            task = (
                f"Answer the question from these findings: {self.question} Keep each fact's page "
                "citation (and file name, where there are several files). Add nothing that is "
                "not in them."
            )
        else:
            task = (
                "Combine these findings into one list that keeps every fact bearing on the "
                "question and its page citation. Add nothing that is not in them."
            )
        return (
            f'Below are findings on the question "{self.question}" from consecutive parts of '
            f"{what}{span}, in order.\n\n{blocks}\n\n{task}"
        )

    def relevant(self, text: str) -> bool:
        found = text.strip().strip(".").strip()
        return bool(found) and not found.upper().startswith(NOTHING)

    def none_found(self, what: str) -> str:
        return f"Nothing in {what} answers this question."


def ask(
    doc: Document | str | Sequence[Page] | Sequence[Document | str],
    question: str,
    generate_fn: GenerateFn,
    tokenizer: TekkenTokenizer,
    num_ctx: int,
    **options: Unpack[SummaryOptions],
):
    """The events of engine.docs.summarize.run_plan, answering `question` over every part.
    PartDone.relevant says whether a part had anything; the answer ends with its coverage and
    "Nothing relevant in: pages …"."""
    if not question.strip():
        raise ValueError("the question is empty")
    prompts = AskPrompts(question.strip())
    return summarize(doc, generate_fn, tokenizer, num_ctx, prompts=prompts, **options)
