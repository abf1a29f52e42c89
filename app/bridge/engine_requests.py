"""From the app's settings and stored data to the engine's frozen requests (pure, any thread).

The request types themselves (ChatRequest, GenerationOptions, ModelInfo) live in engine.backend;
what is here is app-specific: which settings fields a request uses, a summary's length, and a
stored attachment turned back into the Document that was summarized the first time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.backend import GenerationOptions
from engine.docs.detect import KIND_BY_EXTENSION
from engine.docs.document import UNITS, Document, Page
from engine.memory import NEMO_4BIT_WEIGHTS_BYTES
from engine.sampling import SamplingSettings

if TYPE_CHECKING:  # imported on first use: the summary planner loads the tokenizer and readers
    from engine.docs.summary_estimate import Rates
    from engine.docs.summary_jobs import AskRequest, SummaryRequest


class ChatSettingsLike(Protocol):
    """The fields of app.settings.ChatSettings that a request uses."""

    @property
    def num_ctx(self) -> int: ...
    @property
    def kv_bits(self) -> int | None: ...
    @property
    def temperature(self) -> float: ...
    @property
    def top_p(self) -> float: ...
    @property
    def max_tokens(self) -> int: ...


def generation_options(
    settings: ChatSettingsLike, max_tokens: int | None = None
) -> GenerationOptions:
    sampling = SamplingSettings(
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_tokens=settings.max_tokens if max_tokens is None else max_tokens,
    )
    return GenerationOptions(sampling, settings.num_ctx, settings.kv_bits)


def summary_max_tokens(settings: ChatSettingsLike) -> int:
    # The summary's length, capped at a quarter of num_ctx so that the parts keep room to split.
    return min(settings.max_tokens, max(64, settings.num_ctx // 4))


_MARKER = re.compile(r"^\[(page|chapter|slide|sheet) (\d+)(?:: (.*))?\]$")


def stored_document(name: str, text: str, path: str | None = None) -> Document:
    """The Document a stored attachment came from: its name, and for paginated kinds its pages
    split back at the "[page N]" lines that Document.cited_text() wrote (so a summary asked again
    plans the same parts and cites the same pages as the first one)."""
    kind = KIND_BY_EXTENSION.get(Path(name).suffix.lower(), "text")
    pages: list[Page] = []
    if kind in UNITS:
        number, title, lines = None, "", []
        for line in text.split("\n"):
            match = _MARKER.match(line)
            if match and match.group(1) == UNITS[kind]:
                if number is not None:
                    pages.append(Page(number, "\n".join(lines).strip("\n"), title))
                number, title, lines = int(match.group(2)), match.group(3) or "", []
            else:
                lines.append(line)
        if number is not None:
            pages.append(Page(number, "\n".join(lines).strip("\n"), title))
    if not pages:
        kind = kind if kind not in UNITS else "text"
        pages = [Page(1, text)]
    plain = "\n\n".join(p.text for p in pages if p.text)
    return Document(Path(path or name), name, kind, plain, tuple(pages), len(pages))


# --- long documents: summaries and questions over every part (engine.docs.summary_jobs)

DEFAULT_PART_CAP = 16384  # app.settings.ChatSettings.summary_part_cap


def part_cap_of(settings: ChatSettingsLike) -> int:
    return int(getattr(settings, "summary_part_cap", DEFAULT_PART_CAP))


def _documents(documents: Document | str | Sequence[Document | str]) -> tuple:
    if isinstance(documents, (Document, str)):
        return (documents,)
    return tuple(documents)


def summary_request(
    documents: Document | str | Sequence[Document | str],
    settings: ChatSettingsLike,
    instruction: str | None = None,
    finished_rows: Sequence[Mapping[str, Any]] = (),
) -> SummaryRequest:
    """A summary of one or more documents, batched, parts capped at the "Longest part" setting;
    `finished_rows` are stored parts (app.store.summary_parts) that are not read again."""
    from engine.docs.summary_estimate import stored_parts
    from engine.docs.summary_jobs import SummaryRequest

    return SummaryRequest(
        _documents(documents), instruction, generation_options(settings),
        summary_max_tokens(settings), part_cap_of(settings), stored_parts(finished_rows),
    )  # fmt: skip


def ask_request(
    documents: Document | str | Sequence[Document | str],
    question: str,
    settings: ChatSettingsLike,
    finished_rows: Sequence[Mapping[str, Any]] = (),
) -> AskRequest:
    """A question put to every part of the documents; the answer cites pages."""
    from engine.docs.summary_estimate import stored_parts
    from engine.docs.summary_jobs import AskRequest

    return AskRequest(
        _documents(documents), question, generation_options(settings),
        summary_max_tokens(settings), part_cap_of(settings), stored_parts(finished_rows),
    )  # fmt: skip


def rates_for(prefill_tps: float, decode_tps: float, weights_bytes: int | None) -> Rates:
    """This machine's measured rates; until an answer measured them, the Nemo-on-a-Mac
    defaults scaled to the loaded model's weights (decode reads all of them per token)."""
    from engine.docs.summary_estimate import DEFAULT_RATES, Rates

    if prefill_tps > 0 and decode_tps > 0:
        return Rates(prefill_tps, decode_tps, measured=True)
    scale = NEMO_4BIT_WEIGHTS_BYTES / weights_bytes if weights_bytes else 1.0
    return Rates(DEFAULT_RATES.prefill_tps * scale, DEFAULT_RATES.decode_tps * scale)
