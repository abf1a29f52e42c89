"""The local API's OpenAI dialect, driven by the real `openai` client over 127.0.0.1."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest
from mlx_lm.utils import common_prefix_len

from engine.jobs import JobDone, JobState
from tests.engine.serve_support import (
    NUM_CTX,
    api_fixture,
    greedy,
    long_text,
    reference_chat,
    reference_completion,
    user,
    wait_for,
)

api = api_fixture()


@pytest.fixture
def client(api):
    with openai.OpenAI(base_url=api.base_url, api_key="unused", max_retries=0) as c:
        yield c


def test_models_lists_the_stable_name_and_the_family_name_works(api, client):
    assert [m.id for m in client.models.list()] == [api.model_name]
    assert api.model_name.startswith("mistral-nemo:12b-instruct-")
    assert client.models.retrieve("mistral-nemo").id == api.model_name
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=user("hi"), max_tokens=2)


def test_chat_matches_the_engine_and_streaming_matches_non_streaming(client, tiny_engine):
    messages = user("Tell me about the sea")
    expected, session = reference_chat(tiny_engine, messages, greedy(8))
    whole = client.chat.completions.create(
        model="mistral-nemo", messages=messages, max_tokens=8, temperature=0
    )
    assert whole.choices[0].message.content == expected
    assert whole.choices[0].message.role == "assistant"
    assert whole.choices[0].finish_reason == "length"
    prompt_tokens = len(tiny_engine.tokenizer.encode_chat(messages))
    assert whole.usage.prompt_tokens == prompt_tokens
    assert whole.usage.completion_tokens == 8

    chunks = list(
        client.chat.completions.create(
            model="mistral-nemo",
            messages=messages,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usage = chunks[-1].usage  # include_usage: a last chunk with no choices
    assert chunks[-1].choices == [] and usage.prompt_tokens == prompt_tokens


def test_the_event_stream_ends_with_done(api):
    body = {"model": "mistral-nemo", "messages": user("Hi"), "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{api.base_url}/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_a_follow_up_reuses_the_shared_prefix_and_reports_it(client, tiny_engine):
    first = user(long_text())
    answer = client.chat.completions.create(
        model="mistral-nemo", messages=first, max_tokens=8, temperature=0
    )
    follow_up = [
        *first,
        {"role": "assistant", "content": answer.choices[0].message.content},
        {"role": "user", "content": "And then?"},
    ]
    again = client.chat.completions.create(
        model="mistral-nemo", messages=follow_up, max_tokens=4, temperature=0
    )
    # The reference: what the engine's cache holds after the first answer, against the new prompt.
    _, session = reference_chat(tiny_engine, first, greedy(8))
    shared = common_prefix_len(session.tokens, tiny_engine.tokenizer.encode_chat(follow_up))
    assert shared > len(tiny_engine.tokenizer.encode_chat(first))
    assert again.usage.prompt_tokens_details.cached_tokens == shared


def test_stop_sequences_end_the_answer_before_them(client, tiny_engine):
    messages = user("Count the stars")
    full, _ = reference_chat(tiny_engine, messages, greedy(16))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), full
    for stream in (False, True):
        response = client.chat.completions.create(
            model="mistral-nemo",
            messages=messages,
            max_tokens=16,
            temperature=0,
            stop=[stop, "never-in-the-text"],
            stream=stream,
        )
        if stream:
            chunks = list(response)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            reason = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        else:
            text, reason = response.choices[0].message.content, response.choices[0].finish_reason
        assert text == full[: full.index(stop)]
        assert reason == "stop"


def test_a_seed_gives_the_same_text_twice(client):
    def ask() -> str:
        r = client.chat.completions.create(
            model="mistral-nemo",
            messages=user("Surprise me"),
            max_tokens=10,
            temperature=1.0,
            seed=7,
        )
        return r.choices[0].message.content

    assert ask() == ask()


def test_completions_match_the_engine(client, tiny_engine):
    expected = reference_completion(tiny_engine, "Once upon a time", greedy(10))
    r = client.completions.create(
        model="mistral-nemo", prompt="Once upon a time", max_tokens=10, temperature=0
    )
    assert r.choices[0].text == expected
    assert r.usage.completion_tokens == 10
    streamed = client.completions.create(
        model="mistral-nemo", prompt="Once upon a time", max_tokens=10, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == expected


def test_an_overlong_prompt_is_refused_with_its_counts(client, tiny_engine):
    messages = user(long_text(NUM_CTX))
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mistral-nemo", messages=messages, max_tokens=10)
    error = e.value.body
    assert e.value.code == "context_length_exceeded"
    assert error["prompt_tokens"] == len(tiny_engine.tokenizer.encode_chat(messages))
    assert error["num_ctx"] == NUM_CTX
    # Streaming too: a 400 before any event, not a clipped answer.
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="mistral-nemo", messages=messages, stream=True)


def test_closing_the_stream_cancels_the_job(api, client):
    stream = client.chat.completions.create(
        model="mistral-nemo", messages=user("Go on and on"), max_tokens=NUM_CTX // 2, stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    job = api.recent_jobs()[-1]
    stream.close()
    wait_for(lambda: job.ended)
    assert job.state is JobState.CANCELLED
    assert job.outcome.result.finish_reason == "cancelled"
    assert job.outcome.result.generated_tokens < NUM_CTX // 2


def test_a_queued_request_of_a_gone_client_never_runs(api):
    gate = threading.Event()
    blocker = api.service.submit("block", lambda job: gate.wait(120))
    try:
        body = {"model": "mistral-nemo", "messages": user("hello"), "max_tokens": 4}
        with pytest.raises(httpx.TimeoutException):  # it waits behind the blocker, then gives up
            httpx.post(f"{api.base_url}/chat/completions", json=body, timeout=1.0)
        job = api.recent_jobs()[-1]
        wait_for(lambda: job.stopped)
        assert job.state is JobState.QUEUED
    finally:
        gate.set()
    assert blocker.wait(60) is not None
    wait_for(lambda: job.ended)
    assert job.outcome == JobDone(None, cancelled=True)  # stopped before it ever started


def test_two_concurrent_clients_each_get_their_own_answer(api, tiny_engine):
    prompts = ["Name a river", "Name a mountain"]
    expected = [reference_chat(tiny_engine, user(p), greedy(8))[0] for p in prompts]
    assert expected[0] != expected[1]
    got: dict[int, str] = {}

    def ask(i: int) -> None:
        with openai.OpenAI(base_url=api.base_url, api_key="x", max_retries=0) as c:
            stream = c.chat.completions.create(
                model="mistral-nemo",
                messages=user(prompts[i]),
                max_tokens=8,
                temperature=0,
                stream=True,
            )
            got[i] = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == {0: expected[0], 1: expected[1]}
