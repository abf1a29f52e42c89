"""Text from the bytes of plain-text formats: encoding detection, and HTML's visible text.

Errors are `NotText(problem)`; engine.docs.extract adds the file name.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import charset_normalizer
from charset_normalizer.md import mess_ratio

# UTF-32 before UTF-16: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class NotText(ValueError):
    """The bytes are not text we can decode; str() says why."""


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode text: BOM, else UTF-16 by its NULs, UTF-8, a declared charset, then detection."""
    text = encoding = None
    for bom, enc in _BOMS:
        if data.startswith(bom):
            encoding = enc
            break
    encoding = encoding or _sniff_utf16(data)
    if encoding:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            raise NotText(f"not valid {encoding.upper()} text (damaged?)") from None
    elif b"\x00" in data:
        raise NotText("the file contains binary data, not text")
    else:
        for candidate in ("utf-8", declared):
            try:
                text, encoding = data.decode(candidate), candidate
                break
            except (UnicodeDecodeError, LookupError, TypeError):
                pass
        else:
            text, encoding = _detect_legacy(data)
    sample = text[:65536]
    if len(_CONTROL_CHARS.findall(sample)) > max(8, len(sample) // 100):
        raise NotText("the file contains binary data, not text")
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def _detect_legacy(data: bytes) -> tuple[str, str]:
    # Western Windows text first, as browsers do: charset-normalizer often mistakes short
    # French/German text for Latin-6 or Latin-2, while cp1252 read as mess scores high.
    try:
        text = data.decode("cp1252")
        if mess_ratio(text[:65536], maximum_threshold=1.0) < 0.1:
            return text, "cp1252"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise NotText("the file contains binary data or text in an unknown encoding")
    return str(best), best.encoding


def _sniff_utf16(data: bytes) -> str | None:
    # BOM-less UTF-16 of mostly ASCII text has a NUL in every other byte.
    sample = data[:4096]
    if len(data) % 2 or len(sample) < 4:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if odd > half * 0.3 and even < half * 0.05:
        return "utf-16-le"
    if even > half * 0.3 and odd < half * 0.05:
        return "utf-16-be"
    return None


def looks_like_text(data: bytes) -> bool:
    try:
        decode_text(data)
    except NotText:
        return False
    return True


def declared_charset(html: bytes) -> str | None:
    """The charset an HTML page names in a <meta> tag, if any."""
    found = re.search(rb"""<meta[^>]+charset=["']?([\w-]+)""", html[:4096], re.IGNORECASE)
    return found.group(1).decode() if found else None


def html_visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser.text()


class _VisibleText(HTMLParser):
    """Visible text of an HTML page: no head/script/style, line breaks at block elements."""

    SKIP = frozenset({"script", "style", "noscript", "template", "head"})
    BLOCK = frozenset({
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
        "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
        "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul", "title", "caption",
    })  # fmt: skip

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: list[str] = []
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.skipping.clear()  # a <head> left open ends where <body> starts
        elif tag in self.SKIP:
            self.skipping.append(tag)
        elif tag in ("td", "th"):
            self.parts.append("\t")
        if tag in self.BLOCK:
            self.parts.append("\n")
        if tag == "pre":
            self.pre += 1

    def handle_startendtag(self, tag, attrs):
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.skipping:
            while self.skipping and self.skipping.pop() != tag:
                pass
        if tag in self.BLOCK:
            self.parts.append("\n")
        if tag == "pre" and self.pre:
            self.pre -= 1

    def handle_data(self, data):
        if self.skipping:
            return
        self.parts.append(data if self.pre else re.sub(r"[ \t\n\r\f]+", " ", data))

    def text(self) -> str:
        lines = (line.strip(" \t") for line in "".join(self.parts).split("\n"))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
