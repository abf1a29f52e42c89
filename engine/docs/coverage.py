"""What a long-document run has read: "pages 1–312 of 312, 14 parts", and what it has not.

Computed from the parts that finished (plain data), so a stopped run can name the pages not yet
read and a finished answer can end with what it covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.docs.summarize_plan import Part, Plan


def ranges(numbers: Iterable[int]) -> str:
    """'1–4, 7, 9–12' for a set of page numbers."""
    out, run = [], []
    for n in sorted(set(numbers)):
        if run and n != run[-1] + 1:
            out.append(run)
            run = []
        run.append(n)
    if run:
        out.append(run)
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in out)


@dataclass(frozen=True)
class DocumentCoverage:
    name: str | None
    paginated: bool
    page_count: int | None  # pages in the file; None when the format has no pages
    read: str  # page ranges read ("1–139"), "" for none; for unpaginated: "all" or ""
    unread: str  # page ranges with text not yet read; "" when none
    parts_done: int
    parts: int


@dataclass(frozen=True)
class Coverage:
    documents: tuple[DocumentCoverage, ...]
    parts_done: int
    parts: int

    @property
    def complete(self) -> bool:
        return self.parts_done == self.parts

    def line(self) -> str:
        """'pages 1–312 of 312, 14 parts'; per file when there are several."""
        several = len(self.documents) > 1
        items = []
        for d in self.documents:
            if d.paginated:
                what = f"pages {d.read or 'none'} of {d.page_count}"
            else:
                what = (
                    "all of it" if d.parts_done == d.parts else f"{d.parts_done} of {d.parts} parts"
                )
            items.append(f'"{d.name}": {what}' if several else what)
        count = f"{self.parts} part{'s' if self.parts != 1 else ''}"
        if not self.complete:
            count = f"{self.parts_done} of {count}"
        return "; ".join(items) + f", {count}"

    def unread_line(self) -> str:
        """What a stopped run has not read yet, '' when everything was read."""
        several = len(self.documents) > 1
        items = []
        for d in self.documents:
            if d.parts_done == d.parts:
                continue
            what = (
                f"pages {d.unread}"
                if d.paginated and d.unread
                else f"{d.parts - d.parts_done} part(s)"
            )
            items.append(f'"{d.name}" {what}' if several else what)
        return "; ".join(items)


def coverage(plan: Plan, done: Sequence[Part]) -> Coverage:
    """Coverage of `plan` once the parts in `done` have been read."""
    docs = []
    done_keys = {p.index for p in done}
    for d, source in enumerate(plan.sources):
        mine = (
            [p for p in plan.parts if p.document == d] if not plan.single_pass else list(plan.parts)
        )
        finished = [p for p in mine if p.index in done_keys]
        if plan.single_pass:
            finished = list(mine) if done_keys else []
        pages = {n for n, _ in source.pages if n is not None}
        read = set()
        for p in finished:
            lo = p.first_page if not plan.single_pass else source.first_page
            hi = p.last_page if not plan.single_pass else source.last_page
            if lo is not None and hi is not None:
                read |= set(range(lo, hi + 1))  # empty pages inside a part count as read
        whole = not source.paginated
        docs.append(
            DocumentCoverage(
                source.name,
                source.paginated,
                source.page_count,
                ("all" if finished else "") if whole else ranges(read),
                "" if whole else ranges(pages - read),
                len(finished),
                len(mine),
            )
        )
    if plan.single_pass:  # one call read every document
        n = 1 if done_keys else 0
        return Coverage(tuple(docs), n, 1)
    return Coverage(tuple(docs), len(done_keys), len(plan.parts))
