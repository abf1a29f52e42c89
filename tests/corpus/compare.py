"""Compare our extraction with independent references on a small corpus (not a pytest test).

`python -m tests.corpus.compare [FILES...]`: real files found on this machine (Debian docs'
PDFs, templates shipped in Python packages) plus documents made by other producers (pandoc
writes DOCX/ODT/EPUB from Markdown; pdfium and a hand-written CMap font make PDFs). For each,
the words (runs of 2+ letters, any script) we extract are compared with the reference tool's:
recall = reference words we have; extra = our words the reference lacks.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.docs.extract import DocumentError, extract

_WORD = re.compile(r"[^\W\d_]{2,}")
REAL = [
    "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
    "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
]
MARKDOWN = """# Договор аренды

Арендатор обязуется платить ежемесячно.[^1] Le loyer est payé d'avance; Größe zählt.

| Name | Город | Score |
|------|-------|-------|
| Ana  | Lisboa | 9 |

## 第二章 中文

这是中文文本，日本語のテキストもあります。Ελληνικά κείμενα.

[^1]: Не позднее пятого числа.
"""


def words(text: str) -> collections.Counter:
    return collections.Counter(w.lower() for w in _WORD.findall(text))


def reference(path: Path) -> tuple[str, str] | None:
    ext = path.suffix.lower()
    if ext == ".pdf" and shutil.which("pdftotext"):
        out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True)
        return "pdftotext", out.stdout.decode("utf-8", "replace")
    if ext in (".docx", ".odt", ".epub", ".html") and shutil.which("pandoc"):
        out = subprocess.run(
            ["pandoc", "-t", "plain", "--wrap=none", str(path)], capture_output=True
        )
        return "pandoc", out.stdout.decode("utf-8", "replace")
    if ext == ".pptx":
        from pptx import Presentation

        deck = Presentation(str(path))
        texts = [sh.text_frame.text for s in deck.slides for sh in s.shapes if sh.has_text_frame]
        return "python-pptx", "\n".join(texts)
    return None


def generated(folder: Path) -> list[Path]:
    from engine.cli.bench_documents import build_pdf
    from tests.engine.test_documents import MULTILINGUAL, make_pdf

    files = [build_pdf(folder / "pdfium-latin.pdf", pages=5)]
    (folder / "cmap-multiscript.pdf").write_bytes(make_pdf(MULTILINGUAL))
    files.append(folder / "cmap-multiscript.pdf")
    if shutil.which("pandoc"):
        source = folder / "contract.md"
        source.write_text(MARKDOWN, encoding="utf-8")
        for ext in ("docx", "odt", "epub", "html"):
            out = folder / f"pandoc-contract.{ext}"
            subprocess.run(
                ["pandoc", str(source), "-s", "-o", str(out), "--metadata", "title=Contract"],
                check=True,
            )
            files.append(out)
    return files


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(p) for p in (argv or REAL) if Path(p).exists()] + generated(Path(tmp))
        print(f"{'file':<34} {'ref':<11} {'ref words':>9} {'recall':>7} {'extra':>6}  notes")
        for path in files:
            ref = reference(path)
            try:
                doc = extract(path)
            except DocumentError as exc:
                print(f"{path.name[:34]:<34} {'':<11} {'':>9} {'error':>7} {'':>6}  {exc.problem}")
                continue
            if ref is None:
                print(f"{path.name[:34]:<34} {'-':<11} {'':>9} {'':>7} {'':>6}  {doc.kind}")
                continue
            tool, text = ref
            ours, theirs = words(doc.text), words(text)
            recall = sum((ours & theirs).values()) / max(1, sum(theirs.values()))
            extra = sum((ours - theirs).values()) / max(1, sum(ours.values()))
            missing = [w for w, _ in (theirs - ours).most_common(5)]
            notes = "; ".join(doc.warnings)[:60] + (f" missing: {missing}" if recall < 0.99 else "")
            print(
                f"{path.name[:34]:<34} {tool:<11} {sum(theirs.values()):>9} {recall:>7.1%}"
                f" {extra:>6.1%}  {notes}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
