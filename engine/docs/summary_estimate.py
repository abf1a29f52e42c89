"""A plan before a long run: parts, model calls, seconds, and a larger num_ctx when it helps.

Seconds come from prefill and decode rates that the caller measured on this machine (the app
passes its own; the CLI takes them as options). When num_ctx, not the faithful part cap, limits
the parts, the largest num_ctx that still fits in memory (engine.memory) is tried and offered
if it cuts the parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.docs.summarize_plan import DEFAULT_MAX_TOKENS, DEFAULT_PART_CAP, Plan, plan_summary

ANSWER_FILL = 0.5  # part summaries and answers use about half their max_tokens
LONG_RUN_S = 60.0  # above this, the app shows the plan before starting


@dataclass(frozen=True)
class Rates:
    """Tokens per second on this machine; `measured` False for the rough defaults."""

    prefill_tps: float
    decode_tps: float
    batch_decode_speedup: float = 1.0  # decode speed of a batch over one sequence (Metal ~B)
    measured: bool = False


# Nemo 12B 4-bit on a base Apple-silicon Mac, rough: replace with measured rates.
DEFAULT_RATES = Rates(prefill_tps=250.0, decode_tps=12.0)


@dataclass(frozen=True)
class MemoryFacts:
    """What engine.memory needs to find a larger num_ctx (config: engine.config.ModelConfig)."""

    config: Any
    weights_bytes: int
    kv_bits: int | None = None
    available: int | None = None  # None: this machine
    dtype_bytes: int = 2


def estimate_seconds(plan: Plan, rates: Rates, batch_size: int = 1) -> float:
    out_part = plan.part_max_tokens * ANSWER_FILL
    out_final = plan.max_tokens * ANSWER_FILL
    if plan.single_pass:
        return plan.parts[0].tokens / rates.prefill_tps + out_final / rates.decode_tps
    parts = len(plan.parts)
    combines = max(plan.model_calls_estimate - parts, 1)
    speedup = rates.batch_decode_speedup if batch_size > 1 else 1.0
    map_s = sum(p.tokens for p in plan.parts) / rates.prefill_tps
    map_s += parts * out_part / (rates.decode_tps * speedup)
    reduce_in = parts * out_part * (1 + (combines > 1))  # summaries read once, or twice
    reduce_s = reduce_in / rates.prefill_tps
    reduce_s += ((combines - 1) * out_part + out_final) / rates.decode_tps
    return map_s + reduce_s


@dataclass(frozen=True)
class PlanPart:
    index: int
    source: str | None
    first_page: int | None
    last_page: int | None
    pages: str
    tokens: int


@dataclass(frozen=True)
class Suggestion:
    num_ctx: int
    parts: int
    model_calls: int
    estimated_seconds: float


@dataclass(frozen=True)
class PlanReport:
    documents: tuple[dict, ...]  # name, pages, tokens
    total_tokens: int
    num_ctx: int
    part_cap: int  # the setting
    part_budget: int  # prompt tokens a part may use: min(part cap, what num_ctx allows)
    single_pass: bool
    parts: tuple[PlanPart, ...]
    model_calls: int
    batch_size: int
    estimated_seconds: float
    long_run: bool
    rates: Rates
    suggestion: Suggestion | None

    def as_dict(self) -> dict:
        return asdict(self)


def _batch(memory: MemoryFacts | None, ctx_tokens: int) -> int:
    if memory is None or memory.kv_bits is not None:
        return 1
    from engine.memory import batch_size_that_fits

    n = batch_size_that_fits(
        memory.config, memory.weights_bytes, ctx_tokens, None,
        available=memory.available, dtype_bytes=memory.dtype_bytes,
    )  # fmt: skip
    return max(1, n)


def _larger_num_ctx(plan: Plan, memory: MemoryFacts) -> int:
    """The num_ctx that lets a part use the whole cap, or the largest that fits memory."""
    from engine.memory import largest_num_ctx

    want = plan.part_cap + max(plan.max_tokens, plan.part_max_tokens) + 256
    want = -(-want // 1024) * 1024
    largest = largest_num_ctx(
        memory.config, memory.weights_bytes, memory.kv_bits,
        memory.available if memory.available is not None else _available(),
        dtype_bytes=memory.dtype_bytes,
    )  # fmt: skip
    return min(want, largest)


def _available() -> int:
    from engine.memory import available_memory

    return available_memory()


def plan_report(
    docs: Any,
    tokenizer: Any,
    num_ctx: int,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    part_cap: int = DEFAULT_PART_CAP,
    instruction: str | None = None,
    question: str | None = None,
    rates: Rates = DEFAULT_RATES,
    memory: MemoryFacts | None = None,
) -> PlanReport:
    """The plan of a run without running the model (SummaryBudgetError when it cannot fit)."""
    prompts = None
    if question:
        from engine.docs.ask import AskPrompts

        prompts = AskPrompts(question)

    def make(ctx: int) -> Plan:
        return plan_summary(
            docs, tokenizer, ctx, max_tokens, instruction, part_cap=part_cap, prompts=prompts
        )

    plan = make(num_ctx)
    batch = _batch(memory, plan.part_budget + plan.part_max_tokens)
    seconds = estimate_seconds(plan, rates, batch)
    suggestion = None
    if memory is not None and not plan.single_pass and plan.part_budget < part_cap:
        ctx = _larger_num_ctx(plan, memory)
        if ctx > num_ctx:
            bigger = make(ctx)
            if len(bigger.parts) < len(plan.parts):
                b = _batch(memory, bigger.part_budget + bigger.part_max_tokens)
                suggestion = Suggestion(
                    ctx, len(bigger.parts), bigger.model_calls_estimate,
                    round(estimate_seconds(bigger, rates, b), 1),
                )  # fmt: skip
    documents = tuple(
        dict(name=s.name, pages=s.page_count, tokens=tokenizer.count_tokens(s.cited()))
        for s in plan.sources
    )
    parts = tuple(
        PlanPart(p.index, p.source, p.first_page, p.last_page, p.pages, p.tokens)
        for p in plan.parts
    )
    return PlanReport(
        documents, plan.total_tokens, num_ctx, part_cap, plan.part_budget, plan.single_pass,
        parts, plan.model_calls_estimate, batch, round(seconds, 1), seconds > LONG_RUN_S,
        rates, suggestion,
    )  # fmt: skip


def stored_parts(rows: Sequence[Mapping[str, Any]]) -> tuple:
    """FinishedParts from stored rows (dicts with digest, text, index, first_page, last_page,
    source), e.g. read back from the history database after a restart."""
    from engine.docs.summarize_events import FinishedPart

    keys = ("digest", "text", "index", "first_page", "last_page", "source")
    return tuple(FinishedPart(**{k: r[k] for k in keys if k in r}) for r in rows)
