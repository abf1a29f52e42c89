"""ZIP containers (DOCX, ODT, EPUB, PPTX, XLSX) checked before any parser inflates them.

Only the central directory is read, so a bomb is refused in milliseconds. Python's zipfile
never inflates an entry past the size the directory declares (it stops and reports a bad CRC),
so a directory that lies about sizes cannot get past these limits either.
"""

from __future__ import annotations

import io
import zipfile

MAX_TOTAL_BYTES = 1024 * 1024 * 1024  # everything inflated, media included
MAX_TEXT_BYTES = 128 * 1024 * 1024  # the XML/HTML parts a parser builds a tree of
MAX_RATIO = 100  # Apache POI's default: a part inflating over 100x is a bomb
RATIO_FLOOR = 1024 * 1024  # small parts compress very well legitimately
MAX_ENTRIES = 20_000

_MEDIA = (".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp", ".emf", ".wmf", ".svgz",
          ".mp3", ".mp4", ".m4a", ".mov", ".wav", ".avi", ".ttf", ".otf", ".woff", ".woff2",
          ".odttf", ".bin", ".wdp", ".jfif", ".webp")  # fmt: skip


class UnsafeZip(ValueError):
    """The archive would inflate past a limit; str() says which and by how much."""


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MB"


def check_zip(data: bytes) -> zipfile.ZipFile:
    """The opened archive, after checking declared sizes; raises UnsafeZip or BadZipFile."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise UnsafeZip(f"the archive holds {len(infos):,} files (limit {MAX_ENTRIES:,})")
    total = text = 0
    for info in infos:
        size = info.file_size
        total += size
        if not info.filename.lower().endswith(_MEDIA):
            text += size
        ratio = size / max(info.compress_size, 1)
        if size > RATIO_FLOOR and ratio > MAX_RATIO:
            raise UnsafeZip(
                f"'{info.filename}' would inflate {ratio:,.0f}x to {_mb(size)} "
                f"(limit {MAX_RATIO}x): refused as a likely ZIP bomb"
            )
    if total > MAX_TOTAL_BYTES:
        raise UnsafeZip(f"the archive would inflate to {_mb(total)} (limit {_mb(MAX_TOTAL_BYTES)})")
    if text > MAX_TEXT_BYTES:
        raise UnsafeZip(
            f"its text parts would inflate to {_mb(text)} (limit {_mb(MAX_TEXT_BYTES)})"
        )
    return archive


def zip_kind(archive: zipfile.ZipFile) -> tuple[str | None, str]:
    """(kind we read or None, what the file is in words) from the archive's parts."""
    names = set(archive.namelist())
    mimetype = ""
    if "mimetype" in names:
        mimetype = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
    if "word/document.xml" in names or _office_main(archive, names) == "word":
        return "docx", "a Word document"
    if any(n.startswith("xl/") for n in names):
        return "xlsx", "an Excel workbook"
    if any(n.startswith("ppt/") for n in names):
        return "pptx", "a PowerPoint presentation"
    if mimetype == "application/epub+zip" or "META-INF/container.xml" in names:
        return "epub", "an EPUB book"
    if mimetype.startswith("application/vnd.oasis.opendocument."):
        sub = mimetype.rsplit(".", 1)[-1]
        if sub == "text":
            return "odt", "an OpenDocument text"
        return None, f"an OpenDocument file ({sub})"
    if "content.xml" in names and "META-INF/manifest.xml" in names:
        return "odt", "an OpenDocument text"
    if any(n.startswith("visio/") for n in names):
        return None, "a Visio drawing"
    if "AndroidManifest.xml" in names:
        return None, "an Android app (APK)"
    if "META-INF/MANIFEST.MF" in names:
        return None, "a Java archive (JAR)"
    return None, "a ZIP archive"


def _office_main(archive: zipfile.ZipFile, names: set[str]) -> str | None:
    # A Word file whose main part is not at the usual path: find it through the package rels.
    if "_rels/.rels" not in names:
        return None
    rels = archive.read("_rels/.rels")[:65536]
    return "word" if b"word/" in rels and b"officeDocument" in rels else None
