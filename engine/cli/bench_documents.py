"""Extraction timings and memory: `python -m engine.cli.bench_documents [--pages 300]`.

Builds documents of N pages (about 45 lines of 80 characters a page, ~3.6 KB of text) in a temp
folder, extracts each with `engine.docs.extract.extract` and prints seconds per format and size,
and the reader process's peak resident memory (a fresh worker for each file, so the peak is that
file's; "idle" is a fresh worker's own peak before it reads anything).
"""

from __future__ import annotations

import argparse
import ctypes
import tempfile
import time
from pathlib import Path

from engine.docs import sandbox
from engine.docs.extract import extract

LINES_PER_PAGE = 45


def page_lines(page: int, lines: int = LINES_PER_PAGE) -> list[str]:
    # Latin-1 text with accents: the standard Helvetica font of a PDF can show it unembedded.
    return [
        f"Page {page} line {n}: le café déjà vu, naïve façade, Größe und Übermaß {page * n:06d}."
        for n in range(1, lines + 1)
    ]


def build_pdf(path: str | Path, pages: int, lines: int = LINES_PER_PAGE) -> Path:
    """A text PDF written by pdfium itself (page objects, Helvetica), one text object a line."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    pdf = pdfium.PdfDocument.new()
    font = pdfium_c.FPDFText_LoadStandardFont(pdf, b"Helvetica")
    for number in range(1, pages + 1):
        page = pdf.new_page(595, 842)
        for n, line in enumerate(page_lines(number, lines)):
            obj = pdfium_c.FPDFPageObj_CreateTextObj(pdf, font, ctypes.c_float(10))
            wide = (line + "\0").encode("utf-16-le")
            pdfium_c.FPDFText_SetText(
                obj, ctypes.cast(ctypes.c_char_p(wide), pdfium_c.FPDF_WIDESTRING)
            )
            pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, 40, 800 - 17 * n)
            pdfium_c.FPDFPage_InsertObject(page, obj)
        pdfium_c.FPDFPage_GenerateContent(page)
        page.close()
    pdfium_c.FPDFFont_Close(font)
    path = Path(path)
    pdf.save(path)
    pdf.close()
    return path


def build_docx(path: str | Path, pages: int) -> Path:
    import docx

    document = docx.Document()
    for number in range(1, pages + 1):
        for line in page_lines(number):
            document.add_paragraph(line)
    document.save(str(path))
    return Path(path)


def build_text(path: str | Path, pages: int, encoding: str = "utf-8") -> Path:
    text = "\n\n".join("\n".join(page_lines(n)) for n in range(1, pages + 1))
    Path(path).write_text(text, encoding=encoding)
    return Path(path)


def build_html(path: str | Path, pages: int) -> Path:
    body = "".join(
        "<div><script>var x = 1;</script>" + "".join(f"<p>{line}</p>" for line in page_lines(n))
        for n in range(1, pages + 1)
    )
    Path(path).write_text(f"<html><head><style>p{{}}</style></head><body>{body}</body></html>")
    return Path(path)


def build_rtf(path: str | Path, pages: int) -> Path:
    def escape(line: str) -> str:
        return "".join(c if ord(c) < 128 else f"\\u{ord(c)}?" for c in line)

    body = "".join(escape(line) + "\\par\n" for n in range(1, pages + 1) for line in page_lines(n))
    Path(path).write_text("{\\rtf1\\ansi\\ansicpg1252\\deff0 " + body + "}", encoding="ascii")
    return Path(path)


def build_odt(path: str | Path, pages: int) -> Path:
    from odf.opendocument import OpenDocumentText
    from odf.text import P

    document = OpenDocumentText()
    for number in range(1, pages + 1):
        for line in page_lines(number):
            document.text.addElement(P(text=line))
    document.save(str(path))
    return Path(path)


def build_epub(path: str | Path, pages: int) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("bench")
    book.set_title("Bench")
    chapters = []
    for number in range(1, pages + 1):
        chapter = epub.EpubHtml(title=f"Chapter {number}", file_name=f"c{number}.xhtml")
        body = "".join(f"<p>{line}</p>" for line in page_lines(number))
        chapter.content = f"<html><body><h1>Chapter {number}</h1>{body}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = tuple(chapters)
    book.add_item(epub.EpubNcx())
    book.spine = chapters
    epub.write_epub(str(path), book)
    return Path(path)


def build_pptx(path: str | Path, pages: int) -> Path:
    from pptx import Presentation

    deck = Presentation()
    for number in range(1, pages + 1):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {number}"
        slide.placeholders[1].text = "\n".join(page_lines(number))
    deck.save(str(path))
    return Path(path)


def build_xlsx(path: str | Path, pages: int) -> Path:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    for number in range(1, pages + 1, 10):  # ten "pages" of rows a sheet
        sheet = book.create_sheet(f"Sheet {number}")
        for n in range(number, min(number + 10, pages + 1)):
            for line in page_lines(n):
                sheet.append(line.split(", "))
    book.save(path)
    return Path(path)


def idle_worker_rss() -> int:
    """Peak resident bytes of a fresh reader process that has read nothing."""
    worker = sandbox.shared_worker()
    worker.call("builtins:len", ("",), timeout=120, fresh=True)
    return worker.last_usage.peak_rss


def bench_extraction(sizes: tuple[int, ...] = (10, 100, 300)) -> list[dict]:
    """Extraction seconds per format and page count (best of 2 runs in a warm worker) and the
    reader's peak memory for that file (a first run in a fresh worker)."""
    builders = {
        "pdf": build_pdf,
        "docx": build_docx,
        "txt-utf8": build_text,
        "txt-latin1": lambda p, n: build_text(p, n, "latin-1"),
        "txt-utf16": lambda p, n: build_text(p, n, "utf-16"),
        "html": build_html,
        "rtf": build_rtf,
        "odt": build_odt,
        "epub": build_epub,
        "pptx": build_pptx,
        "xlsx": build_xlsx,
    }
    suffix = {f: f".{f}" for f in ("pdf", "docx", "html", "rtf", "odt", "epub", "pptx", "xlsx")}
    worker = sandbox.shared_worker()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, build in builders.items():
            for pages in sizes:
                path = Path(tmp) / f"{fmt}-{pages}{suffix.get(fmt, '.txt')}"
                t0 = time.perf_counter()
                build(path, pages)
                build_s = time.perf_counter() - t0
                worker.close()  # the next call starts a fresh worker: its peak is this file's
                extract(path)
                peak = worker.last_usage.peak_rss
                times = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    doc = extract(path)
                    times.append(time.perf_counter() - t0)
                rows.append(
                    {
                        "format": fmt,
                        "pages": pages,
                        "bytes": path.stat().st_size,
                        "chars": len(doc.text),
                        "build_s": build_s,
                        "extract_s": min(times),
                        "peak_mb": peak / (1024 * 1024),
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[10, 100, 300])
    args = parser.parse_args(argv)
    print(f"reader process, idle: {idle_worker_rss() / (1024 * 1024):.0f} MB peak resident")
    print(
        f"{'format':<11} {'pages':>5} {'file KB':>9} {'chars':>9} {'build s':>8} {'extract s':>9}"
        f" {'peak MB':>8}"
    )
    for r in bench_extraction(tuple(args.pages)):
        print(
            f"{r['format']:<11} {r['pages']:>5} {r['bytes'] / 1024:>9.0f} {r['chars']:>9}"
            f" {r['build_s']:>8.3f} {r['extract_s']:>9.3f} {r['peak_mb']:>8.0f}"
        )


if __name__ == "__main__":
    main()
