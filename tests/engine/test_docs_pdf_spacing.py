"""PDF text layers whose glyphs are placed one by one (scans, OCR): words joined as pdftotext
joins them, and nothing else changed. Files come from fpdf2 and a hand-written content stream."""

from __future__ import annotations

import random
import shutil
import subprocess

import pypdfium2 as pdfium
import pytest

from engine.docs import pdf as pdf_reader
from engine.docs.extract import extract
from engine.docs.pdf_spacing import looks_letter_spaced, respaced_text
from tests.engine.test_documents import MULTILINGUAL, make_pdf, write

LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "Minimum illumination: 12.5% at 300 mm, per page one.",
]
needs_pdftotext = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler's pdftotext is the reference"
)


def _width(text: str, em: float) -> float:
    from fpdf import FPDF

    pdf = FPDF(unit="pt")
    pdf.set_font("Helvetica", size=em)
    return pdf.get_string_width(text)


def _placements(line: str, em: float, seed: int, piece=1, letter=(0.15, 0.19), word=(0.45, 0.6)):
    """(x offset, text) for each piece of `line`: small jittered gaps inside words, wider
    between them (fractions of the font size), the way OCR places recognised glyphs."""
    rnd, x, out = random.Random(seed), 0.0, []
    for w, text in enumerate(line.split(" ")):
        if w:
            x += rnd.uniform(*word) * em
        for k in range(0, len(text), piece):
            if k:
                x += rnd.uniform(*letter) * em
            out.append((x, text[k : k + piece]))
            x += _width(text[k : k + piece], em)
    return out


def _separate_objects(lines: list[str], seed: int = 1, **kw) -> bytes:
    """Each glyph (or piece) its own text object (fpdf2), one line per string."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    for n, line in enumerate(lines):
        for x, text in _placements(line, 11, seed + n, **kw):
            pdf.text(50 + x, 60 + 16 * n, text)
    pdf.text(50, 60 + 16 * len(lines), "A normal line, set as one string.")
    return bytes(pdf.output())


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _kerned_tj(lines: list[str], seed: int = 2) -> str:
    """One TJ per line, glyphs pushed apart by kerning numbers (thousandths of the font size)."""
    ops = ["BT /F1 11 Tf 50 780 Td"]
    for n, line in enumerate(lines):
        rnd, parts = random.Random(seed + n), []
        for w, word in enumerate(line.split(" ")):
            for k, ch in enumerate(word):
                if k or w:
                    parts.append(str(-rnd.randint(150, 190) if k else -rnd.randint(450, 600)))
                parts.append(f"({_escape(ch)})")
        ops.append(("0 -16 Td " if n else "") + "[" + " ".join(parts) + "] TJ")
    return "\n".join(ops + ["ET"])


def _scaled_glyphs(lines: list[str], seed: int = 3) -> str:
    """OCR style: a 1 pt font scaled up by the text matrix, each glyph at its own position,
    squeezed horizontally (Tz) to the recognised box. On this short page pdfium takes the
    text for vertical and puts each glyph on a line of its own."""
    ops = ["BT /F1 1 Tf 95 Tz"]
    for n, line in enumerate(lines):
        for x, ch in _placements(line, 12 * 0.95, seed + n):
            ops.append(f"12 0 0 12 {60 + x:.2f} {780 - 16 * n} Tm ({_escape(ch)}) Tj")
    return "\n".join(ops + ["ET"])


def raw_pdf(content: str) -> bytes:
    """A one-page PDF drawing `content` with Helvetica as /F1."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content.encode("latin-1")),
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


PRODUCERS = {
    "separate objects": lambda: _separate_objects(LINES),
    "kerned TJ": lambda: raw_pdf(_kerned_tj(LINES)),
    "scaled 1pt font": lambda: raw_pdf(_scaled_glyphs(LINES)),
}


def _pdfium_text(data: bytes) -> str:
    pdf = pdfium.PdfDocument(data)
    try:
        return "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    finally:
        pdf.close()


def _pdftotext_words(path) -> list[str]:
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, check=True
    )
    return result.stdout.split()


@pytest.mark.parametrize("producer", PRODUCERS)
def test_letter_spaced_glyphs_come_out_as_words(tmp_path, producer):
    data = PRODUCERS[producer]()
    broken = _pdfium_text(data)  # the fault: "q u i c k", or even a line per glyph
    assert "quick" not in broken and "k\r\nb" in broken or "q u i c k" in broken
    doc = extract(write(tmp_path, "scan.pdf", data))
    assert doc.text.split("\n")[:2] == LINES
    if producer == "separate objects":  # a line set as one string reads as before
        assert doc.text.split("\n")[2] == "A normal line, set as one string."
    assert doc.warnings == ()


@needs_pdftotext
@pytest.mark.parametrize("producer", PRODUCERS)
def test_letter_spaced_glyphs_match_pdftotext(tmp_path, producer):
    path = write(tmp_path, "scan.pdf", PRODUCERS[producer]())
    assert extract(path).text.split() == _pdftotext_words(path)


@needs_pdftotext
@pytest.mark.parametrize("seed", range(4))
def test_uneven_gaps_are_split_where_pdftotext_splits_them(tmp_path, seed):
    # Letter gaps from 0.12 to 0.3 em: poppler spaces those over 1.3 x the smallest one.
    path = write(tmp_path, "uneven.pdf", _separate_objects(LINES, seed, letter=(0.12, 0.3)))
    words = extract(path).text.split()
    assert words == _pdftotext_words(path)
    assert len(words) > len(" ".join(LINES).split())  # some letters do stay apart


@needs_pdftotext
def test_syllables_pdftotext_keeps_apart_stay_apart(tmp_path):
    # Pieces of several glyphs: poppler joins nothing, so neither do we ("docu ment").
    data = _separate_objects(LINES, piece=3, letter=(0.2, 0.3))
    path = write(tmp_path, "syllables.pdf", data)
    words = extract(path).text.split()
    assert words == _pdftotext_words(path) and "qui" in words


def test_spaces_in_the_file_are_kept(tmp_path):
    # pdftotext prints "abcdef" here; a space the producer wrote is never taken out.
    data = raw_pdf("BT /F1 11 Tf 50 780 Td (a b c d e f) Tj 0 -16 Td (Options: A B C D) Tj ET")
    assert extract(write(tmp_path, "letters.pdf", data)).text == "a b c d e f\nOptions: A B C D"


def test_widely_spaced_glyphs_keep_their_spaces(tmp_path):
    # Gaps of half an em and more (a spaced-out table row) are word gaps, as in pdftotext.
    data = _separate_objects(["1 2 3 4 5 6"], letter=(0.5, 0.6), word=(0.5, 0.6), piece=1)
    assert extract(write(tmp_path, "row.pdf", data)).text.split("\n")[0] == "1 2 3 4 5 6"


def test_a_normal_pdf_is_unchanged(tmp_path):
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    body = "If x = a + b and y = c - d, then I a m told x + y = a + b + c - d. " * 6
    pdf.multi_cell(400, 14, body)
    data = bytes(pdf.output())
    expected = pdf_reader._clean(_pdfium_text(data))
    assert looks_letter_spaced(expected)  # so the page does go through the glyph rebuild
    assert extract(write(tmp_path, "normal.pdf", data)).text == expected

    multilingual = pdfium.PdfDocument(make_pdf(MULTILINGUAL))  # beyond-BMP characters too
    for i, lines in enumerate(MULTILINGUAL):
        textpage = multilingual[i].get_textpage()
        assert respaced_text(textpage, set()) == textpage.get_text_range()
        assert respaced_text(textpage, set()).split("\r\n") == lines
    multilingual.close()
