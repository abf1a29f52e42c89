"""RTF text through striprtf, with what it misses: \\binN data, pictures, UTF-16 surrogates."""

from __future__ import annotations

import re
from pathlib import Path

from engine.docs.document import Page

_HEX_BLOB = re.compile(r"[0-9a-fA-F\r\n]{512,}")  # a picture's hex data
_BIN = re.compile(r"\\bin(\d+) ?")


def read_rtf(path: Path, data: bytes):
    from striprtf.striprtf import rtf_to_text

    head = data[:4096].decode("latin-1")
    codepage = re.search(r"\\ansicpg(\d+)", head)
    encoding = f"cp{codepage.group(1)}" if codepage else "cp1252"
    try:
        "".encode(encoding)
    except LookupError:
        encoding = "cp1252"
    rtf, skipped = _drop_binary(data.decode("latin-1"))
    # Pictures' hex data goes first: striprtf's regexes crawl over megabytes of it.
    rtf = _HEX_BLOB.sub("", rtf)
    text = rtf_to_text(rtf, encoding=encoding, errors="replace")
    # \uN is a UTF-16 unit: an emoji is written as two (a surrogate pair) and must be one char.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    warnings = []
    if "\ufffd" in text:
        warnings.append(f"some characters could not be decoded as {encoding}")
    if skipped:
        warnings.append(f"{skipped:,} bytes of embedded binary data (pictures, objects) skipped")
    return [Page(1, text.replace("\r\n", "\n").strip())], encoding, warnings


def _drop_binary(rtf: str) -> tuple[str, int]:
    """Remove `\\binN` and the N raw bytes after it (they may hold braces and backslashes)."""
    out, pos, skipped = [], 0, 0
    for match in _BIN.finditer(rtf):
        if match.start() < pos:
            continue  # inside binary data already skipped
        n = int(match.group(1))
        out.append(rtf[pos : match.start()])
        pos = match.end() + n
        skipped += n
    out.append(rtf[pos:])
    return "".join(out), skipped
