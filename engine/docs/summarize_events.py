"""What a long-document run reports: plain frozen data, safe to send across threads.

SummaryPlan first (with every part, so a per-part strip can be drawn at once), PartStarted /
PartDone per part (PartDone carries what the app stores to resume), CombineStarted per combine,
the answer as TextChunks with its PrefillProgress, and one SummaryDone last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.events import GenerationStats, PrefillProgress, TextChunk

if TYPE_CHECKING:  # coverage imports the planner and every reader: the app's window needs neither
    from engine.docs.coverage import Coverage


@dataclass(frozen=True)
class PartInfo:
    index: int  # 1-based
    source: str | None  # the file name
    first_page: int | None
    last_page: int | None
    tokens: int  # prompt tokens of its call
    digest: str  # names the part's content; a stored summary resumes only the same part
    resumed: bool  # read by an earlier run: not read again


@dataclass(frozen=True)
class SummaryPlan:
    parts: int  # 1 for a single pass
    total_tokens: int  # tokens of the documents' text (with page markers)
    model_calls_estimate: int  # at most: parts + combines if every summary were full length
    single_pass: bool
    part_cap: int = 0  # prompt tokens a part may use (the faithful cap, or less for num_ctx)
    batch_size: int = 1  # parts read at once
    part_list: tuple[PartInfo, ...] = ()


@dataclass(frozen=True)
class PartStarted:
    index: int  # 1-based
    count: int
    pages: str  # "12–18", "12", or "" when the document has no pages
    tokens: int  # prompt tokens of this call
    source: str | None = None


@dataclass(frozen=True)
class FinishedPart:
    """A part summary from an earlier run, as stored: given back, that part is not read again."""

    digest: str
    text: str
    index: int = 0
    first_page: int | None = None
    last_page: int | None = None
    source: str | None = None


@dataclass(frozen=True)
class PartDone:
    index: int
    count: int
    summary: str
    seconds: float
    eta_s: float  # time left, from the speed measured so far
    first_page: int | None = None
    last_page: int | None = None
    source: str | None = None  # the file name
    digest: str = ""
    generated_tokens: int = 0
    resumed: bool = False  # from `finished`, not read in this run
    relevant: bool = True  # for a question: whether the part had anything on it

    def stored(self) -> FinishedPart:
        """What to keep to resume later (plain data; see FinishedPart)."""
        return FinishedPart(
            self.digest, self.summary, self.index, self.first_page, self.last_page, self.source
        )


@dataclass(frozen=True)
class CombineStarted:
    """A reduce call: part summaries being merged; final=True is the answer the user sees."""

    level: int  # 1 for the first round of combining
    index: int  # 1-based, within this level
    count: int
    final: bool
    eta_s: float


@dataclass(frozen=True)
class SummaryStats:
    seconds: float
    map_calls: int
    reduce_calls: int
    reduce_levels: int  # rounds of combining, the final one included
    prompt_tokens: int  # all tokens fed to the model, every call
    generated_tokens: int
    length_limited_calls: int  # calls that stopped at their max_tokens
    final: GenerationStats | None  # the call that wrote the answer, when the model reported it
    resumed_parts: int = 0  # parts taken from an earlier run
    batch_size: int = 1
    peak_memory_bytes: int = 0  # highest reported by any call


@dataclass(frozen=True)
class SummaryDone:
    text: str  # the answer and its coverage line; stopped: what was done and what was not read
    parts: int
    model_calls: int
    tokens_processed: int
    stats: SummaryStats
    cancelled: bool = False
    coverage: Coverage | None = None

    @property
    def finish_reason(self) -> str:
        return "cancelled" if self.cancelled else "stop"

    def generation_stats(self) -> GenerationStats:
        """The whole run as one GenerationStats (for a stats line): what was really generated,
        also when stopped."""
        s = self.stats
        decode = s.final.decode_tps if s.final is not None else 0.0
        return GenerationStats(
            prompt_tokens=s.prompt_tokens,
            reused_tokens=0,
            prefilled_tokens=s.prompt_tokens,
            generated_tokens=s.generated_tokens,
            ttft_s=s.seconds,
            prefill_tps=0.0,
            decode_tps=decode,
            peak_memory_bytes=s.peak_memory_bytes,
            finish_reason="cancelled" if self.cancelled else "stop",
        )


SummaryEvent = (
    SummaryPlan
    | PartStarted
    | PartDone
    | CombineStarted
    | PrefillProgress
    | TextChunk
    | SummaryDone
)
