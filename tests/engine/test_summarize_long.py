"""Long documents: the faithful part cap, batched map step, resume, coverage, several files, plan.

Token counts use the real Tekken tokenizer; model calls are deterministic stand-ins
(tests/engine/summary_helpers.py) or the tiny random model.
"""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import asdict
from pathlib import Path

import pytest

from engine.docs.extract import Document, Page
from engine.docs.summarize import (
    CombineStarted,
    PartDone,
    PartStarted,
    SummaryPlan,
    plan_summary,
    summarize,
)
from engine.docs.summarize_plan import user_message
from engine.docs.summary_estimate import MemoryFacts, Rates, plan_report, stored_parts
from engine.tokenizer import load_tokenizer
from tests.engine.summary_helpers import Batched, Model
from tests.engine.test_summarize import contract, of, paragraph


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def prompt_len(tok, content: str) -> int:
    return len(tok.encode_chat(user_message(content)))


# -- the faithful part cap -----------------------------------------------------------------------


def test_no_part_exceeds_the_cap_at_any_num_ctx(tok):
    rng = random.Random(16)
    docs = {n: contract(n) for n in (2, 12, 45)}
    for _ in range(14):
        pages = rng.choice(list(docs))
        num_ctx = rng.choice((1024, 1536, 2048, 4096, 32768, 131072))
        cap = rng.choice((700, 1024, 2000, 16384))
        max_tokens = rng.choice((96, 128, 256))
        plan = plan_summary(docs[pages], tok, num_ctx, max_tokens, part_cap=cap)
        limit = min(cap, num_ctx - plan.part_max_tokens)
        assert plan.part_budget == limit
        whole = prompt_len(
            tok, plan_summary(docs[pages], tok, 10**6, max_tokens, part_cap=10**6).parts[0].prompt
        )
        assert plan.single_pass == (whole <= min(cap, num_ctx - max_tokens)), (pages, num_ctx, cap)
        for part in plan.parts:
            assert part.tokens == prompt_len(tok, part.prompt)
            assert part.tokens <= (min(cap, num_ctx - max_tokens) if plan.single_pass else limit)
        if not plan.single_pass:  # every call of the run, combines included, obeys the cap
            model = Model(tok, fill=0.9)
            list(summarize(docs[pages], model, tok, num_ctx, max_tokens=max_tokens, part_cap=cap))
            for content in model.calls:
                assert prompt_len(tok, content) <= limit


def test_a_large_num_ctx_still_reads_in_faithful_parts_to_the_last_page(tok):
    doc = contract(40, markers={40: "MARKER-40 the lease ends on 31 December 2031."})
    events = list(summarize(doc, Model(tok), tok, 131072, max_tokens=256, part_cap=1024))
    plan = events[0]
    assert isinstance(plan, SummaryPlan) and not plan.single_pass and plan.parts >= 5
    assert plan.part_cap == 1024 and all(p.tokens <= 1024 for p in plan.part_list)
    done = events[-1]
    assert "MARKER-40 the lease ends on 31 December 2031." in done.text
    assert done.text.endswith(f"Covered: pages 1–40 of 40, {plan.parts} parts.")
    assert done.coverage.complete
    # Each part's citation label points at the pages it really holds.
    parts = plan_summary(doc, tok, 131072, 256, part_cap=1024).parts
    for info, part in zip(plan.part_list, parts, strict=True):
        cited = [int(n) for n in re.findall(r"^\[page (\d+)\]$", part.text, re.M)]
        assert cited == list(range(info.first_page, info.last_page + 1))


# -- batched map step ----------------------------------------------------------------------------


def test_batched_map_gives_the_sequential_result(tok):
    doc = contract(30, markers={3: "MARKER-3 rent is due monthly.", 30: "MARKER-30 it ends."})
    sequential = list(summarize(doc, Model(tok), tok, 1024, max_tokens=128))
    batch = Batched(tok, size=3)
    batched = list(summarize(doc, Model(tok), tok, 1024, max_tokens=128, batch_fn=batch))
    assert batch.sizes == [3] and batched[0].batch_size == 3
    assert batched[-1].text == sequential[-1].text
    done = of(batched, PartDone)
    count = batched[0].parts
    assert sorted(d.index for d in done) == list(range(1, count + 1))
    assert [d.index for d in done] != sorted(d.index for d in done)  # finished out of order
    started = [s.index for s in of(batched, PartStarted)]
    assert sorted(started) == list(range(1, count + 1))
    assert {d.index: d.summary for d in done} == {
        d.index: d.summary for d in of(sequential, PartDone)
    }


def test_cancel_in_a_batch_keeps_the_finished_parts(tok):
    cancel = threading.Event()
    batch = Batched(tok, size=3, on_done=lambda n: cancel.set() if n == 4 else None)
    events = list(
        summarize(
            contract(30), Model(tok), tok, 1024, max_tokens=128, batch_fn=batch, cancel=cancel
        )
    )
    done = events[-1]
    assert done.cancelled and len(of(events, PartDone)) == 4
    assert done.coverage.parts_done == 4 and "not read yet: pages" in done.text
    assert not of(events, CombineStarted)


# -- resume --------------------------------------------------------------------------------------


@pytest.mark.parametrize("batched", [False, True])
def test_resume_after_a_restart_reads_only_the_rest(tok, batched):
    doc = contract(30, markers={1: "MARKER-1 starts in May.", 30: "MARKER-30 ends in June."})
    full = list(summarize(doc, Model(tok), tok, 1024, max_tokens=128))
    count = full[0].parts
    cancel = threading.Event()
    k = 3
    if batched:
        first = Batched(tok, size=2, on_done=lambda n: cancel.set() if n == k else None)
        kw = dict(batch_fn=first)
    else:
        first = Model(tok, on_call=lambda n: cancel.set() if n == k + 1 else None)
        kw = {}
    stopped = list(
        summarize(
            doc,
            first if not batched else Model(tok),
            tok,
            1024,
            max_tokens=128,
            cancel=cancel,
            **kw,
        )
    )
    assert stopped[-1].cancelled
    kept = of(stopped, PartDone)
    assert len(kept) == k
    assert stopped[-1].stats.generated_tokens > 0  # a stopped run reports what it generated
    assert stopped[-1].generation_stats().generated_tokens == stopped[-1].stats.generated_tokens
    # What the app stores: plain rows, as in a database; read back after a restart.
    rows = json.loads(json.dumps([asdict(p.stored()) for p in kept]))
    assert {r["index"] for r in rows} == {p.index for p in kept}
    assert all(r["first_page"] and r["last_page"] and r["source"] == "lease.pdf" for r in rows)
    model = Model(tok)
    batch = Batched(tok, size=2) if batched else None
    resumed = list(
        summarize(
            doc, model, tok, 1024, max_tokens=128, finished=stored_parts(rows), batch_fn=batch
        )
    )
    read = batch.calls if batched else model.calls[: count - k]
    done_indexes = {p.index for p in kept}
    assert len(read) == count - k  # only the unfinished parts were read (prefilled, generated)
    assert all("<part>" in c for c in read)
    assert not any(f"This is part {i} of" in c for c in read for i in done_indexes)
    assert [p.index for p in of(resumed, PartStarted)] == sorted(
        set(range(1, count + 1)) - done_indexes
    )
    assert sum(p.resumed for p in of(resumed, PartDone)) == k
    assert resumed[0].part_list[0].resumed == (1 in done_indexes)
    assert resumed[-1].text == full[-1].text and resumed[-1].stats.resumed_parts == k


def test_stored_parts_of_another_plan_are_not_reused(tok):
    doc = contract(30)
    kept = of(list(summarize(doc, Model(tok), tok, 1024, max_tokens=128)), PartDone)
    model = Model(tok)  # another num_ctx: other parts, so nothing of the old run fits
    events = list(
        summarize(doc, model, tok, 2048, max_tokens=128, finished=[p.stored() for p in kept])
    )
    assert not any(p.resumed for p in of(events, PartDone))


# -- several documents ---------------------------------------------------------------------------


def test_several_documents_cite_each_file_and_pages(tok):
    lease = contract(20, markers={20: "MARKER-1 lease ends in June."})
    pages = [Page(n, "\n\n".join(paragraph(n + 50, k) for k in range(4))) for n in range(1, 13)]
    pages[-1] = Page(12, pages[-1].text + "\n\nMARKER-2 the invoice is due.")
    invoice = Document(Path("invoice.pdf"), "invoice.pdf", "pdf", "", tuple(pages), 12)
    model = Model(tok)
    events = list(summarize([lease, invoice], model, tok, 1024, max_tokens=128))
    plan = events[0]
    sources = [p.source for p in plan.part_list]
    assert set(sources) == {"lease.pdf", "invoice.pdf"}
    assert sources == sorted(sources, key=["lease.pdf", "invoice.pdf"].index)  # no part spans files
    for info, content in zip(plan.part_list, model.calls, strict=False):
        assert f'of the document "{info.source}" (pages {page(info)})' in content
    final = model.calls[-1]
    assert '("lease.pdf", pages 1–' in final and '("invoice.pdf", pages ' in final
    done = events[-1]
    assert (
        "MARKER-1 lease ends in June." in done.text and "MARKER-2 the invoice is due." in done.text
    )
    assert done.text.endswith(
        f'Covered: "lease.pdf": pages 1–20 of 20; "invoice.pdf": pages 1–12 of 12, {plan.parts} parts.'
    )
    # Two short texts fit one pass: both documents in one prompt, each in its own tag.
    model = Model(tok)
    events = list(
        summarize([contract(2), "A note. MARKER-9 call Bob."], model, tok, 8192, max_tokens=128)
    )
    assert events[0].single_pass
    assert '<document "lease.pdf">' in model.calls[0] and '<document "text 2">' in model.calls[0]
    assert events[-1].text.endswith(
        'Covered: "lease.pdf": pages 1–2 of 2; "text 2": all of it, 1 part.'
    )


def page(info):
    return (
        str(info.first_page)
        if info.first_page == info.last_page
        else f"{info.first_page}–{info.last_page}"
    )


# -- the plan before a long run ------------------------------------------------------------------


def nemo_memory(available_gb: float) -> MemoryFacts:
    from engine.memory import NEMO_4BIT_WEIGHTS_BYTES
    from engine.synthetic import preset_config

    return MemoryFacts(
        preset_config("nemo-12b"), NEMO_4BIT_WEIGHTS_BYTES, None, int(available_gb * 2**30)
    )


def test_plan_report_suggests_a_num_ctx_that_cuts_the_parts(tok):
    doc = contract(120)  # ~25K tokens
    rates = Rates(prefill_tps=200.0, decode_tps=10.0, measured=True)
    report = plan_report(doc, tok, 2048, max_tokens=256, rates=rates, memory=nemo_memory(14))
    assert not report.single_pass and len(report.parts) > 10
    assert report.part_budget < report.part_cap == 16384
    assert all(p.tokens <= report.part_budget for p in report.parts)
    assert report.parts[0].first_page == 1 and report.parts[-1].last_page == 120
    assert report.estimated_seconds > 60 and report.long_run
    s = report.suggestion
    assert s is not None and s.num_ctx > 2048 and s.parts < len(report.parts)
    assert s.num_ctx <= 16384 + 1024 + 1024  # just what a whole faithful part needs
    assert s.estimated_seconds < report.estimated_seconds
    # Memory that cannot hold a larger context: nothing to offer.
    tight = plan_report(
        doc, tok, 2048, max_tokens=256, rates=rates, memory=nemo_memory(6.9 * 1e9 / 2**30 * 1.02)
    )
    assert tight.suggestion is None
    json.dumps(report.as_dict())  # plain data all the way down


def test_cli_plan_prints_json_for_several_files_without_a_model(tmp_path, capsys):
    from engine.cli.main import main

    a = tmp_path / "a.txt"
    a.write_text("\n\n".join(paragraph(1, n) for n in range(200)), encoding="utf-8")
    b = tmp_path / "b.md"
    b.write_text("# Notes\n\nShort.", encoding="utf-8")
    rc = main(
        [
            "summarize",
            str(a),
            str(b),
            "--plan",
            "--num-ctx",
            "2048",
            "--part-cap",
            "1024",
            "--max-tokens",
            "256",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    plan = json.loads(out)
    assert [d["name"] for d in plan["documents"]] == ["a.txt", "b.md"]
    assert plan["part_budget"] <= 1024 and plan["part_cap"] == 1024
    assert all(p["tokens"] <= plan["part_budget"] for p in plan["parts"])
    assert plan["parts"][-1]["source"] == "b.md" and plan["model_calls"] > len(plan["parts"])
    assert plan["estimated_seconds"] > 0 and re.fullmatch(r"\d+", str(plan["batch_size"]))
