"""engine.docs.extract: text extraction from dropped files, and its errors.

Every document is made here: PDFs by a small hand-written writer (below; Type0 font with a
ToUnicode map, so any script works without a font file, and optional RC4 encryption) and by
pdfium itself (engine.cli.bench_documents.build_pdf); DOCX by python-docx.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import zlib
from pathlib import Path

import pytest

from engine.cli.bench_documents import bench_extraction, build_pdf, page_lines
from engine.docs.extract import SUPPORTED_EXTENSIONS, Document, DocumentError, Page, extract

# -- a minimal PDF writer ------------------------------------------------------------------------

_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def make_pdf(pages: list[list[str]], *, password: str | None = None, rects=None) -> bytes:
    """A PDF with one text line per string; `rects[i]` draws rectangles on page i.

    Glyphs are CIDs 1..n mapped to Unicode by a ToUnicode CMap (how real producers embed
    subset fonts), so text extraction works for any script. With `password`, the file uses
    the standard security handler, revision 2 (RC4 40-bit), and needs that user password.
    """
    chars = sorted({c for page in pages for line in page for c in line})
    cid = {c: i + 1 for i, c in enumerate(chars)}
    cmap = [
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def /CMapType 2 def",
        "1 begincodespacerange <0000> <FFFF> endcodespacerange",
    ]
    items = list(cid.items())
    for k in range(0, len(items), 100):
        cmap.append(f"{len(items[k : k + 100])} beginbfchar")
        cmap += [f"<{c:04X}> <{ch.encode('utf-16-be').hex()}>" for ch, c in items[k : k + 100]]
        cmap.append("endbfchar")
    cmap.append("endcmap CMapName currentdict /CMap defineresource pop end end")
    kids = " ".join(f"{10 + 2 * i} 0 R" for i in range(len(pages)))
    objs = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type0 /BaseFont /TestFont /Encoding /Identity-H "
        b"/DescendantFonts [4 0 R] /ToUnicode 5 0 R >>",
        4: b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /TestFont /DW 600 "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        b"/FontDescriptor 6 0 R /CIDToGIDMap /Identity >>",
        6: b"<< /Type /FontDescriptor /FontName /TestFont /Flags 4 /FontBBox [0 -200 1000 900] "
        b"/ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 >>",
    }
    streams = {5: "\n".join(cmap).encode()}
    for i, lines in enumerate(pages):
        ops = [
            f"BT /F1 11 Tf 50 {800 - 14 * n} Td <{''.join(f'{cid[c]:04X}' for c in line)}> Tj ET"
            for n, line in enumerate(lines)
        ]
        ops += [f"0 0 1 rg {x} {y} {w} {h} re f" for x, y, w, h in (rects or {}).get(i, [])]
        objs[10 + 2 * i] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (11 + 2 * i)
        )
        streams[11 + 2 * i] = "\n".join(ops).encode()
    file_id = hashlib.md5(repr(pages).encode()).digest()
    key, encrypt = None, b""
    if password is not None:
        padded = (password.encode("latin-1") + _PAD)[:32]
        owner = _rc4(hashlib.md5(padded[::-1]).digest()[:5], padded)
        perms = -44
        key = hashlib.md5(padded + owner + perms.to_bytes(4, "little", signed=True) + file_id)
        key = key.digest()[:5]
        objs[7] = b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (
            owner.hex().encode(),
            _rc4(key, _PAD).hex().encode(),
            perms,
        )
        encrypt = b" /Encrypt 7 0 R"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objs.keys() | streams.keys()):
        offsets[num] = len(out)
        if num in streams:
            data = zlib.compress(streams[num])
            if key is not None:  # each object has its own RC4 key (PDF 1.7, algorithm 1)
                object_key = hashlib.md5(key + num.to_bytes(3, "little") + b"\0\0").digest()
                data = _rc4(object_key[:10], data)
            out += b"%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n" % (num, len(data))
            out += data + b"\nendstream\nendobj\n"
        else:
            out += b"%d 0 obj\n%s\nendobj\n" % (num, objs[num])
    size = max(offsets) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets[num] if num in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R /ID [<%s> <%s>]%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        file_id.hex().encode(),
        file_id.hex().encode(),
        encrypt,
        xref,
    )
    return bytes(out)


def write(tmp_path: Path, name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def problem(path: Path, **kwargs) -> str:
    """The DocumentError message for `path`, checked to name the file."""
    with pytest.raises(DocumentError) as info:
        extract(path, **kwargs)
    assert info.value.path == path
    message = str(info.value)
    assert path.name in message
    assert "Traceback" not in message
    return message


MULTILINGUAL = [
    ["Résumé: café, naïve, Größe, Øresund, señor", "Привет, мир! Съешь ещё этих булок."],
    ["日本語のテキスト、中文文本、한국어", "Ελληνικά κείμενα", "emoji 😀 and 𠀋 beyond the BMP"],
    ["Last page, ‘quotes’ — and dashes…"],
]


# -- PDF -----------------------------------------------------------------------------------------


def test_pdf_keeps_text_and_page_numbers_in_any_script(tmp_path):
    path = write(tmp_path, "multilingual.pdf", make_pdf(MULTILINGUAL))
    doc = extract(path)
    assert (doc.kind, doc.name, doc.path, doc.page_count) == ("pdf", path.name, path, 3)
    assert doc.pages == tuple(Page(n + 1, "\n".join(lines)) for n, lines in enumerate(MULTILINGUAL))
    assert doc.text == "\n\n".join("\n".join(lines) for lines in MULTILINGUAL)
    assert doc.paginated and doc.warnings == ()
    cited = doc.cited_text()
    assert cited.startswith("[page 1]\nRésumé")
    assert "[page 2]\n日本語のテキスト、中文文本、한국어\nΕλληνικά κείμενα" in cited
    assert cited.index("[page 2]") < cited.index("[page 3]\nLast page")


def test_pdf_written_by_pdfium_round_trips(tmp_path):
    path = build_pdf(tmp_path / "pdfium.pdf", pages=4, lines=6)
    doc = extract(path)
    assert [p.number for p in doc.pages] == [1, 2, 3, 4]
    assert [p.text for p in doc.pages] == ["\n".join(page_lines(n, 6)) for n in range(1, 5)]


def test_pdf_page_without_text_is_kept_and_reported(tmp_path):
    pages = [["first page"], [], ["third page"]]
    path = write(tmp_path, "mixed.pdf", make_pdf(pages, rects={1: [(50, 50, 200, 100)]}))
    doc = extract(path)
    assert [(p.number, p.text) for p in doc.pages] == [
        (1, "first page"),
        (2, ""),
        (3, "third page"),
    ]
    assert doc.cited_text() == "[page 1]\nfirst page\n\n[page 3]\nthird page"
    assert len(doc.warnings) == 1 and "no text layer" in doc.warnings[0]
    assert doc.warnings[0].endswith(": 2")


def test_pdf_hyphenation_at_line_end_is_joined(tmp_path):
    lines = ["A word broken by hyphen-", "ation, and a soft\xadhyphen."]
    doc = extract(write(tmp_path, "hyphen.pdf", make_pdf([lines])))
    assert doc.text == "A word broken by hyphenation, and a softhyphen."


def test_pdf_named_otherwise_is_still_read_as_pdf(tmp_path):
    path = write(tmp_path, "notes.txt", make_pdf([["inside a PDF"]]))
    doc = extract(path)
    assert (doc.kind, doc.text) == ("pdf", "inside a PDF")


def test_encrypted_pdf_says_password_protected(tmp_path):
    import pypdfium2 as pdfium

    data = make_pdf([["top secret"]], password="hunter2")
    # The file is valid: pdfium opens it with the password, so the error below is not "corrupt".
    with pdfium.PdfDocument(data, password="hunter2") as pdf:
        assert pdf[0].get_textpage().get_text_range() == "top secret"
    message = problem(write(tmp_path, "secret.pdf", data))
    assert "password-protected" in message


def test_truncated_pdf(tmp_path):
    data = build_pdf(tmp_path / "whole.pdf", pages=6).read_bytes()
    message = problem(write(tmp_path, "half.pdf", data[: len(data) // 2]))
    assert "truncated" in message


def test_corrupt_pdf_with_end_marker(tmp_path):
    data = b"%PDF-1.7\n" + os.urandom(3000).replace(b"%%EOF", b"") + b"\n%%EOF\n"
    assert "corrupt" in problem(write(tmp_path, "garbage.pdf", data))


def test_pdf_extension_without_pdf_content(tmp_path):
    assert "not a valid PDF" in problem(write(tmp_path, "fake.pdf", "just words, no PDF"))


def test_pdf_of_only_a_drawing_has_no_text_layer(tmp_path):
    path = write(tmp_path, "scan.pdf", make_pdf([[], []], rects={0: [(10, 10, 300, 400)]}))
    message = problem(path)
    assert "no text layer" in message and "OCR is not supported" in message


# -- DOCX ----------------------------------------------------------------------------------------


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Квартальный отчёт", level=1)
    document.add_paragraph("Before the table: café.")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([["Name", "Город", "Score"], ["Ana", "Lisboa", "9"], ["Bo", "", "7"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 1).merge(table.cell(2, 2)).text = "merged"
    document.add_paragraph("After the table.")
    document.save(path)
    return path


def test_docx_paragraphs_and_tables_in_order(tmp_path):
    doc = extract(make_docx(tmp_path / "report.docx"))
    assert (doc.kind, doc.page_count, doc.paginated) == ("docx", 1, False)
    assert doc.text.split("\n") == [
        "Квартальный отчёт",
        "Before the table: café.",
        "Name | Город | Score",
        "Ana | Lisboa | 9",
        "Bo | merged",
        "After the table.",
    ]
    assert doc.cited_text() == doc.text  # no page markers where pages are not real


def test_corrupt_docx(tmp_path):
    assert "corrupt" in problem(write(tmp_path, "zipjunk.docx", b"PK\x03\x04" + os.urandom(2000)))
    data = make_docx(tmp_path / "whole.docx").read_bytes()
    assert "corrupt" in problem(write(tmp_path, "cut.docx", data[: len(data) // 2]))
    assert "not a valid DOCX" in problem(write(tmp_path, "plain.docx", "not a zip at all"))


def test_zip_without_word_document_is_corrupt_docx(tmp_path):
    import zipfile

    path = tmp_path / "hollow.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    assert "word/document.xml" in problem(path)


# -- text formats --------------------------------------------------------------------------------

TEXT = "Résumé: naïve café.\nПривет, мир — 日本語.\nEnd 😀\n"
RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей чаю.\n" * 3
WESTERN = "Le coeur déçu mais l'âme plutôt naïve, Louÿs rêva de crapaüter en canoë.\n" * 3


@pytest.mark.parametrize(
    "encoding, data, expected, detected",
    [
        ("utf-8", TEXT.encode("utf-8"), TEXT, "utf-8"),
        ("utf-8 BOM", b"\xef\xbb\xbf" + TEXT.encode(), TEXT, "utf-8-sig"),
        ("utf-16 LE BOM", TEXT.encode("utf-16"), TEXT, "utf-16"),
        ("utf-16 BE BOM", b"\xfe\xff" + TEXT.encode("utf-16-be"), TEXT, "utf-16"),
        ("utf-16 LE no BOM", WESTERN.encode("utf-16-le"), WESTERN, "utf-16-le"),
        ("utf-32 BOM", TEXT.encode("utf-32"), TEXT, "utf-32"),
        ("latin-1", WESTERN.encode("latin-1"), WESTERN, "cp1252"),
        ("short latin-1", "Größe, déjà vu".encode("latin-1"), "Größe, déjà vu", "cp1252"),
        ("cp1251", RUSSIAN.encode("cp1251"), RUSSIAN, "cp1251"),
        ("koi8-r", RUSSIAN.encode("koi8-r"), RUSSIAN, "koi8_r"),
        ("CRLF", b"one\r\ntwo\r\n", "one\ntwo\n", "utf-8"),
    ],
)  # fmt: skip
def test_text_encodings_are_detected(tmp_path, encoding, data, expected, detected):
    doc = extract(write(tmp_path, "note.txt", data))
    assert (doc.kind, doc.text, doc.encoding) == ("text", expected, detected)
    assert doc.pages == (Page(1, expected),) and doc.page_count == 1


@pytest.mark.parametrize(
    "name, kind",
    [("README.md", "markdown"), ("main.py", "code"), ("Main.SWIFT", "code"), ("LICENSE", "text")],
)
def test_kind_from_extension(tmp_path, name, kind):
    doc = extract(write(tmp_path, name, "# Title\n\nprint('hi')\n"))
    assert (doc.kind, doc.text) == (kind, "# Title\n\nprint('hi')\n")


def test_html_visible_text_only(tmp_path):
    html = """<!DOCTYPE html><html><head><meta charset="windows-1252"><title>T</title>
    <style>body { color: red }</style><script>alert("no")</script></head>
    <body><h1>Caf\xe9   title</h1><p>First   paragraph
    wraps.</p><script>var hidden = 1;</script><p>Second &amp; last&nbsp;one<br>next line</p>
    <table><tr><th>a</th><td>b</td></tr></table><noscript>enable JS</noscript>
    <pre>  keep   spacing</pre></body></html>"""
    doc = extract(write(tmp_path, "page.html", html.encode("cp1252")))
    assert doc.kind == "html"
    assert doc.text.split("\n") == [
        "Café title",
        "",
        "First paragraph wraps.",
        "",
        "Second & last\xa0one",
        "next line",
        "",
        "a\tb",
        "",
        "keep   spacing",
    ]


def test_html_with_unclosed_head(tmp_path):
    html = "<html><head><title>x</title><body><p>visible</p></body></html>"
    assert extract(write(tmp_path, "page.htm", html)).text == "visible"


def test_rtf(tmp_path):
    rtf = (
        r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times;}}"
        r"\f0 Caf\'e9 \b bold\b0  text.\par "
        r"\u1055?\u1088?\u1080?\u1074?\u1077?\u1090? \u26085?\u26412?\par}"
    )
    doc = extract(write(tmp_path, "letter.rtf", rtf))
    assert doc.kind == "rtf"
    assert doc.text.split("\n") == ["Café bold text.", "Привет 日本"]


def test_rtf_with_a_picture_and_as_a_textedit_package(tmp_path):
    picture = r"{\pict\pngblip " + "89504e47" * 20000 + "}"
    rtf = r"{\rtf1\ansi Before.\par " + picture + r" After.\par}"
    assert extract(write(tmp_path, "pic.rtf", rtf)).text == "Before.\n After."
    package = tmp_path / "Note.rtfd"
    package.mkdir()
    write(package, "TXT.rtf", r"{\rtf1\ansi Inside a package.\par}")
    doc = extract(package)
    assert (doc.kind, doc.name, doc.text) == ("rtf", "Note.rtfd", "Inside a package.")


def test_csv_as_text_lines(tmp_path):
    csv = 'name,city\n"Ng, Ana",Zürich\nBo,Київ\n'
    doc = extract(write(tmp_path, "table.csv", csv))
    assert (doc.kind, doc.text) == ("csv", csv)


def test_json_pretty_printed(tmp_path):
    doc = extract(write(tmp_path, "data.json", '{"city":"Zürich","n":[1,2]}'))
    assert doc.kind == "json"
    assert json.loads(doc.text) == {"city": "Zürich", "n": [1, 2]}
    assert doc.text.startswith('{\n  "city": "Zürich",')


def test_invalid_json_is_kept_as_text_with_a_warning(tmp_path):
    doc = extract(write(tmp_path, "broken.json", '{"a": 1,'))
    assert doc.text == '{"a": 1,'
    assert "not valid JSON" in doc.warnings[0]


# -- bad input -----------------------------------------------------------------------------------


def test_empty_and_blank_files(tmp_path):
    assert "empty" in problem(write(tmp_path, "empty.txt", b""))
    assert "no text" in problem(write(tmp_path, "blank.md", " \n\t\n"))


def test_binary_under_text_extension(tmp_path):
    assert "binary" in problem(write(tmp_path, "random.txt", os.urandom(4096)))
    nul_free = bytes(range(1, 32)) * 100  # control bytes, no NULs
    assert "binary" in problem(write(tmp_path, "controls.txt", nul_free))
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(100)
    message = problem(write(tmp_path, "picture.txt", png))
    assert "PNG image" in message and "not supported" in message


@pytest.mark.parametrize("name", ["setup.exe", "photo.png", "archive.xyz"])
def test_unsupported_types_list_the_supported_ones(tmp_path, name):
    message = problem(write(tmp_path, name, b"MZ\x90\x00" + os.urandom(200)))
    assert "not supported" in message and "PDF" in message and "Word (.docx)" in message


def test_office_formats_we_do_not_read_are_named(tmp_path):
    import zipfile

    path = tmp_path / "plan.vsdx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("visio/document.xml", "<VisioDocument/>")
    assert "a Visio drawing is not supported" in problem(path)
    hollow = tmp_path / "sheet.xlsx"
    with zipfile.ZipFile(hollow, "w") as z:
        z.writestr("hello.txt", "hi")
    assert "the XLSX is corrupt: it is a ZIP archive" in problem(hollow)


def test_over_size_limit_gives_size_and_limit(tmp_path):
    path = write(tmp_path, "big.txt", "x" * 3000)
    message = problem(path, max_bytes=100)
    assert "2.9 KB" in message and "100 bytes limit" in message
    assert extract(path, max_bytes=3000).text == "x" * 3000


def test_missing_path_and_directory(tmp_path):
    assert "not found" in problem(tmp_path / "nope.pdf")
    folder = tmp_path / "folder.pdf"
    folder.mkdir()
    assert "folder" in problem(folder)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, "locked.txt", "secret")
    path.chmod(0)
    try:
        assert "permission denied" in problem(path)
    finally:
        path.chmod(0o600)


def test_read_failure_is_reported(tmp_path, monkeypatch):
    path = write(tmp_path, "flaky.txt", "text")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    assert "permission denied" in problem(path)


# -- API -----------------------------------------------------------------------------------------


def test_supported_extensions():
    assert {".pdf", ".docx", ".txt", ".md", ".html", ".rtf", ".csv", ".json", ".py"} <= set(
        SUPPORTED_EXTENSIONS
    )
    assert {".epub", ".odt", ".pptx", ".xlsx"} <= set(SUPPORTED_EXTENSIONS)
    assert all(e.startswith(".") and e == e.lower() for e in SUPPORTED_EXTENSIONS)
    assert ".exe" not in SUPPORTED_EXTENSIONS and ".png" not in SUPPORTED_EXTENSIONS


def test_results_are_frozen(tmp_path):
    doc = extract(write(tmp_path, "a.txt", "a"))
    assert isinstance(doc, Document)
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.text = "b"
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.pages[0].number = 2


def test_document_modules_do_not_import_qt():
    import engine.cli.bench_documents
    import engine.docs.extract

    files = [*Path(engine.docs.extract.__file__).parent.glob("*.py")]
    for file in [*files, Path(engine.cli.bench_documents.__file__)]:
        tree = ast.parse(file.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith(("PySide6", "app"))], file.name


def test_bench_runs_and_extracts_every_format():
    rows = bench_extraction(sizes=(2,))
    assert {r["format"] for r in rows} == {
        "pdf", "docx", "txt-utf8", "txt-latin1", "txt-utf16", "html", "rtf",
        "odt", "epub", "pptx", "xlsx",
    }  # fmt: skip
    assert all(r["chars"] > 2 * 45 * 60 for r in rows)
    assert all(20 < r["peak_mb"] < 1024 for r in rows)  # the reader process's own peak
