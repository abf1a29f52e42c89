"""PDF text: pdfium first, pypdf as a second opinion where pdfium's text looks incomplete.

Data after %%EOF is normal (incremental saves, padding); the library decides whether the file
opens. Glyphs without a Unicode mapping are left out (and counted in a warning), never invented;
filled-in form fields are read from the AcroForm (pypdf) and added to their page. Lines of
letter-spaced glyphs (OCR text layers) are rejoined as pdftotext joins them (pdf_spacing).
"""

from __future__ import annotations

import io
import logging
import re
import threading
from pathlib import Path

from engine.docs.document import DocumentError, Page
from engine.docs.pdf_spacing import looks_letter_spaced, respaced_text

_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"}
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_PRIVATE_USE = re.compile("[\ue000-\uf8ff\ufffd]")
_PDFIUM_LOCK = threading.Lock()  # pdfium is not thread-safe
# Second opinion: pages sampled per document, and how much more the other must find to win.
_SAMPLE_PAGES = 8
_BETTER_BY = 1.3
_BETTER_MIN_CHARS = 40
logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings on odd files are not errors


def read_pdf(path: Path, data: bytes):
    raw_pages, unmapped = _pdfium_pages(path, data)
    pages = [_clean(t) for t in raw_pages]
    warnings: list[str] = []
    if unmapped:
        listed = _list(sorted(unmapped))
        warnings.append(
            f"{sum(unmapped.values())} character(s) without a Unicode mapping were left out "
            f"(page {listed})"
        )
    _second_opinion(path, data, pages, warnings)
    _form_fields(data, pages, warnings)
    result = [Page(i + 1, t) for i, t in enumerate(pages)]
    empty = [p.number for p in result if not p.text.strip()]
    if len(empty) == len(result):
        if unmapped:
            raise DocumentError(
                path,
                f"the PDF's fonts give no Unicode for its {sum(unmapped.values()):,} characters, "
                "so its text cannot be read (only OCR could); nothing was guessed",
            )
        raise DocumentError(
            path, "the PDF has no text layer (scanned or image-only); OCR is not supported"
        )
    if empty:
        warnings.append(f"{len(empty)} page(s) have no text layer and were skipped: {_list(empty)}")
    if b"%%EOF" not in data[-65536:] and b"%%EOF" not in data:
        warnings.append("the file has no end-of-file marker (truncated?); pages may be missing")
    return result, None, warnings


def _list(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:20])) + (", ..." if len(numbers) > 20 else "")


def _pdfium_pages(path: Path, data: bytes) -> tuple[list[str], dict[int, int]]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise DocumentError(path, _open_problem(exc, data)) from None
        try:
            if len(pdf) == 0:
                raise DocumentError(path, "the PDF has no pages")
            texts, unmapped = [], {}
            for i in range(len(pdf)):
                try:
                    page = pdf[i]
                    textpage = page.get_textpage()
                    n = textpage.count_chars()
                    errors = [
                        k for k in range(n) if pdfium_c.FPDFText_HasUnicodeMapError(textpage, k)
                    ]
                    if errors:
                        unmapped[i + 1] = len(errors)
                    text = textpage.get_text_range()
                    if errors or looks_letter_spaced(text):
                        # Rebuilt glyph by glyph: unmapped ones left out, letter-spaced lines
                        # rejoined where pdftotext joins them (scanned pages' text layers).
                        text = respaced_text(textpage, set(errors))
                    texts.append(text)
                    textpage.close()
                    page.close()
                except pdfium.PdfiumError:
                    raise DocumentError(
                        path, f"page {i + 1} cannot be read (the PDF is damaged)"
                    ) from None
        finally:
            pdf.close()
    return texts, unmapped


def _open_problem(exc: Exception, data: bytes) -> str:
    import pypdfium2.raw as pdfium_c

    code = getattr(exc, "err_code", None)
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return "the PDF is password-protected; save an unprotected copy and try again"
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return "the PDF uses an unsupported protection scheme (DRM)"
    if b"%%EOF" not in data:
        return "the PDF is truncated (no end-of-file marker) and cannot be opened"
    return "the PDF is corrupt or truncated (it cannot be opened)"


def _clean(text: str) -> str:
    # pdfium marks a word hyphenated across lines with U+FFFE and joins the lines; we join the word.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "")
    text = text.replace("\xad", "")  # soft hyphens are invisible in the page
    text = _CONTROL_CHARS.sub("", text).translate(_LIGATURES)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _visible(text: str) -> int:
    return sum(1 for c in text if not c.isspace()) - len(_PRIVATE_USE.findall(text))


def _second_opinion(path: Path, data: bytes, pages: list[str], warnings: list[str]) -> None:
    """Where pypdf finds clearly more text than pdfium (CJK fonts, odd encodings), use it."""
    suspicious = [i for i, t in enumerate(pages) if _PRIVATE_USE.search(t) or _visible(t) < 200]
    step = max(1, len(pages) // _SAMPLE_PAGES)
    sample = sorted(set(suspicious) | set(range(0, len(pages), step)))
    reader = _pypdf_reader(data)
    if reader is None:
        return
    replaced, wins = [], 0
    checked: set[int] = set()

    def check(i: int) -> bool:
        checked.add(i)
        other = _pypdf_page_text(reader, i)
        if other is None:
            return False
        mine, theirs = _visible(pages[i]), _visible(other)
        if theirs >= _BETTER_MIN_CHARS and theirs > mine * _BETTER_BY:
            pages[i] = other
            replaced.append(i + 1)
            return True
        return False

    for i in sample:
        wins += check(i)
    if wins and len(sample) < len(pages):  # the sample says pdfium misses text: check every page
        for i in range(len(pages)):
            if i not in checked:
                check(i)
    if replaced:
        warnings.append(
            f"pdfium's text was incomplete on {len(replaced)} page(s); read with pypdf "
            f"instead: {_list(sorted(replaced))}"
        )


def _pypdf_reader(data: bytes):
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return None
        return reader
    except Exception:  # pypdf is only a second opinion; pdfium already opened the file
        return None


def _pypdf_page_text(reader, index: int) -> str | None:
    try:
        return _clean(reader.pages[index].extract_text() or "")
    except Exception:
        return None


def _form_fields(data: bytes, pages: list[str], warnings: list[str]) -> None:
    """Filled-in AcroForm fields: "Name: value" lines appended to the page that shows them."""
    if b"/AcroForm" not in data:
        return
    reader = _pypdf_reader(data)
    if reader is None:
        return
    count = 0
    for i, page in enumerate(reader.pages):
        lines = []
        try:
            annots = page.get("/Annots") or []
            for ref in annots:
                annot = ref.get_object()
                if annot.get("/Subtype") != "/Widget":
                    continue
                line = _field_line(annot)
                if line and line not in lines:
                    lines.append(line)
        except Exception:
            continue
        if lines and i < len(pages):
            count += len(lines)
            pages[i] = (pages[i] + "\n\n" if pages[i] else "") + "\n".join(
                f"[form field] {line}" for line in lines
            )
    if count:
        warnings.append(f"{count} filled-in form field value(s) were added to their pages")


def _field_line(annot) -> str | None:
    field, name, value = annot, None, None
    for _ in range(10):  # a widget inherits name and value from its parent field
        name = name or field.get("/T")
        value = value if value is not None else field.get("/V")
        parent = field.get("/Parent")
        if parent is None:
            break
        field = parent.get_object()
    if value is None:
        return None
    value = str(value)
    if value.startswith("/"):  # a checkbox or radio state
        value = value[1:]
        if value in ("Off", ""):
            return None
    value = value.strip()
    if not value:
        return None
    return f"{name}: {value}" if name else value
