"""Text extraction from files a user drops on the chat window.

`extract(path)` returns a `Document` or raises `DocumentError` with a message that names the file
and the problem; it never returns a partial result silently (see `Document.warnings`).

Pages: a PDF gives one `Page` per PDF page, numbered as in the file (empty pages kept, so numbers
stay true). Every other format has no fixed pagination, so it gives a single page numbered 1, and
`Document.cited_text()` adds "[page N]" markers only for PDFs.
"""

from __future__ import annotations

import io
import json
import re
import stat
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from engine.docs.text_formats import (
    NotText,
    declared_charset,
    decode_text,
    html_visible_text,
    looks_like_text,
)

DEFAULT_MAX_BYTES = 200 * 1024 * 1024

_KIND_BY_EXTENSION = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".rtf": "rtf",
    ".rtfd": "rtf",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".md": "markdown",
    ".markdown": "markdown",
    **dict.fromkeys((".txt", ".text", ".log", ".rst", ".tex", ".org", ".srt", ".vtt"), "text"),
    **dict.fromkeys(
        (".py", ".pyi", ".ipynb", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".c", ".h", ".cc",
         ".cpp", ".hpp", ".cxx", ".m", ".mm", ".swift", ".java", ".kt", ".kts", ".scala",
         ".go", ".rs", ".rb", ".php", ".pl", ".lua", ".r", ".jl", ".cs", ".fs", ".sh",
         ".bash", ".zsh", ".fish", ".ps1", ".sql", ".css", ".scss", ".xml", ".yaml", ".yml",
         ".toml", ".ini", ".cfg", ".conf", ".jsonl", ".proto", ".graphql", ".dart", ".zig",
         ".hs", ".ml", ".ex", ".exs", ".erl", ".clj", ".vue", ".svelte", ".cmake", ".diff",
         ".patch"),
        "code",
    ),
}  # fmt: skip

# The file dialog filter; files with no extension are also accepted when their content is text.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(_KIND_BY_EXTENSION))

# Known binary formats, named in the error so the user knows what they dropped.
_UNSUPPORTED_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"\xcf\xfa\xed\xfe", "an executable (Mach-O)"),
    (b"\xca\xfe\xba\xbe", "an executable (Mach-O universal) or Java class"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"bplist00", "a binary property list"),
    (b"OggS", "Ogg audio/video"),
    (b"fLaC", "FLAC audio"),
    (b"ID3", "MP3 audio"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy or protected Office file (.doc/.xls/.ppt)"),
)  # fmt: skip

_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"}
)
_RTF_HEX_BLOB = re.compile(r"[0-9a-fA-F\r\n]{512,}")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# pdfium is not thread-safe; extraction may be called from more than one thread.
_PDFIUM_LOCK = threading.Lock()


class DocumentError(Exception):
    """A file that cannot be turned into text; str() names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path.name or self.path}: {problem}")


@dataclass(frozen=True)
class Page:
    number: int  # 1-based, as printed in the source
    text: str


@dataclass(frozen=True)
class Document:
    path: Path
    name: str
    kind: str  # pdf, docx, text, markdown, code, html, rtf, csv, json
    text: str
    pages: tuple[Page, ...]
    page_count: int
    encoding: str | None = None  # for decoded text formats
    warnings: tuple[str, ...] = ()  # things the user should know, e.g. pages without text

    @property
    def paginated(self) -> bool:
        return self.kind == "pdf"

    def cited_text(self) -> str:
        """The text with a "[page N]" line before each non-empty page (PDF only)."""
        if not self.paginated:
            return self.text
        return "\n\n".join(f"[page {p.number}]\n{p.text}" for p in self.pages if p.text.strip())


def extract(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    """Extract the text of `path`, choosing the reader by content (magic bytes) then extension."""
    path = Path(path).expanduser()
    data = _read(path, max_bytes)
    kind = "file"
    try:
        kind = _detect_kind(path, data)
        pages, encoding, warnings = _READERS[kind](path, data)
    except DocumentError:
        raise
    except Exception as exc:  # a library failure on odd input must not reach the user raw
        raise DocumentError(
            path, f"could not be read as {kind.upper()} ({type(exc).__name__}: {exc})"
        ) from exc
    text = "\n\n".join(p.text for p in pages if p.text)
    if not text.strip():
        raise DocumentError(path, "the file contains no text to read")
    return Document(
        path=path,
        name=path.name,
        kind=kind,
        text=text,
        pages=tuple(pages),
        page_count=len(pages),
        encoding=encoding,
        warnings=tuple(warnings),
    )


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DocumentError(path, f"file not found ({path})") from None
    except PermissionError:
        raise DocumentError(path, "permission denied") from None
    except OSError as exc:
        raise DocumentError(path, f"cannot be opened: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        if path.suffix.lower() == ".rtfd" and (path / "TXT.rtf").is_file():
            return _read(path / "TXT.rtf", max_bytes)  # TextEdit's RTF with attachments
        raise DocumentError(path, "this is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise DocumentError(path, "this is not a regular file")
    if st.st_size > max_bytes:
        raise DocumentError(path, _too_big(st.st_size, max_bytes))
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)  # +1: the file may have grown since stat
    except PermissionError:
        raise DocumentError(path, "permission denied") from None
    except OSError as exc:
        raise DocumentError(path, f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise DocumentError(path, _too_big(len(data), max_bytes))
    if not data:
        raise DocumentError(path, "the file is empty")
    return data


def _too_big(size: int, limit: int) -> str:
    return f"the file is {_format_size(size)}, over the {_format_size(limit)} limit"


def _format_size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}".replace(".0 ", " ")


def _unsupported(path: Path, what: str) -> DocumentError:
    kinds = "PDF, Word (.docx), RTF, HTML, Markdown, plain text, source code, CSV, JSON"
    return DocumentError(path, f"{what} is not supported; supported types: {kinds}")


def _detect_kind(path: Path, data: bytes) -> str:
    ext = path.suffix.lower()
    by_ext = _KIND_BY_EXTENSION.get(ext)
    # A real PDF/RTF/DOCX is read as such whatever its name says.
    if data.startswith(b"%PDF-") or (by_ext == "pdf" and b"%PDF-" in data[:1024]):
        return "pdf"
    if data.startswith(b"{\\rtf"):
        return "rtf"
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(path, data, by_ext)
    for magic, what in _UNSUPPORTED_MAGIC:
        if data.startswith(magic):
            if by_ext == "docx" and magic.startswith(b"\xd0\xcf"):
                raise DocumentError(
                    path, "the DOCX is password-protected or an old .doc renamed; save it as .docx"
                )
            raise _unsupported(path, f"{what} (by its content)")
    if by_ext in ("pdf", "docx"):
        raise DocumentError(path, f"not a valid {by_ext.upper()} file (corrupt or mislabeled)")
    if by_ext is not None:
        return by_ext
    if ext == "" and looks_like_text(data):
        return "text"  # README, LICENSE, Makefile, ...
    raise _unsupported(
        path, f"the file type '{ext}'" if ext else "binary data without a file extension"
    )


def _zip_kind(path: Path, data: bytes, by_ext: str | None) -> str:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        if by_ext == "docx":
            raise DocumentError(
                path, "the DOCX is corrupt or truncated (damaged ZIP archive)"
            ) from None
        raise _unsupported(path, "a damaged ZIP archive") from None
    if "word/document.xml" in names:
        return "docx"
    if by_ext == "docx":
        raise DocumentError(path, "the DOCX is corrupt (no word/document.xml inside)")
    what = "a ZIP archive"
    if any(n.startswith("xl/") for n in names):
        what = "an Excel workbook"
    elif any(n.startswith("ppt/") for n in names):
        what = "a PowerPoint presentation"
    elif "META-INF/container.xml" in names:
        what = "an EPUB book"
    raise _unsupported(path, what)


def _decode(path: Path, data: bytes, declared: str | None = None) -> tuple[str, str]:
    try:
        return decode_text(data, declared)
    except NotText as exc:
        raise DocumentError(path, str(exc)) from None


# -- readers: (path, data) -> (pages, encoding, warnings) ---------------------------------------


def _read_plain(path: Path, data: bytes):
    text, encoding = _decode(path, data)
    return [Page(1, text)], encoding, []


def _read_json(path: Path, data: bytes):
    text, encoding = _decode(path, data)
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError) as exc:
        return [Page(1, text)], encoding, [f"not valid JSON ({exc}); read as plain text"]
    return [Page(1, text)], encoding, []


def _read_pdf(path: Path, data: bytes):
    import pypdfium2 as pdfium

    if b"%%EOF" not in data[-4096:]:
        raise DocumentError(path, "the PDF is truncated or damaged (no end-of-file marker)")
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise DocumentError(path, _pdf_open_problem(exc)) from None
        try:
            raw_pages = []
            for i in range(len(pdf)):
                try:
                    page = pdf[i]
                    textpage = page.get_textpage()
                    raw_pages.append(textpage.get_text_range())
                    textpage.close()
                    page.close()
                except pdfium.PdfiumError:
                    raise DocumentError(
                        path, f"page {i + 1} cannot be read (the PDF is damaged)"
                    ) from None
        finally:
            pdf.close()
    if not raw_pages:
        raise DocumentError(path, "the PDF has no pages")
    pages = [Page(i + 1, _clean_pdf_text(t)) for i, t in enumerate(raw_pages)]
    empty = [p.number for p in pages if not p.text.strip()]
    if len(empty) == len(pages):
        raise DocumentError(
            path, "the PDF has no text layer (scanned or image-only); OCR is not supported"
        )
    warnings = []
    if empty:
        listed = ", ".join(map(str, empty[:20])) + (", ..." if len(empty) > 20 else "")
        warnings.append(f"{len(empty)} page(s) have no text layer and were skipped: {listed}")
    return pages, None, warnings


def _pdf_open_problem(exc: Exception) -> str:
    import pypdfium2.raw as pdfium_c

    code = getattr(exc, "err_code", None)
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return "the PDF is password-protected; save an unprotected copy and try again"
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return "the PDF uses an unsupported protection scheme (DRM)"
    return "the PDF is corrupt or truncated (it cannot be opened)"


def _clean_pdf_text(text: str) -> str:
    # pdfium marks a word hyphenated across lines with U+FFFE and joins the lines; we join the word.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "")
    text = text.replace("\xad", "")  # soft hyphens are invisible in the page
    text = _CONTROL_CHARS.sub("", text).translate(_LIGATURES)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _read_docx(path: Path, data: bytes):
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError/ValueError/XML errors on bad parts
        raise DocumentError(path, f"the DOCX is corrupt ({type(exc).__name__}: {exc})") from exc
    return [Page(1, "\n".join(_docx_blocks(document)))], None, []


def _docx_blocks(container) -> list[str]:
    """Paragraph and table text of a document body or a table cell, in document order."""
    from docx.table import Table

    lines = []
    for block in container.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells, seen = [], set()
                for cell in row.cells:  # a merged cell repeats; keep it once
                    if id(cell._tc) not in seen:
                        seen.add(id(cell._tc))
                        cells.append(" ".join(_docx_blocks(cell)).strip())
                lines.append(" | ".join(cells))
        else:
            lines.append(block.text)
    return lines


def _read_rtf(path: Path, data: bytes):
    from striprtf.striprtf import rtf_to_text

    head = data[:4096].decode("latin-1")
    codepage = re.search(r"\\ansicpg(\d+)", head)
    encoding = f"cp{codepage.group(1)}" if codepage else "cp1252"
    try:
        "".encode(encoding)
    except LookupError:
        encoding = "cp1252"
    # Drop embedded pictures' hex data first: striprtf's regexes crawl over megabytes of it.
    rtf = _RTF_HEX_BLOB.sub("", data.decode("latin-1"))
    text = rtf_to_text(rtf, encoding=encoding, errors="replace")
    warnings = ["some characters could not be decoded"] if "\ufffd" in text else []
    return [Page(1, text.replace("\r\n", "\n").strip())], encoding, warnings


def _read_html(path: Path, data: bytes):
    text, encoding = _decode(path, data, declared_charset(data))
    return [Page(1, html_visible_text(text))], encoding, []


_READERS = {
    "pdf": _read_pdf,
    "docx": _read_docx,
    "rtf": _read_rtf,
    "html": _read_html,
    "json": _read_json,
    "csv": _read_plain,
    "text": _read_plain,
    "markdown": _read_plain,
    "code": _read_plain,
}
