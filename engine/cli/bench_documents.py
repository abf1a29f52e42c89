"""Extraction timings: `python -m engine.cli.bench_documents [--pages 300]`.

Builds documents of N pages (about 45 lines of 80 characters a page, ~3.6 KB of text) in a temp
folder, extracts each with `engine.docs.extract.extract` and prints seconds per format and size.
"""

from __future__ import annotations

import argparse
import ctypes
import tempfile
import time
from pathlib import Path

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
    document.save(path)
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


def bench_extraction(sizes: tuple[int, ...] = (10, 100, 300)) -> list[dict]:
    """Extraction seconds per format and page count; each a fresh file, best of 2 runs."""
    builders = {
        "pdf": build_pdf,
        "docx": build_docx,
        "txt-utf8": build_text,
        "txt-latin1": lambda p, n: build_text(p, n, "latin-1"),
        "txt-utf16": lambda p, n: build_text(p, n, "utf-16"),
        "html": build_html,
        "rtf": build_rtf,
    }
    suffix = {"pdf": ".pdf", "docx": ".docx", "html": ".html", "rtf": ".rtf"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, build in builders.items():
            for pages in sizes:
                path = Path(tmp) / f"{fmt}-{pages}{suffix.get(fmt, '.txt')}"
                t0 = time.perf_counter()
                build(path, pages)
                build_s = time.perf_counter() - t0
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
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[10, 100, 300])
    args = parser.parse_args(argv)
    print(
        f"{'format':<11} {'pages':>5} {'file KB':>9} {'chars':>9} {'build s':>8} {'extract s':>9}"
    )
    for r in bench_extraction(tuple(args.pages)):
        print(
            f"{r['format']:<11} {r['pages']:>5} {r['bytes'] / 1024:>9.0f} {r['chars']:>9}"
            f" {r['build_s']:>8.3f} {r['extract_s']:>9.3f}"
        )


if __name__ == "__main__":
    main()
