"""The readers by kind, as the worker process calls them: `parse(kind, path, data)`.

Each returns (pages, encoding or None, warnings) or raises DocumentError. ZIP-based kinds get
the archive already checked against bombs (engine.docs.zipsafe).
"""

from __future__ import annotations

from pathlib import Path

# Imported by name (not importlib strings) so a PyInstaller bundle finds every reader; each
# imports its library only when called.
from engine.docs import epub, opendoc, pdf, rtf, sheets, slides, text, word
from engine.docs.document import DocumentError
from engine.docs.zipsafe import UnsafeZip, check_zip

# kind -> (reader, whether it takes the opened ZIP archive instead of bytes)
_READERS = {
    "pdf": (pdf.read_pdf, False),
    "docx": (word.read_docx, True),
    "odt": (opendoc.read_odt, False),
    "epub": (epub.read_epub, False),
    "pptx": (slides.read_pptx, False),
    "xlsx": (sheets.read_xlsx, False),
    "rtf": (rtf.read_rtf, False),
    "html": (text.read_html, False),
    "json": (text.read_json, False),
    "csv": (text.read_plain, False),
    "text": (text.read_plain, False),
    "markdown": (text.read_plain, False),
    "code": (text.read_plain, False),
}
ZIP_KINDS = frozenset({"docx", "odt", "epub", "pptx", "xlsx"})


def parse(kind: str, path: str | Path, data: bytes):
    reader, wants_archive = _READERS[kind]
    path = Path(path)
    if kind in ZIP_KINDS:
        try:
            archive = check_zip(data)  # checked again: this may run without the parent's check
        except UnsafeZip as exc:
            raise DocumentError(path, f"refused: {exc}") from None
        if wants_archive:
            return reader(path, archive)
    return reader(path, data)
