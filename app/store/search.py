"""Full-text search over the history: query parsing, the FTS5 queries, marked snippets.

Trigram FTS5 answers terms of 3+ characters; shorter terms fall back to a case-insensitive
scan through the nemo_contains() SQL function (register_functions installs it).
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Search snippets mark matches with these control characters; the view escapes and replaces them.
MARK_START, MARK_END = "\x02", "\x03"


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    title: str
    message_id: int | None  # None: the conversation title matched
    snippet: str  # matches wrapped in MARK_START/MARK_END

    def snippet_html(self) -> str:
        """The snippet as escaped HTML with matches in <b>, for Qt rich text."""
        escaped = html.escape(self.snippet)
        return escaped.replace(MARK_START, "<b>").replace(MARK_END, "</b>")


def parse_query(query: str) -> list[str]:
    """User text → search terms: "quoted phrases" stay whole, the rest splits on whitespace."""
    terms = []
    for phrase, word in re.findall(r'"([^"]*)"|(\S+)', query):
        term = (phrase if phrase else word.replace('"', "")).strip()
        if term:
            terms.append(term)
    return terms


def register_functions(db: sqlite3.Connection) -> None:
    """Installs the SQL functions search() needs on this connection."""
    db.create_function("nemo_contains", 2, _contains, deterministic=True)


def search(db: sqlite3.Connection, query: str, limit: int = 100) -> list[SearchHit]:
    """Conversations whose title, and messages whose text, contain every term of `query`.

    Arbitrary user text is safe: every term is quoted. Matching is by substring, ignoring
    case (accents count: "cafe" does not find "café"). Title hits come first, then messages
    by relevance.
    """
    terms = parse_query(query)
    if not terms:
        return []
    hits = _search(db, "conversations", terms, limit)
    return hits + _search(db, "messages", terms, limit - len(hits))


def _search(db: sqlite3.Connection, table: str, terms: list[str], limit: int) -> list[SearchHit]:
    long_terms = [t for t in terms if len(t) >= 3]
    short_terms = [t for t in terms if len(t) < 3]
    is_messages = table == "messages"
    alias, column = ("m", "content") if is_messages else ("c", "title")
    select = "m.conversation_id, c.title, m.id" if is_messages else "c.id, c.title, NULL"
    params: list[Any] = []
    where = []
    if long_terms:
        snippet = f"snippet({table}_fts, 0, ?, ?, '…', 64)"
        params += [MARK_START, MARK_END]
        source = f"{table}_fts JOIN {table} {alias} ON {alias}.id = {table}_fts.rowid"
        where.append(f"{table}_fts MATCH ?")
        params.append(" ".join(_fts_term(t) for t in long_terms))
        order = "rank"
    else:  # nothing a trigram index can answer: scan (history is small)
        snippet, source, order = "NULL", f"{table} {alias}", f"{alias}.id DESC"
    if is_messages:
        source += " JOIN conversations c ON c.id = m.conversation_id"
        where.append("m.status != 'streaming'")
    where.append("c.deleted_at IS NULL")  # "Recently deleted" chats are not searched
    for term in short_terms:
        where.append(f"nemo_contains({alias}.{column}, ?)")
        params.append(term)
    sql = (
        f"SELECT {select}, {snippet}, {alias}.{column} FROM {source}"
        f" WHERE {' AND '.join(where) or '1'} ORDER BY {order} LIMIT ?"
    )
    hits = []
    for cid, title, mid, snip, text in db.execute(sql, [*params, max(limit, 0)]):
        if snip is None or short_terms:
            snip = _marked_snippet(text, terms)
        hits.append(SearchHit(cid, title, mid, snip))
    return hits


def _fts_term(term: str) -> str:
    # A quoted FTS5 string is literal: '*', AND, NEAR, '-', ':' lose their meaning.
    return '"' + term.replace('"', '""') + '"'


def _contains(haystack: str | None, needle: str) -> bool:
    return haystack is not None and needle.casefold() in haystack.casefold()


def _marked_snippet(text: str, terms: Sequence[str], width: int = 64) -> str:
    """Snippet for terms too short for the trigram index (FTS5 snippet() needs a MATCH)."""
    found = [m for t in terms if (m := re.search(re.escape(t), text, re.IGNORECASE))]
    first = min((m.start() for m in found), default=0)
    start = max(0, first - width // 4)
    window = text[start : start + width]
    for term in sorted({m.group(0).casefold() for m in found}, key=len, reverse=True):
        pattern = re.compile(re.escape(term), re.IGNORECASE)
        window = pattern.sub(lambda m: MARK_START + m.group(0) + MARK_END, window)
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(text) else ""
    return prefix + " ".join(window.split()) + suffix
