"""PDF: trailing data, a second extractor where pdfium's text is incomplete, form fields,
glyphs without Unicode. Files come from test_documents.make_pdf and pypdf's writer."""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import pytest

from engine.docs import pdf as pdf_reader
from engine.docs.extract import DocumentError, extract
from tests.engine.test_documents import make_pdf, write


def test_data_after_the_end_marker_is_normal(tmp_path):
    data = make_pdf([["Contract text"]])
    padded = data + b"\n" + os.urandom(5000).replace(b"%%EOF", b"") + b"\x00" * 3000
    doc = extract(write(tmp_path, "padded.pdf", padded))
    assert (doc.text, doc.warnings) == ("Contract text", ())


def test_incremental_update_after_the_first_end_marker(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf([["Version one"]])))
    writer.add_metadata({"/Title": "Edited"})
    out = io.BytesIO()
    writer.write(out)
    doc = extract(write(tmp_path, "edited.pdf", out.getvalue() + b"\n%%EOF\n% trailing comment\n"))
    assert doc.text == "Version one"


def test_pages_pdfium_reads_incompletely_use_the_second_extractor(tmp_path, monkeypatch):
    pages = [["Full first page " * 4], ["第二页的中文文本很重要 " * 6], ["Last page " * 5]]
    path = write(tmp_path, "cjk.pdf", make_pdf(pages))
    real = pdf_reader._pdfium_pages

    def drops_cjk(path, data):  # what pdfium does with some CJK fonts: the text is gone
        texts, unmapped = real(path, data)
        texts[1] = "第二"
        return texts, unmapped

    monkeypatch.setattr(pdf_reader, "_pdfium_pages", drops_cjk)
    doc = extract(path, isolate=False)  # in this process, where the patch applies
    assert "第二页的中文文本很重要" in doc.pages[1].text
    assert doc.pages[0].text.startswith("Full first page")
    assert any("read with pypdf instead: 2" in w for w in doc.warnings), doc.warnings


def test_filled_in_form_fields_are_text(tmp_path):
    from pypdf import PdfWriter
    from pypdf.generic import (
        ArrayObject,
        DictionaryObject,
        NameObject,
        NumberObject,
        TextStringObject,
    )

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf([["Application form"]])))
    field = DictionaryObject({
        NameObject("/Type"): NameObject("/Annot"),
        NameObject("/Subtype"): NameObject("/Widget"),
        NameObject("/FT"): NameObject("/Tx"),
        NameObject("/T"): TextStringObject("Applicant"),
        NameObject("/V"): TextStringObject("Ana Lima"),
        NameObject("/Rect"): ArrayObject([NumberObject(n) for n in (50, 600, 300, 620)]),
    })  # fmt: skip
    ref = writer._add_object(field)
    writer.pages[0][NameObject("/Annots")] = ArrayObject([ref])
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(
        {NameObject("/Fields"): ArrayObject([ref])}
    )
    out = io.BytesIO()
    writer.write(out)
    doc = extract(write(tmp_path, "form.pdf", out.getvalue()))
    assert doc.pages[0].text == "Application form\n\n[form field] Applicant: Ana Lima"


def _unmapped(lines: list[str]) -> bytes:
    return make_pdf([lines]).replace(b" /ToUnicode 5 0 R", b" " * len(b" /ToUnicode 5 0 R"))


def test_glyphs_without_unicode_are_not_invented(tmp_path):
    message = str(
        pytest.raises(DocumentError, extract, write(tmp_path, "x.pdf", _unmapped(["Hello"]))).value
    )
    assert "give no Unicode" in message and "nothing was guessed" in message


def test_a_page_of_unmapped_glyphs_among_readable_ones(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for data in (make_pdf([["Readable page"]]), _unmapped(["Secret glyphs"])):
        writer.add_page(PdfReader(io.BytesIO(data)).pages[0])
    out = io.BytesIO()
    writer.write(out)
    doc = extract(write(tmp_path, "mixed.pdf", out.getvalue()))
    assert doc.pages[0].text == "Readable page" and doc.pages[1].text == ""
    assert any(
        "13 character(s) without a Unicode mapping were left out (page 2)" in w
        for w in doc.warnings
    )


@pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler's pdftotext is the reference"
)
def test_text_matches_pdftotext(tmp_path):
    from tests.engine.test_documents import MULTILINGUAL

    path = write(tmp_path, "multi.pdf", make_pdf(MULTILINGUAL))
    reference = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True
    ).stdout
    pages = [p.strip() for p in reference.split("\f") if p.strip()]
    assert [p.text for p in extract(path).pages] == pages
