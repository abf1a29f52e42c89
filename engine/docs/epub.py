"""EPUB books through ebooklib: chapters in spine order, named by the table of contents.

Each chapter with text is a "page": numbered in reading order, titled as the book's TOC names it
(else its first heading), so citations can name chapters.
"""

from __future__ import annotations

import io
import posixpath
import warnings as python_warnings
from pathlib import Path

from engine.docs.document import DocumentError, Page
from engine.docs.text_formats import declared_charset, decode, html_visible_text


def read_epub(path: Path, data: bytes):
    import ebooklib
    from ebooklib import epub

    with python_warnings.catch_warnings():
        python_warnings.simplefilter("ignore")
        try:
            book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": False})
        except epub.EpubException as exc:
            raise DocumentError(path, f"the EPUB is corrupt ({exc})") from None
    titles = _toc_titles(book.toc)
    pages, skipped = [], 0
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        if isinstance(item, epub.EpubNav):
            continue  # the table of contents page repeats the titles
        content = item.get_content()
        text = html_visible_text(decode(content, declared_charset(content)).text)
        if not text.strip():
            skipped += 1  # cover images, blank separators
            continue
        title = titles.get(posixpath.normpath(item.get_name())) or text.split("\n", 1)[0][:80]
        pages.append(Page(len(pages) + 1, text, title.strip()))
    if not pages:
        raise DocumentError(path, "the EPUB has no chapters with text (images only, or DRM?)")
    return pages, None, []


def _toc_titles(toc) -> dict[str, str]:
    """{file name: title} from the nested TOC, the first title naming each file."""
    out: dict[str, str] = {}

    def walk(entries):
        for entry in entries:
            if isinstance(entry, (tuple, list)) and len(entry) == 2:
                section, children = entry
                add(section)
                walk(children)
            else:
                add(entry)

    def add(link):
        href = getattr(link, "href", None)
        title = getattr(link, "title", None)
        if href and title:
            out.setdefault(posixpath.normpath(href.split("#", 1)[0]), title)

    walk(toc)
    return out
