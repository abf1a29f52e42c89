"""Letter-spaced PDF lines (OCR text layers, tracked headings) rejoined the way pdftotext does.

pdfium generates a space wherever two glyphs are more than ~1/8 em apart, so a line whose glyphs
are each placed on their own with small gaps reads "T h e  q u i c k" (and on a page of few such
lines it may even take the text for vertical and put every glyph on a line of its own). poppler's
pdftotext (TextOutputDev) breaks words at gaps over 0.1 em; on a line where every such word is a
single glyph, it puts a space only where the gap is at least 1.3 x the line's smallest gap
(0.4 em at most), which rejoins evenly spaced letters and keeps the wider word gaps. We apply
that rule to such lines, and only to spaces and breaks pdfium generated: the file's are kept.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass, replace
from itertools import pairwise

# poppler's TextOutputDev parameters, as fractions of the font size (em).
_WORD_BREAK = 0.1  # minWordBreakSpace: a wider gap starts a new word
_OVERLAP_BREAK = -0.2  # minDupBreakOverlap: glyphs overlapping more are not one line's flow
_WIDE_MUL = 1.3  # maxWideCharSpacingMul: the space threshold over the smallest gap
_WIDE_MAX = 0.4  # maxWideCharSpacing: the threshold's upper bound
_NARROW = 0.03  # maxCharSpacing: the threshold where glyphs touch
_MAX_WORD_GAP = 1.5  # maxWordSpacing: glyphs further apart are not on one line
_BASELINE_SLACK = 0.5  # points; poppler starts a new word past this baseline shift
_MIN_SINGLES = 3  # one-glyph words (or lines) a line (or run) must show to be looked at


@dataclass(frozen=True)
class _Glyph:
    text: str
    left: float
    right: float  # left + advance width
    base: float
    em: float


def looks_letter_spaced(text: str) -> bool:
    """Cheap test on pdfium's page text: a line mostly made of one-character words, or a run
    of one-character lines."""
    lines = text.splitlines()
    return any(map(_spaced_line, lines)) or bool(_glyph_line_runs(lines))


def respaced_text(textpage, skip: set[int]) -> str:
    """The page's text (a pypdfium2 PdfTextPage) with letter-spaced lines rejoined and the
    chars in `skip` left out; every other line reads as pdfium's own text."""
    import pypdfium2.raw as pdfium_c

    lines: list[list[int]] = [[]]  # char indexes of each line pdfium made
    breaks: list[list] = []  # after each line: [the break's text, whether pdfium made it]
    for k in range(textpage.count_chars()):
        if k in skip:
            continue
        code = pdfium_c.FPDFText_GetUnicode(textpage, k)
        if code == 0x0A and breaks and not lines[-1] and breaks[-1][0] == "\r":
            breaks[-1][0] = "\r\n"  # one break, not an empty line
        elif code in (0x0A, 0x0D):
            breaks.append([chr(code), bool(pdfium_c.FPDFText_IsGenerated(textpage, k))])
            lines.append([])
        else:
            lines[-1].append(k)
    texts = [_utf16_pairs("".join(_char(textpage, k) for k in line)) for line in lines]
    out: list[str] = [
        (_respaced(textpage, line) or text) if _spaced_line(text) else text
        for line, text in zip(lines, texts, strict=True)
    ]
    for run in _glyph_line_runs(texts):
        for seq in _continued(textpage, run, lines, breaks):
            joined = _respaced(textpage, [k for n in seq for k in lines[n]], every_word=True)
            if joined:
                out[seq[0]] = joined
                for n in seq[1:]:
                    out[n] = ""
                    breaks[n - 1][0] = ""
    return out[0] + "".join(brk + line for (brk, _), line in zip(breaks, out[1:], strict=True))


def _spaced_line(line: str) -> bool:
    words = line.split()
    singles = sum(1 for w in words if len(w) == 1)
    return singles >= _MIN_SINGLES and 2 * singles >= len(words)


def _glyph_line_runs(lines: list[str]) -> list[list[int]]:
    """Runs of at least _MIN_SINGLES consecutive lines of one character each (their indexes)."""
    runs: list[list[int]] = [[]]
    for n, line in enumerate(lines):
        if len(line.strip()) == 1:
            runs[-1].append(n)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if len(run) >= _MIN_SINGLES]


def _continued(textpage, run: list[int], lines, breaks) -> list[list[int]]:
    """A run of one-glyph lines cut where pdfium's break is real: a break in the file, or a
    glyph that does not follow the one before on its baseline."""

    seqs: list[list[int]] = []
    last = None
    for n in run:
        k = next(k for k in lines[n] if not _char(textpage, k).isspace())
        glyph = _glyph(textpage, k, "")
        follows = (
            glyph is not None
            and last is not None
            and seqs[-1][-1] == n - 1
            and breaks[n - 1][1]
            and abs(glyph.base - last.base) <= _BASELINE_SLACK
            and _OVERLAP_BREAK * last.em <= glyph.left - last.right <= _MAX_WORD_GAP * last.em
        )
        if follows:
            seqs[-1].append(n)
        else:
            seqs.append([n])
        last = glyph
    return [seq for seq in seqs if len(seq) >= _MIN_SINGLES]


def _char(textpage, k: int) -> str:
    import pypdfium2.raw as pdfium_c

    return chr(pdfium_c.FPDFText_GetUnicode(textpage, k))


def _utf16_pairs(text: str) -> str:
    # pdfium reports characters beyond the BMP as two UTF-16 surrogates; join them.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _respaced(textpage, indices: list[int], every_word: bool = False) -> str | None:
    """These chars as one line spaced as pdftotext spaces it, or None where they are no
    letter-spaced line. With `every_word`, a line of words is spaced too (pdfium broke it)."""
    import pypdfium2.raw as pdfium_c

    glyphs: list[_Glyph] = []
    explicit: list[bool] = []  # for each gap: whether the file itself put a space there
    pending_space = False
    for k in indices:
        ch = _char(textpage, k)
        if ch.isspace():
            pending_space |= not pdfium_c.FPDFText_IsGenerated(textpage, k)
            continue
        if 0xDC00 <= ord(ch) <= 0xDFFF and glyphs:  # the low half of a surrogate pair
            glyphs[-1] = replace(glyphs[-1], text=_utf16_pairs(glyphs[-1].text + ch))
            continue
        glyph = _glyph(textpage, k, ch)
        if glyph is None:
            return None  # rotated or sheared text: left as pdfium reads it
        if glyphs:
            explicit.append(pending_space)
        glyphs.append(glyph)
        pending_space = False
    spaces = _spaces(glyphs, explicit, every_word)
    if spaces is None:
        return None
    pieces = [glyphs[0].text]
    for space, glyph in zip(spaces, glyphs[1:], strict=True):
        pieces.append((" " if space else "") + glyph.text)
    return "".join(pieces)


def _glyph(textpage, k: int, ch: str) -> _Glyph | None:
    import pypdfium2.raw as pdfium_c

    matrix = pdfium_c.FS_MATRIX()
    box = pdfium_c.FS_RECTF()
    x, y = ctypes.c_double(), ctypes.c_double()
    if not (
        pdfium_c.FPDFText_GetMatrix(textpage, k, matrix)
        and pdfium_c.FPDFText_GetLooseCharBox(textpage, k, box)
        and pdfium_c.FPDFText_GetCharOrigin(textpage, k, x, y)
    ):
        return None
    if matrix.a <= 0 or abs(matrix.b) > 1e-3 * matrix.a or abs(matrix.c) > 1e-3 * matrix.a:
        return None
    # The font size as drawn: OCR layers often use 1 pt fonts scaled by the text matrix.
    em = pdfium_c.FPDFText_GetFontSize(textpage, k) * math.hypot(matrix.c, matrix.d)
    if em <= 0:
        return None
    return _Glyph(ch, x.value, max(box.right, x.value), y.value, em)


def _spaces(glyphs: list[_Glyph], explicit: list[bool], every_word: bool) -> list[bool] | None:
    """Where spaces go between the glyphs (poppler's TextLine::coalesce), or None where the
    line is not one letter-spaced flow."""
    if len(glyphs) < 2:
        return None
    gaps = [b.left - a.right for a, b in pairwise(glyphs)]
    for (a, b), gap in zip(pairwise(glyphs), gaps, strict=True):
        if gap < _OVERLAP_BREAK * a.em or abs(b.base - a.base) > _BASELINE_SLACK:
            return None  # out of order or off the baseline: not one flow poppler would join
    em = glyphs[0].em
    if any(
        not space and gap <= _WORD_BREAK * em for space, gap in zip(explicit, gaps, strict=True)
    ):
        # Some glyphs form words: poppler then spaces every break, as pdfium's own text does.
        if not every_word:
            return None
        return [space or gap > _WORD_BREAK * em for space, gap in zip(explicit, gaps, strict=True)]
    smallest = min(gaps)  # only a space in the file can sit at a gap this small
    threshold = min(_WIDE_MUL * smallest, _WIDE_MAX * em) if smallest > 0 else _NARROW * em
    return [space or gap >= threshold for space, gap in zip(explicit, gaps, strict=True)]
