"""Plain text, JSON and HTML: decoded by engine.docs.text_formats, warnings passed on."""

from __future__ import annotations

import json
from pathlib import Path

from engine.docs.document import DocumentError, Page
from engine.docs.text_formats import NotText, declared_charset, decode, html_visible_text


def _decode(path: Path, data: bytes, declared: str | None = None):
    try:
        return decode(data, declared)
    except NotText as exc:
        raise DocumentError(path, str(exc)) from None


def read_plain(path: Path, data: bytes):
    decoded = _decode(path, data)
    return [Page(1, decoded.text)], decoded.encoding, list(decoded.warnings)


def read_json(path: Path, data: bytes):
    decoded = _decode(path, data)
    warnings = list(decoded.warnings)
    try:
        text = json.dumps(json.loads(decoded.text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError) as exc:
        warnings.append(f"not valid JSON ({exc}); read as plain text")
        text = decoded.text
    return [Page(1, text)], decoded.encoding, warnings


def read_html(path: Path, data: bytes):
    decoded = _decode(path, data, declared_charset(data))
    return [Page(1, html_visible_text(decoded.text))], decoded.encoding, list(decoded.warnings)
