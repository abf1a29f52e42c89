"""Excel (.xlsx) through openpyxl: one page per sheet, rows as "a | b | c" lines.

Formulas give the value Excel last saved (data_only); a sheet of empty cells has no text.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

from engine.docs.document import Page


def read_xlsx(path: Path, data: bytes):
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    pages = []
    try:
        for number, sheet in enumerate(workbook.worksheets, start=1):
            lines = []
            for row in sheet.iter_rows(values_only=True):
                cells = [_cell(v) for v in row]
                while cells and not cells[-1]:
                    cells.pop()
                if any(cells):
                    lines.append(" | ".join(cells))
            pages.append(Page(number, "\n".join(lines), sheet.title))
    finally:
        workbook.close()
    warnings = []
    empty = [p.title for p in pages if not p.text]
    if empty and len(empty) < len(pages):
        warnings.append(f"{len(empty)} sheet(s) are empty: {', '.join(empty[:20])}")
    return pages, None, warnings


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time(0):
        return value.date().isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value).strip().replace("\n", " ")
