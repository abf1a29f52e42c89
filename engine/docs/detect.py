"""Which reader a file needs: by content (magic bytes, ZIP parts) first, then by extension."""

from __future__ import annotations

import zipfile
from pathlib import Path

from engine.docs.document import DocumentError
from engine.docs.text_formats import looks_like_text
from engine.docs.zipsafe import UnsafeZip, check_zip, zip_kind

KIND_BY_EXTENSION = {
    ".pdf": "pdf",
    ".docx": "docx", ".docm": "docx", ".dotx": "docx",
    ".odt": "odt", ".ott": "odt",
    ".epub": "epub",
    ".pptx": "pptx", ".pptm": "pptx", ".ppsx": "pptx",
    ".xlsx": "xlsx", ".xlsm": "xlsx",
    ".rtf": "rtf", ".rtfd": "rtf",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".csv": "csv", ".tsv": "csv",
    ".json": "json",
    ".md": "markdown", ".markdown": "markdown",
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
_ZIP_KINDS = {"docx", "odt", "epub", "pptx", "xlsx"}
_NAMES = {"docx": "DOCX", "odt": "ODT", "epub": "EPUB", "pptx": "PPTX", "xlsx": "XLSX"}

# Known binary formats, named in the error so the user knows what they dropped.
_UNSUPPORTED_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"MZ", "a Windows executable"),
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
    (b"{\\pict", "an RTF picture"),
)  # fmt: skip
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy Office, or an encrypted OOXML file
_OLE_NAMES = {
    ".doc": "a legacy Word .doc: save it as .docx",
    ".xls": "a legacy Excel .xls: save it as .xlsx",
    ".ppt": "a legacy PowerPoint .ppt: save it as .pptx",
    ".msg": "an Outlook message",
}

SUPPORTED_LIST = (
    "PDF, Word (.docx), OpenDocument text (.odt), EPUB, PowerPoint (.pptx), Excel (.xlsx), "
    "RTF, HTML, Markdown, plain text, source code, CSV, JSON"
)


def unsupported(path: Path, what: str) -> DocumentError:
    return DocumentError(path, f"{what} is not supported; supported types: {SUPPORTED_LIST}")


def detect_kind(path: Path, data: bytes) -> str:
    """The reader kind for `data`; raises DocumentError naming what the file really is."""
    ext = path.suffix.lower()
    by_ext = KIND_BY_EXTENSION.get(ext)
    # A real PDF/RTF/ZIP document is read as such whatever its name says.
    if data.startswith(b"%PDF-") or (by_ext == "pdf" and b"%PDF-" in data[:1024]):
        return "pdf"
    if data.startswith(b"{\\rtf"):
        return "rtf"
    if data.startswith(b"PK\x03\x04") or (by_ext in _ZIP_KINDS and data.startswith(b"PK")):
        return _zip(path, data, by_ext)
    if data.startswith(_OLE):
        if by_ext in _ZIP_KINDS:
            raise DocumentError(
                path,
                f"the {_NAMES[by_ext]} is password-protected (encrypted) or an older format "
                "renamed; save an unprotected copy in the current format",
            )
        what = _OLE_NAMES.get(ext, "a legacy Office file (.doc/.xls/.ppt) or a protected one")
        raise unsupported(path, what)
    for magic, what in _UNSUPPORTED_MAGIC:
        if data.startswith(magic):
            if magic == b"MZ" and by_ext in ("text", "code", "csv", "markdown"):
                continue  # two letters a text may well start with
            raise unsupported(path, f"{what} (by its content)")
    if by_ext == "pdf" or by_ext in _ZIP_KINDS:
        name = "PDF" if by_ext == "pdf" else _NAMES[by_ext]
        raise DocumentError(path, f"not a valid {name} file (corrupt or mislabeled)")
    if by_ext is not None:
        return by_ext
    if ext == "" and looks_like_text(data):
        return "text"  # README, LICENSE, Makefile, ...
    raise unsupported(
        path, f"the file type '{ext}'" if ext else "binary data without a file extension"
    )


def _zip(path: Path, data: bytes, by_ext: str | None) -> str:
    name = _NAMES.get(by_ext or "", "ZIP archive")
    try:
        archive = check_zip(data)
    except UnsafeZip as exc:
        raise DocumentError(path, f"refused: {exc}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
        if by_ext in _ZIP_KINDS:
            raise DocumentError(
                path, f"the {name} is corrupt or truncated (damaged ZIP archive)"
            ) from None
        raise unsupported(path, "a damaged ZIP archive") from None
    kind, what = zip_kind(archive)
    if kind is not None:
        return kind
    if by_ext == "docx":
        raise DocumentError(path, "the DOCX is corrupt (no word/document.xml inside)")
    if by_ext in _ZIP_KINDS:
        raise DocumentError(path, f"the {name} is corrupt: it is {what}")
    raise unsupported(path, what)
