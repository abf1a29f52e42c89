"""Summarizer scaling and the batched map step: `nemo bench summarize [options]`.

1. Model calls and tokens processed for documents of 10K, 100K and 1M tokens at num_ctx 8K and
   32K, with a deterministic stand-in model call that answers every prompt with a fixed-size
   summary, so it runs in seconds and shows the pipeline's own growth (parts + a few combines).
2. The map step batched (engine.docs.batch, mlx-lm's BatchGenerator) against sequential, on the
   same random weights in one run (engine.cli.bench_map): wall-time and decode-only ratios at
   the memory plan's batch size, peak memory against the plan, weight bytes read per token.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine.cli.bench_text import paragraph
from engine.docs.extract import Document, Page
from engine.docs.summarize import CombineStarted, SummaryDone, plan_summary, summarize
from engine.events import TextChunk
from engine.tokenizer import load_tokenizer

SIZES = (10_000, 100_000, 1_000_000)
CONTEXTS = (8192, 32768)
MAX_TOKENS = 1024
PAGE_TOKENS = 550  # about a printed page of a contract


def contract(tokens: int, tokenizer) -> Document:
    """A paginated document of about `tokens` tokens, several paragraphs a page."""
    pages, current, size, total, n = [], [], 0, 0, 0
    while total < tokens:
        para = paragraph(n)
        n += 1
        cost = tokenizer.count_tokens(para) + 1
        current.append(para)
        size += cost
        total += cost
        if size >= PAGE_TOKENS:
            pages.append(Page(len(pages) + 1, "\n\n".join(current)))
            current, size = [], 0
    if current:
        pages.append(Page(len(pages) + 1, "\n\n".join(current)))
    text = "\n\n".join(p.text for p in pages)
    return Document(Path("bench.pdf"), "bench.pdf", "pdf", text, tuple(pages), len(pages))


def fixed_summary(tokenizer, tokens: int):
    """generate_fn answering every call with the same `tokens`-token text (capped at max_tokens)."""
    word = " point"
    assert tokenizer.count_tokens(word * 10) == 10

    def generate(messages, max_tokens, cancel):
        yield TextChunk(word * min(tokens, max_tokens))

    return generate


def run(summary_tokens: int) -> list[dict]:
    tokenizer = load_tokenizer()
    rows = []
    for size in SIZES:
        doc = contract(size, tokenizer)
        for num_ctx in CONTEXTS:
            began = time.perf_counter()
            plan = plan_summary(doc, tokenizer, num_ctx, MAX_TOKENS)
            combines = 0
            for event in summarize(
                doc,
                fixed_summary(tokenizer, summary_tokens),
                tokenizer,
                num_ctx,
                max_tokens=MAX_TOKENS,
            ):
                combines += isinstance(event, CombineStarted)
                if isinstance(event, SummaryDone):
                    done = event
            rows.append(
                dict(
                    doc_tokens=plan.total_tokens,
                    pages=doc.page_count,
                    num_ctx=num_ctx,
                    parts=done.parts,
                    combines=combines,
                    levels=done.stats.reduce_levels,
                    calls=done.model_calls,
                    estimate=plan.model_calls_estimate,
                    processed=done.tokens_processed,
                    seconds=time.perf_counter() - began,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    from engine.cli import bench_map

    parser = argparse.ArgumentParser(prog="nemo bench summarize")
    parser.add_argument("--summary-tokens", type=int, default=300, help="stand-in summary size")
    parser.add_argument("--skip-table", action="store_true", help="only the batched map step")
    bench_map.add_arguments(parser)
    args = parser.parse_args(argv)
    if not args.skip_table:
        table(args)
    if not args.skip_map:
        bench_map.report(bench_map.run(args))


def table(args: argparse.Namespace) -> None:
    rows = run(args.summary_tokens)
    print(
        f"stand-in model: every call answers {args.summary_tokens} tokens; "
        f"answer max_tokens {MAX_TOKENS}; Tekken token counts"
    )
    header = (
        f"{'doc tokens':>10} {'pages':>5} {'num_ctx':>7} {'parts':>5} {'combine':>7} "
        f"{'levels':>6} {'calls':>5} {'est.':>5} {'processed':>10} {'x doc':>5} {'calls/100K':>10} "
        f"{'s':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['doc_tokens']:>10,} {r['pages']:>5} {r['num_ctx']:>7} {r['parts']:>5} "
            f"{r['combines']:>7} {r['levels']:>6} {r['calls']:>5} {r['estimate']:>5} "
            f"{r['processed']:>10,} {r['processed'] / r['doc_tokens']:>5.2f} "
            f"{r['calls'] * 100_000 / r['doc_tokens']:>10.1f} {r['seconds']:>5.1f}"
        )


if __name__ == "__main__":
    main()
