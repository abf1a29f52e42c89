"""Text extraction from files a user drops on the chat window: the face the app and CLI use.

`extract(path)` returns a `Document` or raises `DocumentError` with a message that names the file
and the problem; it never returns a partial result silently (see `Document.warnings`).

The file is read and its kind detected here (ZIP containers are checked against bombs from
their directory alone); the parser then runs in a worker process under a time and memory limit
(engine.docs.sandbox), so no file can exhaust memory or hang the app. One module per family
does the reading: pdf, word, opendoc, epub, slides, sheets, rtf, text.
"""

from __future__ import annotations

import stat
from pathlib import Path

from engine.docs import sandbox
from engine.docs.detect import KIND_BY_EXTENSION, detect_kind
from engine.docs.document import Document, DocumentError, Page
from engine.docs.readers import parse

__all__ = ["Document", "DocumentError", "Page", "SUPPORTED_EXTENSIONS", "extract"]

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
# The file dialog filter; files with no extension are also accepted when their content is text.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(KIND_BY_EXTENSION))


def time_limit(size: int) -> float:
    """Seconds a parser may take: generous, growing with the file (300 text pages take ~1 s)."""
    return 60.0 + 3.0 * size / (1024 * 1024)


def extract(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    isolate: bool = True,
    timeout: float | None = None,
) -> Document:
    """Extract the text of `path`, choosing the reader by content (magic bytes) then extension.

    With `isolate` (the default) the parser runs in the shared worker process under limits;
    `isolate=False` parses in this process (for callers that are themselves a sandbox).
    """
    path = Path(path).expanduser()
    data = _read(path, max_bytes)
    kind = detect_kind(path, data)
    try:
        if isolate:
            worker = sandbox.shared_worker()
            limit = timeout if timeout is not None else time_limit(len(data))
            pages, encoding, warnings = worker.call(
                "engine.docs.readers:parse", (kind, str(path), data), timeout=limit
            )
        else:
            pages, encoding, warnings = parse(kind, str(path), data)
    except DocumentError:
        raise
    except sandbox.Failed as exc:
        if exc.problem is not None:
            raise DocumentError(path, exc.problem) from None
        raise DocumentError(
            path, f"could not be read as {kind.upper()} ({exc.type_name}: {exc.message})"
        ) from None
    except sandbox.SandboxError as exc:
        raise DocumentError(path, f"could not be read as {kind.upper()}: {exc}") from None
    except Exception as exc:  # a library failure on odd input must not reach the user raw
        raise DocumentError(
            path, f"could not be read as {kind.upper()} ({type(exc).__name__}: {exc})"
        ) from exc
    text = "\n\n".join(p.text for p in pages if p.text)
    if not text.strip():
        raise DocumentError(path, "the file contains no text to read")
    return Document(
        path=path,
        name=path.name,
        kind=kind,
        text=text,
        pages=tuple(pages),
        page_count=len(pages),
        encoding=encoding,
        warnings=tuple(warnings),
    )


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DocumentError(path, f"file not found ({path})") from None
    except PermissionError:
        raise DocumentError(path, "permission denied") from None
    except OSError as exc:
        raise DocumentError(path, f"cannot be opened: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        if path.suffix.lower() == ".rtfd" and (path / "TXT.rtf").is_file():
            return _read(path / "TXT.rtf", max_bytes)  # TextEdit's RTF with attachments
        raise DocumentError(path, "this is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise DocumentError(path, "this is not a regular file")
    if st.st_size > max_bytes:
        raise DocumentError(path, _too_big(st.st_size, max_bytes))
    try:
        with path.open("rb") as f:
            # Size the buffer by the file, not the limit (read(n) allocates n bytes first);
            # +1 tells a file that grew since stat.
            data = f.read(min(st.st_size, max_bytes) + 1)
            if len(data) > st.st_size:
                data += f.read(max_bytes + 1 - len(data))
    except PermissionError:
        raise DocumentError(path, "permission denied") from None
    except OSError as exc:
        raise DocumentError(path, f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise DocumentError(path, _too_big(len(data), max_bytes))
    if not data:
        raise DocumentError(path, "the file is empty")
    return data


def _too_big(size: int, limit: int) -> str:
    return f"the file is {_format_size(size)}, over the {_format_size(limit)} limit"


def _format_size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KB", "MB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}".replace(".0 ", " ")
    return f"{value / 1024:.1f} GB".replace(".0 ", " ")
