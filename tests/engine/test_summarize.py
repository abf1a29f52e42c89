"""Summarization: single pass vs map-reduce, full coverage, budgets, citations, progress, cancel, CLI.

Token counts use the real Tekken tokenizer. The model call is a deterministic stand-in that echoes
the marker sentences it sees (so what reaches a summary is checkable), or the tiny random model.
"""

from __future__ import annotations

import argparse
import io
import plistlib
import re
import threading
import time
from pathlib import Path

import pytest

from engine import Finished, SamplingSettings, TextChunk
from engine.cli.summarize import Progress, add_parser, last_model_dir, report
from engine.cli.summarize import run as run_cli
from engine.docs.extract import Document, Page
from engine.docs.summarize import (
    CombineStarted,
    PartDone,
    PartStarted,
    SummaryBudgetError,
    SummaryDone,
    SummaryPlan,
    plan_summary,
    session_generate_fn,
    summarize,
)
from engine.docs.summarize_plan import _pieces
from engine.session import ChatSession
from engine.tokenizer import load_tokenizer
from engine.units import duration as format_duration

MARKER = re.compile(r"MARKER-\d+ [^.]*\.")
WORDS = "tenant landlord rent deposit notice repair insurance clause schedule term".split()


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()  # the real Tekken file shipped with mistral-common


def paragraph(page: int, n: int) -> str:
    words = " ".join(WORDS[(page * 7 + n + k) % len(WORDS)] for k in range(30))
    return f"Clause {page}.{n}: the {words} applies from day {page * 10 + n}."


def contract(pages: int, per_page: int = 4, markers: dict[int, str] | None = None) -> Document:
    """A paginated document; markers[page] is a sentence planted at the end of that page."""
    out = []
    for number in range(1, pages + 1):
        paras = [paragraph(number, n) for n in range(per_page)]
        if markers and number in markers:
            paras.append(markers[number])
        out.append(Page(number, "\n\n".join(paras)))
    text = "\n\n".join(p.text for p in out)
    return Document(Path("lease.pdf"), "lease.pdf", "pdf", text, tuple(out), len(out))


def prompt_len(tok, messages) -> int:
    return len(tok.encode_chat(messages))


class StandIn:
    """generate_fn that records its calls and answers with the markers it sees plus filler."""

    def __init__(self, tok, fill: float = 0.0, sleep: float = 0.0, on_call=None):
        self.tok, self.fill, self.sleep, self.on_call = tok, fill, sleep, on_call
        self.calls: list[tuple[list[dict], int]] = []

    def __call__(self, messages, max_tokens, cancel):
        self.calls.append((messages, max_tokens))
        if self.on_call:
            self.on_call(len(self.calls))
        if self.sleep:
            time.sleep(self.sleep)
        text = " ".join(dict.fromkeys(MARKER.findall(messages[-1]["content"])))
        room = int(self.fill * max_tokens) - self.tok.count_tokens(text) - 2
        text = (text + " filler" * max(room, 0)).strip() or "nothing"
        assert self.tok.count_tokens(text) <= max_tokens
        yield TextChunk(text[: len(text) // 2])
        yield TextChunk(text[len(text) // 2 :])


def run(doc, model, tok, num_ctx, **kw):
    return list(summarize(doc, model, tok, num_ctx, **kw))


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_a_document_that_fits_is_one_call_with_all_of_it(tok):
    doc = contract(3, markers={3: "MARKER-1 the deposit is 900 euros."})
    model = StandIn(tok)
    events = run(doc, model, tok, 8192, max_tokens=512)
    plan = events[0]
    assert (plan.parts, plan.model_calls_estimate, plan.single_pass) == (1, 1, True)
    assert isinstance(plan, SummaryPlan) and len(plan.part_list) == 1
    assert plan.total_tokens == tok.count_tokens(doc.cited_text())
    assert len(model.calls) == 1
    ((messages, max_tokens),) = model.calls
    assert max_tokens == 512 and doc.cited_text() in messages[-1]["content"]
    assert not of(events, PartStarted) and not of(events, CombineStarted)
    done = events[-1]
    assert isinstance(done, SummaryDone) and not done.cancelled
    assert "".join(e.text for e in of(events, TextChunk)) == done.text
    assert done.text == "MARKER-1 the deposit is 900 euros.\n\nCovered: pages 1–3 of 3, 1 part."
    assert done.model_calls == 1 and done.tokens_processed == prompt_len(tok, messages)


def test_a_string_that_fits_is_summarized_with_the_instruction(tok):
    model = StandIn(tok)
    events = run(
        "Short note. MARKER-7 pay by Friday.",
        model,
        tok,
        1024,
        max_tokens=64,
        instruction="List the deadlines.",
    )
    content = model.calls[0][0][-1]["content"]
    assert "Short note." in content and content.rstrip().endswith("List the deadlines.")
    assert events[-1].text == "MARKER-7 pay by Friday.\n\nCovered: all of it, 1 part."


def test_map_reduce_covers_every_part_within_the_budget(tok):
    last = 40
    markers = {
        1: "MARKER-1 the lease starts in May.",
        20: "MARKER-20 rent rises by 2%.",
        last: "MARKER-40 the lease ends on 31 December 2031.",
    }
    doc = contract(last, markers=markers)
    num_ctx, max_tokens = 2048, 256
    plan = plan_summary(doc, tok, num_ctx, max_tokens)
    assert not plan.single_pass and len(plan.parts) >= 4
    assert plan.total_tokens > num_ctx

    # Coverage: every paragraph of the input is whole in some part.
    texts = [p.text for p in plan.parts]
    for page in doc.pages:
        for para in page.text.split("\n\n"):
            assert any(para in t for t in texts), para
    # Budget, exactly counted: each part's call leaves room for its summary.
    for part in plan.parts:
        assert part.tokens + plan.part_max_tokens <= num_ctx
    # Overlap: each part starts with the end of the one before.
    for prev, nxt in zip(plan.parts, plan.parts[1:], strict=False):
        first_para = nxt.text.split("\n", 1)[1].split("\n\n")[0]  # after the "[page N]" line
        assert first_para in prev.text

    model = StandIn(tok, fill=0.3)
    events = run(doc, model, tok, num_ctx, max_tokens=max_tokens)
    for messages, budget in model.calls:  # no call ever overflows num_ctx
        assert prompt_len(tok, messages) + budget <= num_ctx
    map_calls = model.calls[: len(plan.parts)]
    for (messages, _), part in zip(map_calls, plan.parts, strict=True):
        assert part.text in messages[-1]["content"]
    parts_done = of(events, PartDone)
    assert "MARKER-40 the lease ends on 31 December 2031." in parts_done[-1].summary
    done = events[-1]
    for sentence in markers.values():  # from the first, middle and last page to the answer
        assert sentence in done.text
    assert done.model_calls == len(model.calls) == len(plan.parts) + len(of(events, CombineStarted))
    assert done.tokens_processed == sum(prompt_len(tok, m) for m, _ in model.calls)
    assert done.stats.map_calls == len(plan.parts) and done.stats.reduce_levels == 1


def test_combining_is_hierarchical_when_summaries_do_not_fit_one_call(tok):
    doc = contract(60, markers={60: "MARKER-60 notice period is three months."})
    num_ctx, max_tokens = 1024, 128
    model = StandIn(tok, fill=0.9)
    events = run(doc, model, tok, num_ctx, max_tokens=max_tokens)
    combines = of(events, CombineStarted)
    parts = len(of(events, PartStarted))
    assert parts >= 10
    assert [c.final for c in combines].count(True) == 1 and combines[-1].final
    levels = {c.level for c in combines}
    assert max(levels) >= 2  # at least one round of intermediate combining
    first_round = [c for c in combines if c.level == 1]
    assert len(first_round) >= 2 and all(not c.final for c in first_round)
    assert len(first_round) < parts  # each combine takes several summaries: it converges
    for messages, budget in model.calls:
        assert prompt_len(tok, messages) + budget <= num_ctx
    done = events[-1]
    assert "MARKER-60 notice period is three months." in done.text
    assert done.model_calls == parts + len(combines) == len(model.calls)
    assert done.stats.reduce_levels == max(levels)
    # Linear growth: far fewer combine calls than parts, and the estimate is an upper bound.
    assert len(combines) <= parts // 2 + 2
    assert done.model_calls <= events[0].model_calls_estimate


def test_parts_carry_their_page_ranges(tok):
    doc = contract(30)
    model = StandIn(tok)
    events = run(doc, model, tok, 1024, max_tokens=128)
    plan = plan_summary(doc, tok, 1024, 128)
    started = of(events, PartStarted)
    assert [s.pages for s in started] == [p.pages for p in plan.parts]
    assert plan.parts[0].first_page == 1 and plan.parts[-1].last_page == 30
    previous_last = 1
    for part, (messages, _) in zip(plan.parts, model.calls[: len(plan.parts)], strict=True):
        cited = [int(n) for n in re.findall(r"^\[page (\d+)\]$", part.text, re.M)]
        assert cited == list(range(part.first_page, part.last_page + 1))
        assert part.text.startswith(f"[page {part.first_page}]\n")
        assert f"(pages {part.pages})" in messages[-1]["content"]
        assert part.first_page in (previous_last, previous_last + 1)  # no page skipped
        previous_last = part.last_page
    # The combine call labels each summary with its pages.
    final = model.calls[-1][0][-1]["content"]
    assert all(f"(pages {p.pages})" in final for p in plan.parts)


def test_text_without_pages_is_split_at_paragraphs(tok):
    paras = [paragraph(1, n) for n in range(120)]
    text = "\n\n".join(paras)
    plan = plan_summary(text, tok, 1024, 128)
    assert not plan.single_pass and all(p.pages == "" for p in plan.parts)
    for para in paras:
        assert any(para in p.text for p in plan.parts)
    for p in plan.parts:  # parts start and end on paragraph boundaries (overlap included)
        assert all(chunk in paras for chunk in p.text.split("\n\n")[1:])


def test_a_paragraph_over_budget_is_split_at_sentences_then_tokens(tok):
    sentences = [f"Sentence {i} says the {WORDS[i % 10]} is due on day {i}." for i in range(300)]
    text = " ".join(sentences) + "\n\n" + "漢字テスト" * 2000  # no sentence end, multibyte
    plan = plan_summary(text, tok, 1024, 128)
    for part in plan.parts:
        assert part.tokens + plan.part_max_tokens <= 1024
        assert "\ufffd" not in part.text
    joined = "".join(p.text for p in plan.parts)
    for s in sentences:
        assert s in joined
    # Token pieces: within the limit, cut nowhere inside a character, none lost.
    unbroken = "漢字テスト" * 2000 + "x9" * 3000
    pieces = [piece for _, piece in _pieces(unbroken, 100, tok)]
    assert len(pieces) > 10 and "".join(pieces) == unbroken
    assert all(tok.count_tokens(p) <= 100 for p in pieces)


def test_progress_counts_up_and_eta_appears_after_the_first_part(tok):
    model = StandIn(tok, sleep=0.02)
    events = run(contract(30), model, tok, 1024, max_tokens=128)
    started, done = of(events, PartStarted), of(events, PartDone)
    count = events[0].parts
    assert [s.index for s in started] == [d.index for d in done] == list(range(1, count + 1))
    assert all(s.count == count for s in started)
    order = [(type(e).__name__, e.index) for e in events if isinstance(e, PartStarted | PartDone)]
    assert order == [(k, i) for i in range(1, count + 1) for k in ("PartStarted", "PartDone")]
    assert all(d.seconds >= 0.02 for d in done)
    # After part 1 the estimate covers the parts still to come at the measured speed.
    assert done[0].eta_s >= 0.5 * 0.02 * (count - 1)
    assert done[-1].eta_s < done[0].eta_s


def test_cancel_between_parts_makes_no_further_call(tok):
    cancel = threading.Event()
    model = StandIn(tok, on_call=lambda n: cancel.set() if n == 3 else None)
    events = run(contract(30), model, tok, 1024, max_tokens=128, cancel=cancel)
    assert len(model.calls) == 3
    done = events[-1]
    assert isinstance(done, SummaryDone) and done.cancelled
    assert done.model_calls == 3 and not of(events, CombineStarted)
    finished = of(events, PartDone)
    assert len(finished) == 2  # the third part's answer was cut by the cancel
    # Stopping shows the finished parts' summaries and names the pages not yet read.
    read_to = finished[-1].last_page
    assert done.text.startswith("### Part 1 (pages 1–")
    assert done.text.endswith(
        f"Stopped after 2 of {done.parts} parts; not read yet: pages {read_to + 1}–30."
    )
    assert done.coverage.documents[0].read == f"1–{read_to}"

    model = StandIn(tok)
    cancel.set()
    events = run(contract(30), model, tok, 1024, max_tokens=128, cancel=cancel)
    assert not model.calls and events[-1].cancelled


def test_too_small_a_context_is_a_clear_error_before_any_call(tok):
    with pytest.raises(SummaryBudgetError, match="too small"):
        plan_summary(contract(30), tok, 512, 400)
    model = StandIn(tok)
    with pytest.raises(SummaryBudgetError):
        summarize(contract(30), model, tok, 512, max_tokens=400)
    assert not model.calls


def test_a_real_pdf_is_covered_page_by_page(tok, tmp_path):
    from engine.cli.bench_documents import build_pdf
    from engine.docs.extract import extract

    doc = extract(build_pdf(tmp_path / "report.pdf", 12))
    plan = plan_summary(doc, tok, 2048, 256)
    assert not plan.single_pass and plan.parts[0].first_page == 1
    assert plan.parts[-1].last_page == 12
    for page in doc.pages:  # each page is one paragraph here: whole, with its marker, in a part
        assert any(f"[page {page.number}]\n{page.text}" in p.text for p in plan.parts)
    model = StandIn(tok)
    events = run(doc, model, tok, 2048, max_tokens=256)
    assert (
        f'document "report.pdf" (pages {plan.parts[1].pages})' in model.calls[1][0][-1]["content"]
    )
    assert events[-1].parts == len(plan.parts)


def test_calls_grow_linearly_with_the_document(tok):
    small, large = (plan_summary(contract(n), tok, 2048, 256) for n in (40, 160))
    assert 3.5 <= len(large.parts) / len(small.parts) <= 4.5
    for plan in (small, large):  # parts, plus combines that each take several summaries
        assert plan.model_calls_estimate <= 1.3 * len(plan.parts) + 1


# -- the tiny model through a real ChatSession ---------------------------------------------------

GREEDY = SamplingSettings(temperature=0.0, max_tokens=8)


def test_cancel_inside_a_part_leaves_the_session_usable(tiny_engine):
    tok = tiny_engine.tokenizer
    session = ChatSession(tiny_engine, num_ctx=512)
    cancel = threading.Event()
    inner = session_generate_fn(session, GREEDY)
    calls = []

    def generate(messages, max_tokens, cancel_):
        calls.append(messages)
        for event in inner(messages, max_tokens, cancel_):
            if len(calls) == 2:  # part 2 is being read: stop now
                cancel.set()
            yield event

    doc = "\n\n".join(paragraph(1, n) for n in range(26))
    events = list(summarize(doc, generate, tok, 512, max_tokens=16, cancel=cancel))
    assert events[0].parts >= 3
    assert len(calls) == 2 and len(of(events, PartDone)) == 1
    assert events[-1].cancelled and events[-1].model_calls == 2

    chat = [{"role": "user", "content": "Hello, what is a lease?"}]
    answer = list(session.chat(chat, GREEDY))
    fresh = list(ChatSession(tiny_engine, num_ctx=512).chat(chat, GREEDY))
    assert answer[-1].stats.finish_reason in ("stop", "length")
    text = "".join(e.text for e in of(answer, TextChunk))
    assert text == "".join(e.text for e in of(fresh, TextChunk))
    assert len(session.tokens) == session._cache[0].offset


def test_the_tiny_model_summarizes_in_parts(tiny_engine):
    """A whole map-reduce on the real model: one call per part plus the combine, all finished."""
    session = ChatSession(tiny_engine, num_ctx=512)
    doc = "\n\n".join(paragraph(2, n) for n in range(12))
    stream = summarize(
        doc, session_generate_fn(session, GREEDY), tiny_engine.tokenizer, 512, max_tokens=8
    )
    events = list(stream)
    done = events[-1]
    assert not done.cancelled and done.parts >= 2
    assert done.model_calls == done.parts + len(of(events, CombineStarted))
    assert done.stats.final is not None and done.stats.final.prompt_tokens <= 512 - 8
    assert "".join(e.text for e in of(events, TextChunk)).strip() == done.text
    assert done.stats.generated_tokens > 0
    assert not of(events, Finished)  # model events stay inside; the answer's text passes


# -- the CLI -----------------------------------------------------------------------------------


def cli(argv):
    parser = argparse.ArgumentParser(prog="nemo")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["summarize", *argv])
    return run_cli(args)


def test_cli_writes_the_summary_to_out(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "notes.txt"
    src.write_text("The meeting moved to Tuesday.\n\nBring the signed lease.\n", encoding="utf-8")
    out = tmp_path / "summary.md"
    rc = cli(
        [
            str(src),
            "--model",
            str(tiny_model_dir),
            "--num-ctx",
            "512",
            "--max-tokens",
            "8",
            "--seed",
            "0",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert out.is_file() and not (tmp_path / "summary.md.part").exists()
    assert "one pass" in captured.err and "1 model call(s)" in captured.err
    assert f"wrote {out}" in captured.err
    assert captured.out == ""  # with --out, stdout stays clean


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.txt", None, "file not found"),
        ("image.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG image"),
        ("empty.txt", b"", "the file is empty"),
    ],
)
def test_cli_bad_file_exits_1_with_the_problem(
    tiny_model_dir, tmp_path, capsys, name, content, problem
):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    rc = cli([str(path), "--model", str(tiny_model_dir)])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err.startswith(f"nemo summarize: {name}: ") and problem in err
    assert len(err.splitlines()) == 1


def test_nemo_summarize_exits_with_the_status(tmp_path, capsys):
    from engine.cli.main import main

    assert main(["summarize", str(tmp_path / "gone.pdf"), "--model", str(tmp_path)]) == 1
    assert "gone.pdf: file not found" in capsys.readouterr().err


def test_cli_without_a_model_says_how_to_give_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    assert cli([str(src)]) == 1
    assert "--model DIR" in capsys.readouterr().err


def test_cli_finds_the_apps_last_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert last_model_dir() is None
    ini = tmp_path / "config" / "Nemo Chat" / "Nemo Chat.conf"
    ini.parent.mkdir(parents=True)
    ini.write_text("[chat]\nnum_ctx=8192\nmodel_dir=/models/nemo 4bit\n", encoding="utf-8")
    assert last_model_dir() == "/models/nemo 4bit"
    # macOS: the plist that QSettings writes through CFPreferences wins.
    plist = tmp_path / "Library" / "Preferences" / "com.nemochat-app.Nemo Chat.plist"
    plist.parent.mkdir(parents=True)
    plist.write_bytes(plistlib.dumps({"chat.model_dir": "/Users/me/nemo", "chat.num_ctx": 8192}))
    assert last_model_dir() == "/Users/me/nemo"


def test_cli_bad_model_folder_exits_1(tmp_path, capsys):
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    assert cli([str(src), "--model", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nemo summarize: ") and "nowhere" in err


def test_progress_line_and_streamed_summary(tok):
    progress_stream, out = io.StringIO(), io.StringIO()
    events = summarize(contract(30), StandIn(tok, sleep=0.01), tok, 1024, max_tokens=128)
    done = report(events, Progress(progress_stream), out)
    lines = progress_stream.getvalue().splitlines()
    estimate = plan_summary(contract(30), tok, 1024, 128).model_calls_estimate
    assert lines[0].endswith(f"{done.parts} parts, at most {estimate} model calls")
    assert lines[1] == f"[--------------------] part 1 of {done.parts} (pages 1–4)"
    assert re.fullmatch(rf"\[#+-*\] part 3 of {done.parts} \(pages [\d–]+\) · ~\d+s left", lines[3])
    assert "writing the summary" in lines[-2] and lines[-1].startswith(f"[{done.parts} part(s)")
    assert out.getvalue() == done.text + "\n"


def test_format_duration():
    assert [format_duration(s) for s in (0, 45.4, 80, 3725)] == ["0s", "45s", "1m20s", "1h02m"]
