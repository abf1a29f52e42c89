"""Text from the bytes of plain-text formats: encoding detection, and HTML's visible text.

Errors are `NotText(problem)`; engine.docs.extract adds the file name.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import charset_normalizer

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


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    warnings: tuple[str, ...] = ()


# Letters each single-byte legacy encoding is used to write (its languages' alphabets). A wrong
# guess turns them into symbols inside words, letters of another script or rare letters (ð þ).
_LATIN_W = "àâäæçéèêëîïôöœùûüÿñáíóúãõåøßìò"
_LATIN_CE = "ąćęłńóśźżčďěňřšťůžýáéíúőűöüăâîșțşţľĺŕäô"
_LATIN_TR = "çğıöşüâîû"
_LATIN_BALTIC = "ąčęėįšųūžāēģīķļņōŗõäöü"
_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґўђјљњћџѓќ"
_GREEK = "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώϊϋΐΰς"
_LEGACY = {
    "cp1252": _LATIN_W,
    "cp1250": _LATIN_CE,
    "iso8859_2": _LATIN_CE,
    "cp1254": _LATIN_TR,
    "cp1257": _LATIN_BALTIC,
    "cp1251": _CYRILLIC,
    "koi8_r": _CYRILLIC,
    "koi8_u": _CYRILLIC,
    "cp1253": _GREEK,
    "iso8859_7": _GREEK,
}
_LEGACY_LETTERS = {enc: frozenset(a + a.upper()) for enc, a in _LEGACY.items()}
# Names pages declare that Python does not know, or knows as a narrower charset (WHATWG).
_ALIASES = {
    "iso-8859-1": "cp1252", "latin1": "cp1252", "iso8859-1": "cp1252", "latin-1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "iso-8859-9": "cp1254", "latin5": "cp1254",
    "iso-8859-11": "cp874", "tis-620": "cp874", "gb2312": "gbk", "gb_2312-80": "gbk",
    "x-gbk": "gbk", "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "x-sjis": "cp932",
    "shift-jis": "cp932", "shift_jis": "cp932", "sjis": "cp932", "windows-31j": "cp932",
    "x-euc-jp": "euc_jp", "x-mac-roman": "mac_roman", "macintosh": "mac_roman",
    "x-mac-cyrillic": "mac_cyrillic", "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8",
    "x-cp1250": "cp1250", "x-cp1251": "cp1251", "big5-hkscs": "big5hkscs",
}  # fmt: skip
_SEVEN_BIT = ("iso2022", "utf_7", "hz")  # encodings whose bytes are also valid ASCII/UTF-8


def canonical_charset(name: str | None) -> str | None:
    """A Python codec for a declared charset name (HTML/XML aliases included), or None."""
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """(text, encoding) of `data`; see `decode`."""
    decoded = decode(data, declared)
    return decoded.text, decoded.encoding


def decode(data: bytes, declared: str | None = None) -> Decoded:
    """Decode text: BOM, UTF-16 by its NULs, a 7-bit declared charset or ISO-2022-JP escapes,
    UTF-8 (with replacement where only a few bytes are bad), the declared charset, then the
    single-byte legacy encoding whose letters make sense; raises NotText for binary data."""
    warnings: list[str] = []
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    encoding = encoding or _sniff_utf16(data)
    if encoding:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            raise NotText(f"not valid {encoding.upper()} text (damaged?)") from None
        return Decoded(_check(text).replace("\r\n", "\n").replace("\r", "\n"), encoding)
    if b"\x00" in data:
        nuls = data.count(0)
        data = data.replace(b"\x00", b"")
        warnings.append(f"{nuls:,} NUL bytes (padding or damage) were removed")
    declared = canonical_charset(declared)
    text = None
    if declared and declared.startswith(_SEVEN_BIT):
        text, encoding = _try(data, declared)
    if text is None and re.search(rb"\x1b\$[@B]|\x1b\([BJ]", data) and max(data, default=0) < 0x80:
        text, encoding = _try(data, "iso2022_jp")
    if text is None:
        text, encoding = _try(data, "utf-8")
    if text is None and declared:
        text, encoding = _try(data, declared)
    if text is None:
        text, encoding, lenient = _lenient_utf8(data)
        if lenient:
            warnings.append(lenient)
    if text is None:
        text, encoding = _detect_legacy(data)
        if not encoding.startswith("utf") and encoding not in ("cp1252",):
            warnings.append(f"read as {encoding} (detected; no charset was declared)")
    text = _check(text)
    assert encoding is not None  # every decoder that returns text names its encoding
    return Decoded(text.replace("\r\n", "\n").replace("\r", "\n"), encoding, tuple(warnings))


def _try(data: bytes, encoding: str) -> tuple[str | None, str | None]:
    try:
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError):
        return None, None


def _check(text: str) -> str:
    sample = text[:65536]
    if len(_CONTROL_CHARS.findall(sample)) > max(8, len(sample) // 100):
        raise NotText("the file contains binary data, not text")
    return text


def _lenient_utf8(data: bytes) -> tuple[str | None, str | None, str | None]:
    """UTF-8 with a few bad bytes (a cut last character, a stray byte) is still UTF-8."""
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for c in text if ord(c) > 127) - bad
    if good >= 2 * bad or _cut_last_char(data):
        return text, "utf-8", f"{bad:,} invalid UTF-8 byte sequence(s) replaced with \ufffd"
    return None, None, None


def _cut_last_char(data: bytes) -> bool:
    # A file cut inside its last multi-byte character: all but the last 1-3 bytes are UTF-8.
    for k in (1, 2, 3):
        if len(data) > 4 * k and data[-k] >= 0xC0 and _try(data[:-k], "utf-8")[0] is not None:
            return True
    return False


def _legacy_score(text: str, letters: frozenset[str]) -> int:
    score = 0
    for i, c in enumerate(text):
        if c < "\x80":
            continue
        if c.isupper() and i and text[i - 1].islower():
            score -= 2  # "cЛово": a capital inside a word is another code page's small letter
        if c >= "\u0370" and any(x.isascii() and x.isalpha() for x in text[i - 1 : i + 2 : 2]):
            score -= 2  # Greek or Cyrillic glued to a Latin letter: a Latin text misread
        if c in letters:
            score += 1
        elif c.isalpha():
            score -= 1  # a letter of another language or script
        else:  # a symbol glued to a letter is a letter read with the wrong code page
            near = text[i - 1 : i] + text[i + 1 : i + 2]
            if any(x.isalpha() for x in near):
                score -= 2
    return score


def _detect_legacy(data: bytes) -> tuple[str, str]:
    sample = data[:65536]
    scored = []
    for order, encoding in enumerate(_LEGACY):
        text, _ = _try(sample, encoding)
        if text is not None:
            scored.append((_legacy_score(text, _LEGACY_LETTERS[encoding]), -order, encoding))
    high = sum(1 for b in sample if b > 127)
    if scored:
        score, _, encoding = max(scored)
        if score >= high * 0.6:
            text, _ = _try(data, encoding)
            if text is not None:
                return text, encoding
    best = charset_normalizer.from_bytes(data).best()  # multi-byte CJK and the rest
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


def declared_charset(data: bytes) -> str | None:
    """The charset a document names: an HTML <meta> tag or an XML prolog, if any."""
    head = data[:4096]
    found = re.search(rb"""<meta[^>]+charset\s*=\s*["']?([\w:.-]+)""", head, re.IGNORECASE)
    found = found or re.search(rb"""<\?xml[^>]+encoding\s*=\s*["']([\w:.-]+)""", head, re.I)
    return found.group(1).decode("ascii", "replace") if found else None


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
