"""PowerPoint (.pptx) through python-pptx: one page per slide, in reading order, notes included."""

from __future__ import annotations

import io
from pathlib import Path

from engine.docs.document import Page


def read_pptx(path: Path, data: bytes):
    from pptx import Presentation

    presentation = Presentation(io.BytesIO(data))
    pages = []
    for number, slide in enumerate(presentation.slides, start=1):
        lines = _shapes(slide.shapes)
        title = ""
        if slide.shapes.title is not None and slide.shapes.title.has_text_frame:
            title = slide.shapes.title.text_frame.text.strip().replace("\n", " ")
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                lines.append(f"[notes] {notes}")
        pages.append(Page(number, "\n".join(lines).strip(), title))
    warnings = []
    empty = [p.number for p in pages if not p.text]
    if empty and len(empty) < len(pages):
        listed = ", ".join(map(str, empty[:20])) + (", ..." if len(empty) > 20 else "")
        warnings.append(f"{len(empty)} slide(s) have no text (pictures only?): {listed}")
    return pages, None, warnings


def _shapes(shapes) -> list[str]:
    """Text of shapes top to bottom, left to right; groups and tables included."""

    def position(shape):
        return (shape.top or 0, shape.left or 0)

    lines = []
    for shape in sorted(shapes, key=position):
        if shape.shape_type == 6 or hasattr(shape, "shapes"):  # a group
            lines += _shapes(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            for row in shape.table.rows:
                cells = [c.text.strip().replace("\n", " ") for c in row.cells]
                if any(cells):
                    lines.append(" | ".join(cells))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = shape.text_frame.text.strip()
            if text:
                lines.append(text)
    return lines
