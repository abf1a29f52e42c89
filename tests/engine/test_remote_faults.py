"""The remote backend against a fake server that fails in each way a real one can (issue 14,
item 5): each failure is one line naming the server, and the text streamed before it is kept."""

from __future__ import annotations

import threading
import time

import pytest

from engine.backend import ChatRequest, GenerationOptions, messages_of
from engine.events import Finished, TextChunk
from engine.generate import SamplingSettings
from engine.jobs import JobDone, JobFailed
from engine.remote import RemoteBackend, RemoteConfig, RemoteError, RemoteModel, list_models
from engine.remote.peer import free_port
from engine.service import EngineService
from tests.engine.openai_fakes import MODEL, WORDS, FakeOpenAI

DEADLINE = 60


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


def request(max_tokens: int = 64) -> ChatRequest:
    return ChatRequest(
        messages_of([{"role": "user", "content": "Say hello."}]),
        GenerationOptions(SamplingSettings(max_tokens=max_tokens), num_ctx=4096),
    )


def backend(url: str, read_timeout: float = 30.0, api_key: str | None = None) -> RemoteBackend:
    config = RemoteConfig(url, api_key=api_key, model=MODEL, timeout=5, read_timeout=read_timeout)
    return RemoteBackend(config, RemoteModel(MODEL))


def run_chat(b: RemoteBackend, stop_after: int | None = None) -> tuple[str, object]:
    """Chat through the engine thread like the app does; (text received, terminal event)."""
    service = EngineService(b, prepare=False)
    try:
        job = service.chat(request())
        text, terminal = [], None
        for event in job.events(timeout=DEADLINE):
            if isinstance(event, TextChunk):
                text.append(event.text)
                if stop_after is not None and len(text) == stop_after:
                    job.stop()
            if isinstance(event, JobDone | JobFailed):
                terminal = event
        return "".join(text), terminal
    finally:
        service.shutdown()


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_good_stream_sends_usage_options_and_the_key(fake: FakeOpenAI):
    b = RemoteBackend.connect(RemoteConfig(fake.url("ok"), api_key="sk-test", model=MODEL))
    assert b.info.max_context == 4096  # vLLM's max_model_len, as /v1/models reports it
    assert b.info.tekken and not b.info.local
    assert b.info.location == f"the server at http://127.0.0.1:{fake.port}"
    text, done = run_chat(b)
    assert text == "".join(WORDS)
    assert isinstance(done, JobDone) and not done.cancelled
    stats = done.result
    assert (stats.prompt_tokens, stats.generated_tokens, stats.finish_reason) == (
        11,
        len(WORDS),
        "stop",
    )
    path, headers, body = fake.requests[-1]
    assert path == "/ok/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == MODEL and body["max_tokens"] == 64


def test_connection_refused_names_the_server():
    port = free_port()  # nothing listens there
    with pytest.raises(RemoteError) as e:
        RemoteBackend.connect(RemoteConfig(f"http://127.0.0.1:{port}", timeout=5))
    assert e.value.reason == "unreachable"
    assert str(e.value) == (
        f"Can't reach the server at http://127.0.0.1:{port}: connection refused — is it running?"
    )


def test_tls_to_a_plain_http_server_is_a_tls_failure(fake: FakeOpenAI):
    with pytest.raises(RemoteError) as e:
        list_models(RemoteConfig(f"https://127.0.0.1:{fake.port}/ok", timeout=5))
    assert e.value.reason == "tls"
    assert str(e.value).startswith(
        f"TLS failure talking to the server at https://127.0.0.1:{fake.port}"
    )
    assert "\n" not in str(e.value)


def test_401_on_connect_says_check_the_key(fake: FakeOpenAI):
    with pytest.raises(RemoteError) as e:
        RemoteBackend.connect(RemoteConfig(fake.url("401"), api_key="wrong"))
    assert e.value.reason == "auth" and e.value.status == 401
    assert str(e.value) == (
        f"The server at http://127.0.0.1:{fake.port} refused the request (HTTP 401): "
        "check the API key: Invalid API key provided"
    )


def test_connect_to_a_model_the_server_lacks_lists_what_it_has(fake: FakeOpenAI):
    with pytest.raises(RemoteError) as e:
        RemoteBackend.connect(RemoteConfig(fake.url("ok"), model="llama-3-70b"))
    assert e.value.reason == "not_found"
    assert f"has no model 'llama-3-70b' (it has: {MODEL})" in str(e.value)


@pytest.mark.parametrize(
    ("scenario", "reason", "says"),
    [
        (
            "401",
            "auth",
            "refused the request (HTTP 401): check the API key: Invalid API key provided",
        ),
        (
            "404",
            "not_found",
            f"has no model '{MODEL}' (HTTP 404): The model '{MODEL}' does not exist",
        ),
        (
            "429",
            "rate_limited",
            "is busy or rate-limited (HTTP 429): Rate limit reached; try again in 7 s",
        ),
        ("500", "server", "failed (HTTP 500): CUDA out of memory"),
    ],
)
def test_http_errors_fail_the_job_with_one_line(fake, scenario, reason, says):
    text, failed = run_chat(backend(fake.url(scenario)))
    assert text == ""
    assert isinstance(failed, JobFailed) and failed.kind == "remote"
    assert failed.message == f"The server at http://127.0.0.1:{fake.port} {says}"
    with pytest.raises(RemoteError) as e:  # the app can tell the kinds apart (Retry, the key)
        list(backend(fake.url(scenario)).chat(request(), threading.Event()))
    assert (e.value.reason, e.value.status) == (reason, int(scenario))


@pytest.mark.parametrize(
    ("scenario", "says"),
    [
        ("cut3", "closed the connection mid-answer (the answer so far is kept)"),
        ("eof3", "closed the connection mid-answer (the answer so far is kept)"),
        ("error3", "reported an error mid-answer: the worker crashed"),
    ],
)
def test_a_stream_cut_mid_answer_keeps_the_partial_answer(fake, scenario, says):
    text, failed = run_chat(backend(fake.url(scenario)))
    assert text == "".join(WORDS[:3])  # what arrived before the failure reached the owner
    assert isinstance(failed, JobFailed) and failed.kind == "remote"
    assert failed.message == f"The server at http://127.0.0.1:{fake.port} {says}"


def test_a_stalled_stream_times_out_and_keeps_the_partial_answer(fake: FakeOpenAI):
    before = fake.hangups
    text, failed = run_chat(backend(fake.url("stall2"), read_timeout=1.0))
    assert text == "".join(WORDS[:2])
    assert isinstance(failed, JobFailed) and failed.kind == "remote"
    assert failed.message == (
        f"The server at http://127.0.0.1:{fake.port} stopped sending for 1 s mid-answer "
        "(the answer so far is kept)"
    )
    wait_for(lambda: fake.hangups > before, "the client to hang up on the stalled server")


def test_a_server_that_never_answers_times_out(fake: FakeOpenAI):
    b = backend(fake.url("hang"), read_timeout=1.0)
    with pytest.raises(RemoteError) as e:
        list(b.chat(request(), threading.Event()))
    assert e.value.reason == "timeout"
    assert str(e.value) == f"The server at http://127.0.0.1:{fake.port} did not answer within 1 s"


def test_stop_wakes_a_read_blocked_on_a_silent_server(fake: FakeOpenAI):
    """Stop is immediate even while the server sends nothing (read timeout: 5 minutes)."""
    before = fake.hangups
    text, done = run_chat(backend(fake.url("stall2"), read_timeout=300), stop_after=2)
    assert text == "".join(WORDS[:2])
    assert isinstance(done, JobDone) and done.cancelled
    assert done.result.finish_reason == "cancelled"
    wait_for(lambda: fake.hangups > before, "the server to see the connection close")


def test_stop_before_the_server_sends_headers(fake: FakeOpenAI):
    before = fake.hangups
    b = backend(fake.url("hang"), read_timeout=300)
    cancel = threading.Event()
    events = b.chat(request(), cancel)
    threading.Timer(0.3, cancel.set).start()
    finished = [e for e in events if isinstance(e, Finished)]
    assert [f.stats.finish_reason for f in finished] == ["cancelled"]
    wait_for(lambda: fake.hangups > before, "the server to see the connection close")
