"""The batched map step and the summary/ask jobs on the tiny random model.

Batched (mlx-lm's BatchGenerator, each sequence its own cache) and sequential (a ChatSession per
call) must give the same text at temperature 0; the job path stops, reports what it generated,
and resumes with only the unfinished parts.
"""

from __future__ import annotations

from engine.backend import GenerationOptions
from engine.docs.summarize import PartDone, PartStarted, SummaryDone, SummaryPlan, summarize
from engine.docs.summary_jobs import AskRequest, SummaryRequest
from engine.events import Finished, GenerationStats, TextChunk
from engine.generate import SamplingSettings
from engine.jobs import JobDone
from engine.local_backend import LocalBackend
from engine.service import EngineService
from tests.engine.test_summarize import of, paragraph

GREEDY = GenerationOptions(SamplingSettings(temperature=0.0), num_ctx=512)


def text_of(n: int, start: int = 0) -> str:
    return "\n\n".join(paragraph(3, k) for k in range(start, start + n))


def test_batched_and_sequential_give_the_same_text_at_temperature_0(tiny_engine):
    backend = LocalBackend(tiny_engine)
    batch = backend.batch_generate_fn(GREEDY)
    assert batch.batch_size(512) >= 2  # the memory plan allows a batch of tiny sequences
    prompts = [[{"role": "user", "content": text_of(n, n)}] for n in (1, 4, 2, 3)]
    events = list(batch(prompts, 8, None, 3))  # 4 prompts of unequal length, 3 at a time
    batched = {
        i: "".join(e.text for j, e in events if j == i and isinstance(e, TextChunk))
        for i in range(4)
    }
    finished = {i: e.stats for i, e in events if isinstance(e, Finished)}
    sequential = backend.generate_fn(GREEDY)
    for i, messages in enumerate(prompts):
        answer = list(sequential(messages, 8, None))
        text = "".join(e.text for e in answer if isinstance(e, TextChunk))
        assert batched[i] == text, i
        assert finished[i].generated_tokens == answer[-1].stats.generated_tokens
        assert finished[i].prompt_tokens == answer[-1].stats.prompt_tokens
    # A whole summary: same part summaries and the same answer either way.
    doc = text_of(18)
    one = list(summarize(doc, sequential, tiny_engine.tokenizer, 512, max_tokens=8))
    many = list(
        summarize(doc, sequential, tiny_engine.tokenizer, 512, max_tokens=8, batch_fn=batch)
    )
    assert many[0].batch_size >= 2 and many[0].parts >= 3
    assert {d.index: d.summary for d in of(many, PartDone)} == {
        d.index: d.summary for d in of(one, PartDone)
    }
    assert many[-1].text == one[-1].text


def run_job(job, deadline: float = 120.0):
    outcome = job.wait(deadline)
    assert outcome is not None, "the job did not end in time"
    return outcome


def test_a_stopped_summary_job_reports_what_it_generated_and_resumes(tiny_engine):
    svc = EngineService(LocalBackend(tiny_engine), prepare=False)
    try:
        seen: list[object] = []
        holder: dict = {}

        def sink(event):  # engine thread: stop once the first part is done
            seen.append(event)
            if isinstance(event, PartDone) and "job" in holder:
                holder["job"].stop()

        request = SummaryRequest((text_of(12),), options=GREEDY, max_tokens=8, batched=False)
        holder["job"] = svc.summarize(request, sink)
        outcome = run_job(holder["job"])
        assert isinstance(outcome, JobDone) and outcome.cancelled
        stats = outcome.result
        assert isinstance(stats, GenerationStats) and stats.finish_reason == "cancelled"
        assert stats.generated_tokens > 0  # not "0 tokens"
        plan = of(seen, SummaryPlan)[0]
        kept = of(seen, PartDone)
        assert 1 <= len(kept) < plan.parts
        stopped = of(seen, SummaryDone)[0]
        assert stopped.cancelled and "not read yet" in stopped.text

        seen2: list[object] = []
        resumed = SummaryRequest(
            request.documents,
            options=GREEDY,
            max_tokens=8,
            finished=tuple(p.stored() for p in kept),
        )
        outcome = run_job(svc.summarize(resumed, seen2.append))
        assert isinstance(outcome, JobDone) and not outcome.cancelled
        started = {s.index for s in of(seen2, PartStarted)}
        assert started == set(range(1, plan.parts + 1)) - {p.index for p in kept}
        done = of(seen2, SummaryDone)[0]
        assert done.stats.resumed_parts == len(kept) and done.coverage.complete
        assert done.text.endswith(f"Covered: all of it, {plan.parts} parts.")
        assert outcome.result.finish_reason == "stop"
    finally:
        svc.shutdown()


def test_ask_job_on_the_tiny_model(tiny_engine):
    svc = EngineService(LocalBackend(tiny_engine), prepare=False)
    try:
        seen: list[object] = []
        request = AskRequest(
            (text_of(12), "A second note.\n\nThe code is 4711."), "What is the code?", GREEDY, 8
        )
        outcome = run_job(svc.ask(request, seen.append))
        assert isinstance(outcome, JobDone) and not outcome.cancelled
        plan = of(seen, SummaryPlan)[0]
        assert plan.parts >= 2 and {p.source for p in plan.part_list} == {"text 1", "text 2"}
        done = of(seen, SummaryDone)[0]
        assert done.text.endswith(".") and '"text 2": all of it' in done.text
        assert outcome.result.generated_tokens == done.stats.generated_tokens > 0
    finally:
        svc.shutdown()


def test_nemo_ask_from_the_terminal(tiny_model_dir, tmp_path, capsys):
    from engine.cli.main import main

    src = tmp_path / "notes.txt"
    src.write_text(text_of(10), encoding="utf-8")
    rc = main(["ask", str(src), "When does the clause apply?", "--model", str(tiny_model_dir),
               "--num-ctx", "512", "--max-tokens", "8", "--temperature", "0"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Covered: all of it," in captured.out and "parts" in captured.err
    assert main(["ask", str(src), "   ", "--model", str(tiny_model_dir)]) == 1
