"""A stored conversation as a Markdown document (File › Export)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # app.store.store imports this module; the types are only for annotations
    from app.store.store import Conversation, Message


# Characters no file name may hold on Windows, or that macOS Finder shows differently (":").
_TO_DASH = re.compile(r"[:/\\|]+")
_DROP = re.compile(r'[?*"<>]+')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
MAX_STEM = 100  # characters: well under every file system's 255-byte limit, even in UTF-8


def export_file_name(title: str, suffix: str = ".md") -> str:
    """A file name for the exported chat: the title without ":" "?" "/" and friends."""
    stem = _CONTROL.sub(" ", unicodedata.normalize("NFC", title))
    stem = _DROP.sub("", _TO_DASH.sub("-", stem))
    stem = " ".join(stem.split())  # tabs, double spaces
    stem = stem[:MAX_STEM].strip(" .-")  # Windows drops trailing dots; a leading dot hides it
    return (stem or "Chat") + suffix


def export_markdown(conv: Conversation, messages: Sequence[Message], app_name: str) -> str:
    """The conversation as Markdown: title, system prompt, messages under role headings."""
    created = conv.created_at.strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# {conv.title}", "", f"*Exported from {app_name} · started {created}*", ""]
    if conv.model:
        out += [f"*Model: {conv.model}*", ""]
    if conv.system_prompt:
        out += ["## System prompt", "", conv.system_prompt, ""]
    for msg in messages:
        out += [f"## {msg.role.capitalize()}", ""]
        if msg.content:
            out += [msg.content, ""]
        if msg.attachments:
            out.append("Attachments:")
            for a in msg.attachments:
                details = [f"{a.pages} pages" if a.pages is not None else "",
                           f"{a.tokens} tokens" if a.tokens is not None else ""]  # fmt: skip
                extra = ", ".join(d for d in details if d)
                out.append(f"- {a.name}" + (f" ({extra})" if extra else ""))
            out.append("")
        if msg.status in ("stopped", "streaming"):
            out += ["> *Stopped: this answer is incomplete.*", ""]
        elif msg.status == "failed":
            out += [f"> *Failed: {msg.error or 'unknown error'}*", ""]
    return "\n".join(out).rstrip("\n") + "\n"
