"""Markdown → the HTML subset that Qt's rich text understands.

markdown-it-py (CommonMark + tables) parses; raw HTML in messages is escaped, never rendered.
Code blocks are highlighted by pygments with inline styles and get a "Copy" link whose target
(`nemo-copy:N`) the chat view resolves against `Rendered.code_blocks[N]`.
"""

from __future__ import annotations

import functools
import html
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # markdown-it and pygments load on the first render, after the window shows
    from markdown_it import MarkdownIt

COPY_SCHEME = "nemo-copy"
LIGHT_CODE_STYLE, DARK_CODE_STYLE = "friendly", "monokai"
_BLOCK_TAGS = ("paragraph_open", "heading_open", "bullet_list_open", "ordered_list_open")


@dataclass(frozen=True)
class Rendered:
    html: str
    code_blocks: tuple[str, ...]  # raw text of each fenced/indented block, for Copy


def first_strong_direction(text: str) -> str | None:
    """'rtl' or 'ltr' from the first strongly directional character (HTML's dir="auto")."""
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind == "L":
            return "ltr"
        if kind in ("R", "AL"):
            return "rtl"
    return None


@functools.cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # html=False: raw <img src=http…> or <script> in a message is shown as text.
    md = MarkdownIt("commonmark", {"html": False, "breaks": False}).enable("table")
    md.add_render_rule("fence", _render_code)
    md.add_render_rule("code_block", _render_code)
    md.add_render_rule("table_open", _render_table_open)
    return md


@functools.cache
def _formatter(dark: bool) -> Any:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(
        nowrap=True, noclasses=True, style=DARK_CODE_STYLE if dark else LIGHT_CODE_STYLE
    )


def highlight_code(code: str, language: str, dark: bool = False) -> str:
    """Code as HTML spans with inline colours; unknown languages stay plain (no guessing)."""
    from pygments import highlight
    from pygments.lexers import get_lexer_by_name
    from pygments.lexers.special import TextLexer
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(code, lexer, _formatter(dark)).rstrip("\n")


def render_markdown(text: str, dark: bool = False) -> Rendered:
    """Renders one message; safe for partial (streaming) text such as an unclosed fence."""
    md = _parser()
    tokens = md.parse(text)
    _mark_directions(tokens)
    code_blocks: list[str] = []
    env = {"code_blocks": code_blocks, "dark": dark}
    body = md.renderer.render(tokens, md.options, env)
    return Rendered(body, tuple(code_blocks))


def _fence(line: str) -> str | None:
    """The fence characters (``` or ~~~ or longer) a line opens or closes with, if any."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3 or stripped[:3] not in ("```", "~~~"):
        return None
    char = stripped[0]
    return stripped[: len(stripped) - len(stripped.lstrip(char))]


def last_block_boundary(text: str, start: int = 0, min_chars: int = 1500) -> int:
    """The offset after which the text only grows: the end of its last complete top-level block.

    A boundary is a blank line outside code fences followed by an unindented line, at least
    `min_chars` after `start`; `start` when there is none. Streaming answers freeze the Markdown
    before it and re-render only what follows (`start` must itself be such a boundary).
    """
    best, pos = start, start
    fence: str | None = None
    previous_blank = False
    for line in text[start:].splitlines(keepends=True):
        if fence is None and previous_blank and line.strip() and not line[0].isspace():
            if pos - start >= min_chars:
                best = pos
        marker = _fence(line)
        if fence is None and marker:
            fence = marker
        elif fence and marker and marker[0] == fence[0] and len(marker) >= len(fence):
            if not line.strip()[len(marker) :]:  # a closing fence has no info string
                fence = None
        previous_blank = fence is None and not line.strip()
        pos += len(line)
    return best


def render_plain(text: str) -> Rendered:
    """What the user typed, shown as typed: escaped, line breaks kept, direction per line."""
    lines = []
    for line in text.split("\n"):
        rtl = first_strong_direction(line) == "rtl"
        attrs = ' dir="rtl" align="right"' if rtl else ""
        body = html.escape(line) if line else "&nbsp;"
        lines.append(f'<p{attrs} style="white-space: pre-wrap; margin: 0px">{body}</p>')
    return Rendered("\n".join(lines), ())


def _mark_directions(tokens: list) -> None:
    # Qt picks a paragraph's direction itself, but alignment and list bullets follow `dir`.
    for i, tok in enumerate(tokens):
        if tok.type not in _BLOCK_TAGS:
            continue
        inline = next((t for t in tokens[i + 1 :] if t.type == "inline"), None)
        if inline is not None and first_strong_direction(inline.content) == "rtl":
            tok.attrSet("dir", "rtl")
            if tok.type == "paragraph_open" or tok.type == "heading_open":
                tok.attrSet("align", "right")


def _render_code(self, tokens, idx, options, env) -> str:
    tok = tokens[idx]
    code = tok.content
    language = tok.info.strip().split()[0] if tok.info.strip() else ""
    dark = env.get("dark", False)
    n = len(env["code_blocks"])
    env["code_blocks"].append(code)
    label = html.escape(language) if language else "code"
    body = highlight_code(code, language, dark)
    bg = "#272822" if dark else "#f3f3f6"
    head = "#3a3b35" if dark else "#e7e7ec"
    fg = "#a8a8a0" if dark else "#6e6e78"
    # A table: the one block Qt's rich text will paint a background and padding for.
    return (
        f'<table class="code" width="100%" cellspacing="0" cellpadding="6" bgcolor="{bg}">'
        f'<tr><td bgcolor="{head}"><span style="color:{fg}">{label}</span></td>'
        f'<td bgcolor="{head}" align="right"><a class="copy" href="{COPY_SCHEME}:{n}">Copy</a>'
        f"</td></tr>"
        # pre-wrap: a long line wraps inside the block (Qt's rich text has no overflow scrolling),
        # so the answer never scrolls sideways and the Copy link stays in view.
        f'<tr><td colspan="2"><pre dir="ltr" style="white-space: pre-wrap">{body}</pre>'
        f"</td></tr></table>\n"
    )


def _render_table_open(self, tokens, idx, options, env) -> str:
    return '<table class="md" cellspacing="0" cellpadding="6" border="1">\n'


def document_css(dark: bool, link: str, text: str, faint: str) -> str:
    """Default stylesheet for a message's QTextDocument (colours from the palette)."""
    border = "#4a4a50" if dark else "#d0d0d6"
    inline_bg = "#38383e" if dark else "#ececf0"
    return f"""
        body {{ color: {text}; }}
        a {{ color: {link}; text-decoration: none; }}
        a.copy {{ color: {faint}; }}
        code {{ font-family: "Menlo", "SF Mono", "DejaVu Sans Mono", monospace;
                background-color: {inline_bg}; }}
        pre {{ font-family: "Menlo", "SF Mono", "DejaVu Sans Mono", monospace;
               margin: 0px; }}
        table.md {{ border-color: {border}; border-style: solid; border-collapse: collapse;
                    margin-top: 6px; margin-bottom: 6px; }}
        th {{ font-weight: 600; }}
        h1 {{ font-size: x-large; }} h2 {{ font-size: large; }} h3 {{ font-size: medium; }}
        blockquote {{ color: {faint}; }}
    """
