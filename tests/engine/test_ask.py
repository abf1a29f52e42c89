"""Ask the whole document: every part is asked, the finds are combined and cited, the rest named."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from engine.docs.ask import NOTHING, AskPrompts, ask
from engine.docs.extract import Document, Page
from engine.docs.summarize import CombineStarted, PartDone, SummaryDone, plan_summary
from engine.tokenizer import load_tokenizer
from tests.engine.summary_helpers import Batched, Model
from tests.engine.test_summarize import contract, of, paragraph

FACT = "FACT-1 the safe code is 4711."


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def book():
    """About 50 parts at num_ctx 1024 with the fact planted on one page."""
    return contract(172, markers={123: FACT})


@pytest.mark.parametrize("batched", [False, True])
def test_a_fact_on_one_page_of_a_50_part_document_is_found_and_cited(tok, book, batched):
    question = "What is the safe code?"
    model = Model(tok)
    batch = Batched(tok, size=4) if batched else None
    events = list(ask(book, question, model, tok, 1024, max_tokens=128, batch_fn=batch))
    plan = events[0]
    assert plan.parts >= 50 and not plan.single_pass
    asked = batch.calls if batched else model.calls[: plan.parts]
    assert len(asked) == plan.parts and all(f"Question: {question}" in c for c in asked)
    done = of(events, PartDone)
    found = [d for d in done if d.relevant]
    assert found and all(d.first_page <= 123 <= d.last_page for d in found)
    assert all(d.summary == NOTHING for d in done if not d.relevant)
    answer = events[-1]
    assert isinstance(answer, SummaryDone) and not answer.cancelled
    assert f"{FACT} [page 123]" in answer.text  # found, and cited on its real page
    # Only the finds go into the combine; the parts with nothing are named, not sent.
    final = model.calls[-1]
    assert final.count("### Part") == len(found) and NOTHING not in final
    assert len(of(events, CombineStarted)) == 1
    assert f"Covered: pages 1–172 of 172, {plan.parts} parts." in answer.text
    quiet = re.search(r"Nothing relevant in: pages ([\d–, ]+)\.", answer.text).group(1)
    assert (
        quiet.startswith("1–")
        and quiet.endswith("–172")
        and "123" not in quiet.replace("–", " ").split()
    )


def test_no_part_with_anything_says_so_without_a_combine(tok):
    model = Model(tok)
    events = list(ask(contract(30), "Who is the architect?", model, tok, 1024, max_tokens=128))
    parts = events[0].parts
    assert len(model.calls) == parts  # no combine call
    assert events[-1].text.startswith('Nothing in the document "lease.pdf" answers this question.')
    assert "Nothing relevant in: pages 1–30." in events[-1].text


def test_a_question_over_several_documents_cites_the_file(tok):
    pages = tuple(Page(n, "\n\n".join(paragraph(n + 70, k) for k in range(4))) for n in range(1, 9))
    pages = pages[:5] + (Page(6, pages[5].text + "\n\n" + FACT),) + pages[6:]
    manual = Document(Path("manual.pdf"), "manual.pdf", "pdf", "", pages, 8)
    model = Model(tok)
    events = list(
        ask([contract(20), manual], "What is the safe code?", model, tok, 1024, max_tokens=128)
    )
    found = [d for d in of(events, PartDone) if d.relevant]
    assert found and {d.source for d in found} == {"manual.pdf"}
    assert '("manual.pdf", pages ' in model.calls[-1]
    assert f"{FACT} [page 6]" in events[-1].text
    assert '"lease.pdf": pages 1–20 of 20; "manual.pdf": pages 1–8 of 8' in events[-1].text


def test_ask_prompts_fit_the_cap_and_an_empty_question_is_refused(tok, book):
    plan = plan_summary(book, tok, 131072, 128, part_cap=2048, prompts=AskPrompts("What?"))
    assert all(p.tokens <= 2048 and "Question: What?" in p.prompt for p in plan.parts)
    with pytest.raises(ValueError, match="empty"):
        ask(book, "  ", Model(tok), tok, 1024)


def test_cancel_stops_asking(tok, book):
    cancel = threading.Event()
    model = Model(tok, on_call=lambda n: cancel.set() if n == 5 else None)
    events = list(
        ask(book, "What is the safe code?", model, tok, 1024, max_tokens=128, cancel=cancel)
    )
    assert events[-1].cancelled and len(model.calls) == 5 and len(of(events, PartDone)) == 4
