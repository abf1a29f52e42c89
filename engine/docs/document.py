"""The result of extraction (`Document`, `Page`) and its error (`DocumentError`): plain data.

A paginated document (PDF pages, EPUB chapters, PPTX slides, XLSX sheets) keeps one `Page` per
unit, numbered as in the source, and `cited_text()` marks each with "[page N]", "[slide N]", ...
Every other format has no fixed pagination: one page numbered 1 and no markers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What a "page" of each paginated kind is called in citations and counts.
UNITS = {"pdf": "page", "epub": "chapter", "pptx": "slide", "xlsx": "sheet"}


class DocumentError(Exception):
    """A file that cannot be turned into text; str() names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path.name or self.path}: {problem}")


@dataclass(frozen=True)
class Page:
    number: int  # 1-based, as printed in the source (PDF page, chapter, slide, sheet)
    text: str
    title: str = ""  # chapter title, slide title or sheet name, where the format has one


@dataclass(frozen=True)
class Document:
    path: Path
    name: str
    kind: str  # pdf, docx, odt, epub, pptx, xlsx, text, markdown, code, html, rtf, csv, json
    text: str
    pages: tuple[Page, ...]
    page_count: int
    encoding: str | None = None  # for decoded text formats
    warnings: tuple[str, ...] = ()  # things the user should know, e.g. pages without text

    @property
    def paginated(self) -> bool:
        return self.kind in UNITS

    @property
    def unit(self) -> str | None:
        """'page', 'chapter', 'slide' or 'sheet' for paginated kinds; None otherwise."""
        return UNITS.get(self.kind)

    def marker(self, page: Page) -> str:
        """The citation line before a page: "[page 3]", "[slide 2]", "[chapter 4: Title]"."""
        title = f": {page.title}" if page.title and self.kind != "pdf" else ""
        return f"[{self.unit or 'page'} {page.number}{title}]"

    def count_label(self) -> str | None:
        """'12 pages', '1 slide', ... for paginated kinds; None where pages are not real."""
        if self.unit is None:
            return None
        return f"{self.page_count} {self.unit}{'s' if self.page_count != 1 else ''}"

    def cited_text(self) -> str:
        """The text with a marker line before each non-empty page (paginated kinds only)."""
        if not self.paginated:
            return self.text
        return "\n\n".join(f"{self.marker(p)}\n{p.text}" for p in self.pages if p.text.strip())
