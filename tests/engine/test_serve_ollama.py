"""The local API's Ollama dialect, driven by the real `ollama` client over 127.0.0.1."""

from __future__ import annotations

import ollama
import pytest

from tests.engine.serve_support import (
    NUM_CTX,
    api_fixture,
    greedy,
    long_text,
    reference_chat,
    reference_completion,
    user,
)

api = api_fixture()


@pytest.fixture
def client(api):
    return ollama.Client(host=api.base_url.removesuffix("/v1"), timeout=120)


GREEDY_OPTIONS = {"temperature": 0, "num_predict": 8}


def test_version_tags_ps_and_show(api, client, tiny_engine):
    assert client._client.get("/api/version").json()["version"]
    names = [m.model for m in client.list().models]
    assert names == [api.model_name]
    running = client.ps().models
    assert [m.model for m in running] == [api.model_name]
    assert running[0].context_length == NUM_CTX
    shown = client.show("mistral-nemo")
    assert shown.modelinfo["llama.block_count"] == tiny_engine.config.num_hidden_layers
    assert shown.details.family == "llama"
    with pytest.raises(ollama.ResponseError) as e:
        client.show("llama3")
    assert e.value.status_code == 404


def test_chat_matches_the_engine_streaming_or_not_with_the_counters(client, tiny_engine):
    messages = user("Tell me about rivers")
    expected, _ = reference_chat(tiny_engine, messages, greedy(8))
    whole = client.chat("mistral-nemo", messages, stream=False, options=GREEDY_OPTIONS)
    assert whole.message.content == expected and whole.message.role == "assistant"
    assert whole.done and whole.done_reason == "length"
    assert whole.prompt_eval_count == len(tiny_engine.tokenizer.encode_chat(messages))
    assert whole.eval_count == 8
    assert whole.total_duration > 0 and whole.eval_duration >= 0

    parts = list(client.chat(api_name(client), messages, stream=True, options=GREEDY_OPTIONS))
    assert "".join(p.message.content for p in parts) == expected
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].eval_count == 8


def api_name(client: ollama.Client) -> str:
    return client.list().models[0].model  # the full served name works like "mistral-nemo"


def test_generate_uses_the_chat_template_and_raw_is_a_plain_completion(client, tiny_engine):
    expected, _ = reference_chat(tiny_engine, user("Why is grass green"), greedy(8))
    r = client.generate("mistral-nemo", "Why is grass green", options=GREEDY_OPTIONS)
    assert r.response == expected and r.done
    raw = reference_completion(tiny_engine, "Once upon a time", greedy(8))
    streamed = client.generate(
        "mistral-nemo", "Once upon a time", raw=True, stream=True, options=GREEDY_OPTIONS
    )
    assert "".join(p.response for p in streamed) == raw


def test_stop_and_seed_options(client, tiny_engine):
    messages = user("Count the stars")
    full, _ = reference_chat(tiny_engine, messages, greedy(16))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    r = client.chat(
        "mistral-nemo", messages, options={"temperature": 0, "num_predict": 16, "stop": [stop]}
    )
    assert r.message.content == full[: full.index(stop)] and r.done_reason == "stop"

    seeded = {"temperature": 1.0, "seed": 11, "num_predict": 8}
    first = client.generate("mistral-nemo", "Surprise me", options=seeded).response
    assert client.generate("mistral-nemo", "Surprise me", options=seeded).response == first


def test_an_overlong_prompt_is_an_error_with_its_counts(client, tiny_engine):
    messages = user(long_text(NUM_CTX))
    with pytest.raises(ollama.ResponseError) as e:
        client.chat("mistral-nemo", messages, options={"num_predict": 10})
    assert e.value.status_code == 400
    needed = len(tiny_engine.tokenizer.encode_chat(messages))
    assert f"{needed:,}" in e.value.error and f"{NUM_CTX:,}" in e.value.error


def test_an_unknown_model_is_404(client):
    with pytest.raises(ollama.ResponseError) as e:
        client.chat("llama3", user("hi"))
    assert e.value.status_code == 404
