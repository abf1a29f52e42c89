"""Word notes, text boxes, headers, Strict OOXML; EPUB, ODT, PPTX, XLSX; files named for what
they are. Files are generated here (by hand for WordprocessingML parts python-docx cannot
write, else by each format's own library); pandoc is the reference where it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from engine.docs.extract import DocumentError, extract

T = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
S = "http://purl.oclc.org/ooxml/wordprocessingml/main"
R_T = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
R_S = "http://purl.oclc.org/ooxml/officeDocument/relationships"


def _p(text: str, extra: str = "") -> str:
    return f"<w:p><w:r><w:t xml:space='preserve'>{text}</w:t></w:r>{extra}</w:p>"


def make_word(path: Path, *, strict: bool = False, body: str | None = None) -> Path:
    """A DOCX with a header, a footer, a footnote, an endnote, a text box and a table."""
    w, rel = (S, R_S) if strict else (T, R_T)
    wps = "http://schemas.microsoft.com/office/word/2010/wordprocessingShape"
    mc = "http://schemas.openxmlformats.org/markup-compatibility/2006"
    ns = f"xmlns:w='{w}' xmlns:r='{rel}' xmlns:wps='{wps}' xmlns:mc='{mc}'"
    box = (
        "<w:r><mc:AlternateContent><mc:Choice Requires='wps'><w:drawing><wps:txbx>"
        f"<w:txbxContent>{_p('Boxed aside text.')}</w:txbxContent></wps:txbx></w:drawing>"
        "</mc:Choice><mc:Fallback><w:pict><w:txbxContent>"
        f"{_p('Boxed aside text.')}</w:txbxContent></w:pict></mc:Fallback>"
        "</mc:AlternateContent></w:r>"
    )
    custom = body is not None
    if body is None:
        body = (
            _p("Lease agreement", "") + "<w:p><w:r><w:t>The rent is due monthly.</w:t></w:r>"
            "<w:r><w:footnoteReference w:id='1'/></w:r></w:p>"
            + f"<w:p><w:r><w:t>See the box.</w:t></w:r>{box}</w:p>"
            + "<w:tbl><w:tr><w:tc>"
            + _p("Tenant")
            + "</w:tc><w:tc>"
            + _p("Ana")
            + "</w:tc></w:tr>"
            "<w:tr><w:tc><w:p/></w:tc><w:tc><w:p/></w:tc></w:tr></w:tbl>"
            + "<w:p><w:r><w:t>Signed.</w:t></w:r><w:r><w:endnoteReference w:id='2'/></w:r>"
            "<w:del><w:r><w:delText>Deleted words.</w:delText></w:r></w:del></w:p>"
        )
    document = f"<w:document {ns}><w:body>{body}<w:sectPr/></w:body></w:document>"
    rels_type = rel if strict else f"{R_T}"
    parts = {
        "[Content_Types].xml": "<Types xmlns='http://schemas.openxmlformats.org/package/2006/content-types'/>",
        "_rels/.rels": "<Relationships xmlns='http://schemas.openxmlformats.org/package/2006/relationships'>"
        f"<Relationship Id='rId1' Type='{rels_type}/officeDocument' Target='word/document.xml'/>"
        "</Relationships>",
        "word/document.xml": document,
        "word/_rels/document.xml.rels": "<Relationships xmlns='http://schemas.openxmlformats.org/package/2006/relationships'>"
        f"<Relationship Id='rId2' Type='{rels_type}/footnotes' Target='footnotes.xml'/>"
        f"<Relationship Id='rId3' Type='{rels_type}/endnotes' Target='endnotes.xml'/>"
        f"<Relationship Id='rId4' Type='{rels_type}/header' Target='header1.xml'/>"
        f"<Relationship Id='rId5' Type='{rels_type}/footer' Target='footer1.xml'/>"
        "</Relationships>",
        "word/footnotes.xml": f"<w:footnotes {ns}><w:footnote w:type='separator' w:id='-1'>"
        "<w:p><w:r><w:separator/></w:r></w:p></w:footnote>"
        f"<w:footnote w:id='1'>{_p('Rent includes water.')}</w:footnote></w:footnotes>",
        "word/endnotes.xml": f"<w:endnotes {ns}><w:endnote w:id='2'>{_p('Drafted in 2024.')}"
        "</w:endnote></w:endnotes>",
        "word/header1.xml": f"<w:hdr {ns}>{_p('ACME Confidential')}</w:hdr>",
        "word/footer1.xml": f"<w:ftr {ns}>{_p('Page footer text')}</w:ftr>",
    }
    if custom:  # only the given body: no notes, header or footer
        parts = {k: v for k, v in parts.items() if k.count("/") < 1 or "document" in k}
        parts["word/_rels/document.xml.rels"] = (
            "<Relationships xmlns='http://schemas.openxmlformats.org/package/2006/relationships'/>"
        )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, xml in parts.items():
            z.writestr(name, xml)
    return path


EXPECTED_WORD = [
    "Lease agreement",
    "The rent is due monthly.[^1]",
    "See the box.",
    "[text box] Boxed aside text.",
    "Tenant | Ana",
    "Signed.[^2]",
    "",
    "[header] ACME Confidential",
    "[footer] Page footer text",
    "[footnote 1] Rent includes water.",
    "[endnote 2] Drafted in 2024.",
]


def test_word_notes_boxes_headers_and_tables_in_reading_order(tmp_path):
    doc = extract(make_word(tmp_path / "lease.docx"))
    assert (doc.kind, doc.paginated, doc.count_label()) == ("docx", False, None)
    assert doc.text.split("\n") == EXPECTED_WORD  # the empty table row gives no " | "


def test_strict_open_xml_reads_like_transitional(tmp_path):
    strict = extract(make_word(tmp_path / "strict.docx", strict=True))
    assert strict.text.split("\n") == EXPECTED_WORD


def test_document_of_empty_tables_has_no_text(tmp_path):
    body = "<w:tbl>" + "<w:tr><w:tc><w:p/></w:tc><w:tc><w:p/></w:tc></w:tr>" * 3 + "</w:tbl>"
    path = make_word(tmp_path / "form.docx", body=body)
    with pytest.raises(DocumentError, match="no text"):
        extract(path)


@pytest.mark.skipif(shutil.which("pandoc") is None, reason="pandoc is the reference here")
def test_word_text_matches_pandoc(tmp_path):
    path = make_word(tmp_path / "lease.docx")
    reference = subprocess.run(
        ["pandoc", "-t", "plain", "--wrap=none", str(path)], capture_output=True, text=True
    ).stdout
    ours = extract(path).text
    words = lambda s: set(re.findall(r"[A-Za-z]{3,}", s))  # noqa: E731
    # pandoc keeps body, table, notes and the text box; it leaves out headers and footers.
    assert words(reference) <= words(ours), words(reference) - words(ours)


def test_epub_chapters_in_order_named_by_the_toc(tmp_path):
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("x")
    book.set_title("Stories")
    chapters = []
    for n, (title, body) in enumerate(
        [("Cover", ""), ("Morning", "Sun rose."), ("Night", "Moon.")]
    ):
        c = epub.EpubHtml(title=title, file_name=f"c{n}.xhtml")
        c.content = (
            f"<html><body>{f'<h1>{title}</h1><p>{body}</p>' if body else '<img/>'}</body></html>"
        )
        book.add_item(c)
        chapters.append(c)
    book.toc = tuple(chapters)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(tmp_path / "stories.epub"), book)
    doc = extract(tmp_path / "stories.epub")
    assert (doc.kind, doc.count_label()) == ("epub", "2 chapters")
    assert [(p.number, p.title) for p in doc.pages] == [(1, "Morning"), (2, "Night")]
    assert (
        doc.cited_text()
        == "[chapter 1: Morning]\nMorning\n\nSun rose.\n\n[chapter 2: Night]\nNight\n\nMoon."
    )


def test_odt_with_a_footnote_and_a_table(tmp_path):
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableRow
    from odf.text import H, Note, NoteBody, NoteCitation, P

    odt = OpenDocumentText()
    odt.text.addElement(H(outlinelevel=1, text="Minutes"))
    p = P(text="Budget approved")
    note = Note(id="n1", noteclass="footnote")
    note.addElement(NoteCitation(text="1"))
    body = NoteBody()
    body.addElement(P(text="By a vote of 5 to 2."))
    note.addElement(body)
    p.addElement(note)
    odt.text.addElement(p)
    table = Table()
    for cells in (["Item", "Cost"], ["Paper", "12"], ["", ""]):
        row = TableRow()
        for value in cells:
            cell = TableCell()
            cell.addElement(P(text=value))
            row.addElement(cell)
        table.addElement(row)
    odt.text.addElement(table)
    odt.save(str(tmp_path / "minutes.odt"))
    doc = extract(tmp_path / "minutes.odt")
    assert doc.kind == "odt" and not doc.paginated
    assert doc.text.split("\n") == [
        "Minutes", "Budget approved[^1]", "Item | Cost", "Paper | 12", "",
        "[footnote 1] By a vote of 5 to 2.",
    ]  # fmt: skip


def test_pptx_one_page_per_slide_with_notes(tmp_path):
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    s1 = deck.slides.add_slide(deck.slide_layouts[1])
    s1.shapes.title.text = "Q3 results"
    s1.placeholders[1].text = "Revenue up 12%"
    s1.notes_slide.notes_text_frame.text = "Mention the new office."
    deck.slides.add_slide(deck.slide_layouts[6])  # blank: a picture-only slide
    s3 = deck.slides.add_slide(deck.slide_layouts[5])
    s3.shapes.title.text = "Costs"
    table = s3.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (r, c), v in {(0, 0): "Rent", (0, 1): "10", (1, 0): "Staff", (1, 1): "50"}.items():
        table.cell(r, c).text = v
    deck.save(tmp_path / "q3.pptx")
    doc = extract(tmp_path / "q3.pptx")
    assert (doc.kind, doc.count_label()) == ("pptx", "3 slides")
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert doc.pages[0].text == "Q3 results\nRevenue up 12%\n[notes] Mention the new office."
    assert doc.pages[2].text == "Costs\nRent | 10\nStaff | 50"
    assert "[slide 3: Costs]" in doc.cited_text() and "[slide 2" not in doc.cited_text()
    assert any("1 slide(s) have no text" in w and w.endswith(": 2") for w in doc.warnings)


def test_xlsx_one_page_per_sheet_as_tables(tmp_path):
    import datetime

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Budget"
    sheet.append(["Item", "Cost", "Due"])
    sheet.append(["Rent", 1200.0, datetime.datetime(2024, 5, 1)])
    sheet.append([None, None, None])
    sheet.append(["Water", 30.5])
    book.create_sheet("Notes").append(["Paid by transfer"])
    book.save(tmp_path / "budget.xlsx")
    doc = extract(tmp_path / "budget.xlsx")
    assert (doc.kind, doc.count_label()) == ("xlsx", "2 sheets")
    assert [(p.number, p.title) for p in doc.pages] == [(1, "Budget"), (2, "Notes")]
    assert doc.pages[0].text == "Item | Cost | Due\nRent | 1200 | 2024-05-01\nWater | 30.5"
    assert doc.cited_text().startswith("[sheet 1: Budget]\nItem")


@pytest.mark.parametrize(
    "name, parts, expected",
    [
        ("calc.ods", {"mimetype": "application/vnd.oasis.opendocument.spreadsheet"},
         "an OpenDocument file (spreadsheet) is not supported"),
        ("app.jar", {"META-INF/MANIFEST.MF": "Manifest-Version: 1.0"}, "a Java archive"),
        ("stuff.zip", {"a.txt": "hi"}, "a ZIP archive is not supported"),
    ],
)  # fmt: skip
def test_other_zip_files_are_named_for_what_they_are(tmp_path, name, parts, expected):
    with zipfile.ZipFile(tmp_path / name, "w") as z:
        for part, content in parts.items():
            z.writestr(part, content)
    with pytest.raises(DocumentError, match=re.escape(expected)):
        extract(tmp_path / name)


def test_legacy_office_files_say_how_to_convert(tmp_path):
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500)
    (tmp_path / "old.doc").write_bytes(ole)
    with pytest.raises(DocumentError, match=r"a legacy Word \.doc: save it as \.docx"):
        extract(tmp_path / "old.doc")
    (tmp_path / "locked.xlsx").write_bytes(ole)
    with pytest.raises(DocumentError, match="XLSX is password-protected"):
        extract(tmp_path / "locked.xlsx")
