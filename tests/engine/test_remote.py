"""The remote backend against a real peer nobody here wrote: mlx_lm.server, started on 127.0.0.1
with the tiny Nemo-shaped model (issue 14): chat streams with the server's own counts, stop stops
the server's generation, a multi-part summary completes with progress, overflow is refused with
counts before anything is sent, and the CLI runs on --server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine.backend import ChatRequest, CompletionRequest, GenerationOptions, messages_of
from engine.docs.summarize import CombineStarted, PartDone, PartStarted, SummaryDone, summarize
from engine.events import ContextTrimmed, Finished, TextChunk
from engine.generate import SamplingSettings
from engine.jobs import JobDone, JobFailed
from engine.remote import RemoteBackend, RemoteConfig, list_models
from engine.remote.peer import MlxLmServer, servable_copy
from engine.service import EngineService
from engine.tokenizer import load_tokenizer

DEADLINE = 120  # generous: the CPU is shared; nothing here measures time


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    peer = tmp_path_factory.mktemp("peer")
    folder = servable_copy(tiny_model_dir, peer / "tiny-nemo")
    with MlxLmServer(folder, log=peer / "mlx_lm.server.log") as s:
        yield s


def connect(server: MlxLmServer) -> RemoteBackend:
    return RemoteBackend.connect(RemoteConfig(server.url, timeout=30, read_timeout=DEADLINE))


@pytest.fixture(scope="module")
def backend(server: MlxLmServer):
    b = connect(server)
    yield b
    b.close()


def options(max_tokens: int, num_ctx: int = 4096) -> GenerationOptions:
    # A seed makes mlx_lm.server serve requests one at a time (no batching): see test_stop_...
    return GenerationOptions(
        SamplingSettings(temperature=0.0, max_tokens=max_tokens, seed=0), num_ctx=num_ctx
    )


def ask(text: str, max_tokens: int = 6, num_ctx: int = 4096) -> ChatRequest:
    return ChatRequest(
        messages_of([{"role": "user", "content": text}]), options(max_tokens, num_ctx)
    )


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def posts(server: MlxLmServer) -> int:
    return server.log.read_text(errors="replace").count('"POST /v1/')


def test_connect_says_which_machine_runs_the_model(server, backend):
    (model,) = list_models(RemoteConfig(server.url))
    assert model.id.endswith("tiny-nemo")
    info = backend.info
    assert (info.name, info.local, info.tekken) == ("tiny-nemo", False, True)
    assert info.location == f"the server at {server.url}"
    assert info.path == server.url + "/v1"


def test_chat_streams_with_the_servers_counts(backend):
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is a lease?"},
        {"role": "assistant", "content": "A contract to rent."},
        {"role": "user", "content": "And a deposit?"},
    ]
    request = ChatRequest(messages_of(messages), options(6))
    events = list(backend.chat(request, threading.Event()))
    chunks, (done,) = of(events, TextChunk), of(events, Finished)
    assert chunks and all(c.text for c in chunks)
    stats = done.stats
    assert stats.generated_tokens == 6 and stats.finish_reason == "length"
    # The server's tokenizer (transformers' conversion of tekken.json) and chat template agree
    # with our Tekken count: budgets for a remote Nemo are exact.
    assert stats.prompt_tokens == len(load_tokenizer(None).encode_chat(messages))
    assert stats.ttft_s > 0 and stats.decode_tps > 0


def test_completion_streams(backend):
    request = CompletionRequest("The lease says", options(4))
    events = list(backend.complete(request, threading.Event()))
    assert of(events, TextChunk)
    assert of(events, Finished)[0].stats.generated_tokens == 4


def test_stop_stops_the_servers_generation(server):
    """Stop closes the stream and mlx_lm.server stops generating: with a seed it serves one
    request at a time, so the next request could only finish within the deadline if the
    100,000-token answer before it was abandoned by the server."""
    service = EngineService(connect(server), prepare=False)  # closes it at shutdown
    try:
        job = service.chat(ask("Write a very long story.", 100_000, num_ctx=131_072))
        received = 0
        for event in job.events(timeout=DEADLINE):
            if isinstance(event, TextChunk):
                received += 1
                if received == 2:
                    job.stop()
        assert isinstance(job.outcome, JobDone) and job.outcome.cancelled
        assert job.outcome.result.finish_reason == "cancelled"

        retry = service.chat(ask("Hello?", 3))
        outcome = retry.wait(DEADLINE)
        assert isinstance(outcome, JobDone), outcome
        assert outcome.result.generated_tokens == 3 and not outcome.cancelled
    finally:
        service.shutdown()


def test_overflow_is_refused_with_counts_before_sending(server):
    long = "clause " * 600
    count = len(load_tokenizer(None).encode_chat([{"role": "user", "content": long}]))
    sent = posts(server)
    service = EngineService(connect(server), prepare=False)  # closes it at shutdown
    try:
        outcome = service.chat(ask(long, 64, num_ctx=512)).wait(DEADLINE)
    finally:
        service.shutdown()
    assert isinstance(outcome, JobFailed) and outcome.kind == "overflow"
    assert (outcome.prompt_tokens, outcome.num_ctx) == (count, 512)
    assert f"needs {count:,} tokens" in outcome.message
    assert posts(server) == sent  # nothing reached the server


def test_old_exchanges_are_left_out_and_the_server_agrees_on_the_count(backend):
    history = []
    for i in range(6):
        history += [
            {"role": "user", "content": f"Question {i}: " + "what about the rent? " * 20},
            {"role": "assistant", "content": f"Answer {i}: " + "it is due monthly. " * 20},
        ]
    history.append({"role": "user", "content": "Summing up?"})
    request = ChatRequest(messages_of(history), options(4, num_ctx=512))
    events = list(backend.chat(request, threading.Event()))
    (trimmed,) = of(events, ContextTrimmed)
    assert trimmed.dropped_messages % 2 == 0 and trimmed.dropped_messages > 0
    assert trimmed.prompt_tokens + 4 <= 512
    assert of(events, Finished)[0].stats.prompt_tokens == trimmed.prompt_tokens


def test_a_multi_part_summary_completes_with_progress(backend):
    doc = "\n\n".join(
        f"Clause {n}: the tenant pays the rent and the deposit; repairs are the landlord's."
        for n in range(40)
    )
    generate = backend.generate_fn(options(8, num_ctx=512))
    events = list(summarize(doc, generate, backend.token_counter(), 512, max_tokens=8))
    done = events[-1]
    assert isinstance(done, SummaryDone) and not done.cancelled
    assert done.parts >= 2
    assert len(of(events, PartStarted)) == len(of(events, PartDone)) == done.parts
    assert done.model_calls == done.parts + len(of(events, CombineStarted))
    assert done.stats.final is not None and done.stats.final.prompt_tokens + 8 <= 512
    assert "".join(e.text for e in of(events, TextChunk)).strip() == done.text


def test_cli_generate_on_a_server(server, capsys):
    from engine.cli.main import main

    code = main(
        ["generate", "--server", server.url, "--prompt", "Hi", "--max-tokens", "3", "--seed", "1"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip()
    assert "3 generated" in err and "length" in err


def test_cli_summarize_on_a_server(server, tmp_path, capsys):
    from engine.cli.main import main

    doc = tmp_path / "lease.txt"
    doc.write_text("\n\n".join(f"Clause {n}: the rent is due." for n in range(30)))
    out_file = tmp_path / "summary.md"
    code = main(
        ["summarize", str(doc), "--server", server.url, "--num-ctx", "512"]
        + ["--max-tokens", "8", "--out", str(out_file)]
    )
    _, err = capsys.readouterr()
    assert code == 0, err
    assert out_file.read_text().strip()
    assert "part(s)" in err


def test_cli_names_an_unreachable_server(capsys):
    from engine.cli.main import main
    from engine.remote.peer import free_port

    port = free_port()
    assert main(["generate", "--server", f"http://127.0.0.1:{port}", "--prompt", "Hi"]) == 1
    _, err = capsys.readouterr()
    assert err.strip() == (
        f"nemo: Can't reach the server at http://127.0.0.1:{port}: "
        "connection refused — is it running?"
    )


def test_our_own_nemo_serve_is_a_peer_too(tiny_model_dir):
    """Another Nemo Chat's `nemo serve` (engine.serve) behind the remote backend."""
    serve = pytest.importorskip("engine.serve", reason="engine.serve (nemo serve) is not built yet")
    local = EngineService()
    try:
        assert isinstance(local.load(str(tiny_model_dir)).wait(DEADLINE), JobDone)
        api = serve.ApiServer(local, serve.ApiConfig(port=0)).start()
        try:
            remote = RemoteBackend.connect(RemoteConfig(api.base_url, read_timeout=DEADLINE))
            assert remote.info.tekken  # a Nemo Chat serves Nemo: exact budgets
            events = list(remote.chat(ask("Hello", 4), threading.Event()))
            (done,) = of(events, Finished)
            assert of(events, TextChunk) and done.stats.generated_tokens == 4
            prompt = [{"role": "user", "content": "Hello"}]
            assert done.stats.prompt_tokens == len(load_tokenizer(None).encode_chat(prompt))
            # stop: the stream closes, the job ends, and the next request is served
            cancel = threading.Event()
            got = 0
            for event in remote.chat(ask("Tell a long story", 4000, 8192), cancel):
                if isinstance(event, TextChunk):
                    got += 1
                    cancel.set() if got == 2 else None
                if isinstance(event, Finished):
                    assert event.stats.finish_reason == "cancelled"
            deadline = time.monotonic() + DEADLINE
            while api.requests_active() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert api.requests_active() == 0  # the server's job ended: it saw the hang-up
            last = api.recent_jobs()[-1].outcome
            assert isinstance(last, JobDone) and last.cancelled
            remote.close()
        finally:
            api.stop()
    finally:
        local.shutdown()
