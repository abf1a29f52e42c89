"""OpenDocument text (.odt): headings, paragraphs, lists, tables, notes and text boxes of
content.xml, read with lxml.

Not odfpy: it parses every part, and gives up silently (printing to stdout) on styles.xml files
that real producers write with repeated namespace declarations (pandoc does). Notes become a
"[^n]" mark where they are cited and a "[footnote n] text" line after the body, as for Word.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from lxml import etree

from engine.docs.document import DocumentError, Page

_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
_SKIP = {f"{{{_TEXT}}}tracked-changes", f"{{{_TEXT}}}sequence-decls", f"{{{_OFFICE}}}annotation",
         f"{{{_TEXT}}}variable-decls", f"{{{_TEXT}}}user-field-decls"}  # fmt: skip


def read_odt(path: Path, data: bytes):
    archive = zipfile.ZipFile(io.BytesIO(data))
    try:
        root = etree.fromstring(archive.read("content.xml"), _PARSER)
    except KeyError:
        raise DocumentError(path, "the ODT is corrupt (no content.xml inside)") from None
    if root is None:
        raise DocumentError(path, "the ODT is corrupt (content.xml is not XML)")
    body = root.find(f"{{{_OFFICE}}}body/{{{_OFFICE}}}text")
    notes: list[str] = []
    lines = _blocks(body, notes) if body is not None else []
    text = "\n".join(lines + ([""] + notes if notes else [])).strip()
    return [Page(1, text)], None, []


def _blocks(element, notes: list[str]) -> list[str]:
    lines: list[str] = []
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _SKIP:
            continue
        if tag in (f"{{{_TEXT}}}p", f"{{{_TEXT}}}h"):
            boxes: list[str] = []
            lines.append(_inline(child, notes, boxes))
            lines += boxes
        elif tag == f"{{{_TABLE}}}table":
            for row in child.iter(f"{{{_TABLE}}}table-row"):
                cells = [
                    " ".join(x for x in _blocks(cell, notes) if x.strip())
                    for cell in row
                    if cell.tag == f"{{{_TABLE}}}table-cell"
                ]
                if any(cells):  # a row of empty cells is no text
                    lines.append(" | ".join(cells))
        else:
            lines += _blocks(child, notes)  # lists, sections, frames
    return lines


def _inline(element, notes: list[str], boxes: list[str]) -> str:
    parts = [element.text or ""]
    for child in element:
        tag = child.tag
        if isinstance(tag, str) and tag not in _SKIP:
            if tag == f"{{{_TEXT}}}s":
                parts.append(" " * int(child.get(f"{{{_TEXT}}}c", "1")))
            elif tag == f"{{{_TEXT}}}tab":
                parts.append("\t")
            elif tag == f"{{{_TEXT}}}line-break":
                parts.append("\n")
            elif tag == f"{{{_TEXT}}}note":
                kind = child.get(f"{{{_TEXT}}}note-class", "footnote")
                citation = child.find(f"{{{_TEXT}}}note-citation")
                mark = "".join(citation.itertext()).strip() if citation is not None else "?"
                body = child.find(f"{{{_TEXT}}}note-body")
                text = (
                    " ".join(x for x in _blocks(body, notes) if x.strip())
                    if body is not None
                    else ""
                )
                parts.append(f"[^{mark}]")
                notes.append(f"[{kind} {mark}] {text}")
            elif tag.endswith("}text-box"):
                box = "\n".join(x for x in _blocks(child, notes) if x.strip())
                if box:
                    boxes.append(f"[text box] {box}")
            else:
                parts.append(_inline(child, notes, boxes))
        parts.append(child.tail or "")
    return "".join(parts)
