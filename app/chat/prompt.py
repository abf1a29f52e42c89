"""The one prompt builder: a conversation as the model reads it (pure: no Qt, no engine).

A system prompt first (the conversation's own, else the settings'), then every exchange that
said something: failed and empty answers are skipped. A user message's documents go before its
text, one block each,
    <document name="report.pdf">
    …text, with "[page N]" lines for paginated kinds…
    </document>
the tag summarize_plan's prompts use, so a summary and a question see one format; the question
comes last, nearest to where the answer starts, as long-context prompting advises. A document
too long for the context goes in as a note (never cut silently, DESIGN rule 6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.store.store import Attachment, MessageStatus


class Turn(Protocol):
    """What the builder reads of a message (app.store.store.Message has it all)."""

    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def attachments(self) -> tuple[Attachment, ...]: ...


@dataclass(frozen=True)
class Question:
    """A user message that is not stored (the quick prompt without history)."""

    content: str
    role: str = "user"
    status: str = MessageStatus.COMPLETE
    attachments: tuple[Attachment, ...] = ()


def _tag_name(name: str) -> str:
    return " ".join(name.replace('"', "'").split())


def document_block(name: str, text: str) -> str:
    return f'<document name="{_tag_name(name)}">\n{text}\n</document>'


def omitted_block(attachment: Attachment) -> str:
    # Never cut silently: the model is told the document is there but too long to include.
    tokens = f"{attachment.tokens:,} tokens, " if attachment.tokens is not None else ""
    return (
        f'<document name="{_tag_name(attachment.name)}">\n'
        f"[Not included: {tokens}longer than the context. Its summary, if one was asked for, "
        "is in the answer that follows.]\n</document>"
    )


def prompt_content(
    content: str, attachments: Sequence[Attachment], budget: int | None = None
) -> str:
    """A stored user message as the model reads it: its documents first, then its text.

    A document over `budget` tokens (one that could only have been summarized) is replaced by a
    note; the summary written after it carries the conversation about it.
    """
    blocks = [
        omitted_block(a)
        if budget is not None and a.tokens is not None and a.tokens > budget
        else document_block(a.name, a.text)
        for a in attachments
    ]
    return "\n\n".join([*blocks, content]) if blocks else content


def prompt_budget(num_ctx: int, max_tokens: int, system_tokens: int = 0) -> int:
    """Prompt tokens one message may use: the context less the answer and the system prompt."""
    return num_ctx - max_tokens - system_tokens


def build_prompt(
    system_prompt: str | None, history: Sequence[Turn], budget: int | None = None
) -> list[dict[str, str]]:
    """The model's messages for `history`; the engine adds nothing (no system prompt of its own)."""
    out = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for m in history:
        if m.role not in ("user", "assistant") or m.status == MessageStatus.FAILED:
            continue
        if not m.content.strip():
            continue
        content = (
            prompt_content(m.content, m.attachments, budget) if m.role == "user" else m.content
        )
        out.append({"role": m.role, "content": content})
    return out
