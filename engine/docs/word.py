"""Word (.docx) text from the WordprocessingML parts, in reading order, Strict or transitional.

python-docx reads neither notes nor Strict Open XML, so the parts are walked with lxml: the body
(paragraphs, tables, text boxes where they are anchored), then headers/footers, footnotes and
endnotes, each marked. Deleted revisions and field codes are not text; insertions are.
"""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path

from lxml import etree

from engine.docs.document import DocumentError, Page

_TRANSITIONAL = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_STRICT = "http://purl.oclc.org/ooxml/wordprocessingml/main"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def read_docx(path: Path, archive: zipfile.ZipFile):
    main = _main_part(archive)
    if main is None:
        raise DocumentError(path, "the DOCX is corrupt (no word/document.xml inside)")
    root = _xml(path, archive, main)
    w = _STRICT if root.tag.startswith("{" + _STRICT) else _TRANSITIONAL
    walker = _Walker(w)
    body = root.find(f"{{{w}}}body")
    lines = walker.blocks(body) if body is not None else []
    rels = _rels(archive, main)
    extra: list[str] = []
    seen: set[str] = set()
    for kind in ("header", "footer"):
        for target in rels.get(kind, []):
            text = "\n".join(walker.blocks(_xml(path, archive, target))).strip()
            if text and text not in seen:
                seen.add(text)
                extra.append(f"[{kind}] {text}")
    for kind in ("footnotes", "endnotes"):
        for target in rels.get(kind, []):
            notes = _notes(walker, _xml(path, archive, target), w)
            label = kind[:-1]
            extra += [f"[{label} {number}] {text}" for number, text in notes]
    text = "\n".join(lines + ([""] + extra if extra else [])).strip()
    return [Page(1, text)], None, []


def _xml(path: Path, archive: zipfile.ZipFile, name: str):
    try:
        return etree.fromstring(archive.read(name), _PARSER)
    except KeyError:
        raise DocumentError(path, f"the DOCX is corrupt ({name} is missing)") from None
    except (etree.XMLSyntaxError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DocumentError(path, f"the DOCX is corrupt ({name}: {exc})") from None


def _main_part(archive: zipfile.ZipFile) -> str | None:
    names = set(archive.namelist())
    for rel in _parse_rels(archive, "_rels/.rels"):
        if rel[0].endswith("/officeDocument"):
            target = rel[1].lstrip("/")
            if target in names:
                return target
    return "word/document.xml" if "word/document.xml" in names else None


def _parse_rels(archive: zipfile.ZipFile, name: str) -> list[tuple[str, str]]:
    try:
        root = etree.fromstring(archive.read(name), _PARSER)
    except (KeyError, etree.XMLSyntaxError):
        return []
    return [
        (r.get("Type", ""), r.get("Target", ""))
        for r in root.iter(f"{{{_PKG_RELS}}}Relationship", "Relationship")
        if r.get("TargetMode") != "External"
    ]


def _rels(archive: zipfile.ZipFile, main: str) -> dict[str, list[str]]:
    folder, base = posixpath.split(main)
    out: dict[str, list[str]] = {}
    for rel_type, target in _parse_rels(archive, f"{folder}/_rels/{base}.rels"):
        kind = rel_type.rsplit("/", 1)[-1]
        full = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
        out.setdefault(kind, []).append(posixpath.normpath(full))
    return out


def _notes(walker: _Walker, root, w: str) -> list[tuple[str, str]]:
    notes = []
    for note in root:
        if note.get(f"{{{w}}}type") in ("separator", "continuationSeparator", "continuationNotice"):
            continue
        text = " ".join(walker.blocks(note)).strip()
        if text:
            notes.append((note.get(f"{{{w}}}id", "?"), text))
    return notes


class _Walker:
    """Text of block containers (body, cell, text box, note, header) in document order."""

    def __init__(self, w: str):
        self.w = w
        q = lambda n: f"{{{w}}}{n}"  # noqa: E731
        self.P, self.TBL, self.TR, self.TC = q("p"), q("tbl"), q("tr"), q("tc")
        self.T, self.TAB, self.BR, self.CR = q("t"), q("tab"), q("br"), q("cr")
        self.NBH, self.TXBX = q("noBreakHyphen"), q("txbxContent")
        self.DEL, self.INSTR = q("del"), q("instrText")
        self.FN, self.EN = q("footnoteReference"), q("endnoteReference")
        self.SDT, self.SDT_CONTENT = q("sdt"), q("sdtContent")
        self.CHOICE, self.FALLBACK = f"{{{_MC}}}Choice", f"{{{_MC}}}Fallback"

    def blocks(self, container) -> list[str]:
        lines: list[str] = []
        for child in container:
            tag = child.tag
            if tag == self.P:
                boxes: list[str] = []
                lines.append(self.paragraph(child, boxes))
                lines += boxes
            elif tag == self.TBL:
                lines += self.table(child)
            elif tag.endswith("}AlternateContent"):
                lines += self.blocks(self._alternate(child))
            elif isinstance(tag, str) and tag != self.DEL:
                lines += self.blocks(child)  # sdt, customXml, smartTag, ins: wrappers of blocks
        return lines

    def _alternate(self, element):
        # mc:AlternateContent holds the same content twice (Choice and Fallback): read one.
        for child in element:
            if child.tag in (self.CHOICE, self.FALLBACK):
                return child
        return element

    def table(self, table) -> list[str]:
        rows = []
        for tr in table.iter(self.TR):
            if _nearest(tr, self.TBL) is not table:
                continue  # a nested table's row: read inside its cell
            cells = [
                " ".join(x for x in self.blocks(tc) if x.strip()).strip()
                for tc in tr
                if tc.tag == self.TC
            ]
            if any(cells):  # a row of empty cells is no text, not " | | "
                rows.append(" | ".join(cells))
        return rows

    def paragraph(self, p, boxes: list[str]) -> str:
        parts: list[str] = []
        self._runs(p, parts, boxes)
        return "".join(parts)

    def _runs(self, element, parts: list[str], boxes: list[str]) -> None:
        for child in element:
            tag = child.tag
            if not isinstance(tag, str) or tag in (self.DEL, self.INSTR):
                continue
            if tag == self.T:
                parts.append(child.text or "")
            elif tag == self.TAB:
                parts.append("\t")
            elif tag in (self.BR, self.CR):
                parts.append("\n")
            elif tag == self.NBH:
                parts.append("-")
            elif tag in (self.FN, self.EN):
                parts.append(f"[^{child.get(f'{{{self.w}}}id', '?')}]")
            elif tag == self.TXBX:
                text = "\n".join(x for x in self.blocks(child) if x.strip())
                if text:
                    boxes.append(f"[text box] {text}")
            elif tag.endswith("}AlternateContent"):
                self._runs(self._alternate(child), parts, boxes)
            else:
                self._runs(child, parts, boxes)


def _nearest(element, tag: str):
    parent = element.getparent()
    while parent is not None and parent.tag != tag:
        parent = parent.getparent()
    return parent
