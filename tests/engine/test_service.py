"""The engine thread: jobs as handles, one at a time, in order; stop before start; shutdown."""

from __future__ import annotations

import threading

import pytest

from engine.backend import ChatRequest, GenerationOptions, messages_of
from engine.events import Finished, TextChunk
from engine.generate import SamplingSettings
from engine.jobs import JobDone, JobFailed, JobStarted, JobState
from engine.local_backend import LocalBackend
from engine.service import EngineService, LoadProgress

GREEDY = SamplingSettings(temperature=0.0, max_tokens=8)


def request(text: str, key: str | None = "chat:1", **options) -> ChatRequest:
    opts = GenerationOptions(sampling=options.pop("sampling", GREEDY), **options)
    return ChatRequest(messages_of([{"role": "user", "content": text}]), opts, key)


@pytest.fixture
def service(tiny_engine):
    svc = EngineService(LocalBackend(tiny_engine), prepare=False)
    yield svc
    svc.shutdown()


def test_a_chat_job_streams_its_own_events_and_ends_with_its_stats(service, tiny_engine):
    job = service.chat(request("Hello"))
    events = list(job.events(timeout=120))
    assert isinstance(events[0], JobStarted)
    assert isinstance(events[-1], JobDone) and not events[-1].cancelled
    text = "".join(e.text for e in events if isinstance(e, TextChunk))
    finished = [e for e in events if isinstance(e, Finished)]
    assert len(finished) == 1 and events[-1].result == finished[0].stats
    assert job.state is JobState.DONE
    # The same answer as the engine gives directly, at temperature 0.
    direct = "".join(
        e.text
        for e in tiny_engine.chat([{"role": "user", "content": "Hello"}], GREEDY)
        if isinstance(e, TextChunk)
    )
    assert text == direct


def test_jobs_run_in_order_and_a_stopped_queued_job_never_runs(service):
    gate = threading.Event()
    order: list[str] = []
    blocker = service.submit("block", lambda job: (gate.wait(60), order.append("block")))
    first = service.chat(request("one"))
    skipped = service.chat(request("two"))
    last = service.submit("last", lambda job: order.append("last"))
    skipped.stop()  # while it waits behind the blocker
    gate.set()
    for job in (blocker, first, skipped, last):
        assert job.wait(120) is not None
    assert order == ["block", "last"]
    assert isinstance(first.outcome, JobDone) and not first.outcome.cancelled
    assert skipped.outcome == JobDone(None, cancelled=True)
    assert skipped.state is JobState.CANCELLED
    # It never started: its owner heard only the cancelled finish.
    assert [type(e) for e in skipped.events(timeout=5)] == [JobDone]


def test_stop_while_running_ends_the_answer_as_cancelled(service):
    started = threading.Event()
    seen: list[object] = []

    def sink(event: object) -> None:
        seen.append(event)
        if isinstance(event, TextChunk):
            started.set()

    long = GenerationOptions(sampling=SamplingSettings(temperature=0.0, max_tokens=400))
    job = service.chat(ChatRequest(messages_of([{"role": "user", "content": "go"}]), long), sink)
    assert started.wait(120)
    job.stop()
    outcome = job.wait(120)
    assert isinstance(outcome, JobDone) and outcome.cancelled
    assert outcome.result.finish_reason == "cancelled"
    assert outcome.result.generated_tokens < 400


def test_an_overflowing_chat_fails_with_its_token_counts(service):
    job = service.chat(request("word " * 400, num_ctx=256))
    outcome = job.wait(120)
    assert isinstance(outcome, JobFailed) and outcome.kind == "overflow"
    assert outcome.num_ctx == 256 and outcome.prompt_tokens > 256 - GREEDY.max_tokens
    # The thread lives on.
    assert isinstance(service.chat(request("hi")).wait(120), JobDone)


def test_no_model_is_a_clear_failure():
    svc = EngineService(prepare=False)
    try:
        outcome = svc.chat(request("hi")).wait(60)
        assert isinstance(outcome, JobFailed) and outcome.kind == "no_model"
    finally:
        svc.shutdown()


def test_load_reports_progress_and_shutdown_cancels_what_waits(tiny_model_dir):
    svc = EngineService(prepare=False)
    progress: list[LoadProgress] = []
    load = svc.load(
        str(tiny_model_dir), sink=lambda e: isinstance(e, LoadProgress) and progress.append(e)
    )
    outcome = load.wait(120)
    assert isinstance(outcome, JobDone) and outcome.result.name == tiny_model_dir.name
    assert progress and progress[-1].done == progress[-1].total
    gate = threading.Event()
    svc.submit("block", lambda job: gate.wait(60))
    queued = svc.chat(request("never"))
    threading.Timer(0.2, gate.set).start()
    assert svc.shutdown(120)
    assert queued.outcome == JobDone(None, cancelled=True)
    with pytest.raises(RuntimeError):
        svc.chat(request("after"))
