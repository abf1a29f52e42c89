"""Streaming generation: text, stop on </s>, cancel between tokens and prefill chunks, stats."""

import threading

import mlx.core as mx
import pytest

from engine import Finished, PrefillProgress, SamplingSettings, TextChunk
from engine.generate import stream_tokens

GREEDY = SamplingSettings(temperature=0.0, max_tokens=12)
CHAT = [{"role": "user", "content": "Write a haiku about the sea."}]


def _run(events):
    events = list(events)
    text = "".join(e.text for e in events if isinstance(e, TextChunk))
    (done,) = [e for e in events if isinstance(e, Finished)]
    assert events[-1] is done
    return events, text, done.stats


def test_chat_streams_text_and_stats(tiny_engine):
    prompt = tiny_engine.tokenizer.encode_chat(CHAT)
    fed: list[int] = []
    events, text, stats = _run(
        stream_tokens(
            tiny_engine.model,
            tiny_engine.tokenizer,
            prompt,
            tiny_engine.model.make_cache(),
            GREEDY,
            fed=fed,
        )
    )
    answer = fed[len(prompt) :]
    assert fed[: len(prompt)] == prompt
    assert text == tiny_engine.tokenizer.decode(answer)
    assert text
    assert stats.prompt_tokens == stats.prefilled_tokens == len(prompt)
    assert stats.generated_tokens == len(answer) == 12
    assert stats.finish_reason == "length"
    assert stats.ttft_s > 0 and stats.decode_tps > 0 and stats.peak_memory_bytes > 0


def test_greedy_is_deterministic_and_chat_matches_encode_chat(tiny_engine):
    _, a, _ = _run(tiny_engine.chat(CHAT, GREEDY))
    _, b, _ = _run(tiny_engine.generate(tiny_engine.tokenizer.encode_chat(CHAT), GREEDY))
    assert a == b


class EosAfter:
    """The tiny model, forced to say </s> as its n-th answer token."""

    def __init__(self, model, n: int):
        self.model, self.n, self.calls = model, n, 0
        self.layers = model.layers

    def __call__(self, tokens, cache=None):
        logits = self.model(tokens, cache=cache)
        if tokens.shape[1] == 1:
            self.calls += 1
            if self.calls == self.n:
                logits = logits + 1e4 * (mx.arange(logits.shape[-1]) == 2)
        return logits


def test_stops_on_eos(tiny_engine):
    model = EosAfter(tiny_engine.model, 4)
    prompt = tiny_engine.tokenizer.encode_chat(CHAT)
    fed: list[int] = []
    _, _, stats = _run(
        stream_tokens(
            model, tiny_engine.tokenizer, prompt, tiny_engine.model.make_cache(), GREEDY, fed=fed
        )
    )
    assert stats.finish_reason == "stop"
    assert stats.generated_tokens == 3  # </s> itself is not part of the answer
    assert fed[-1] == 2  # ...but it is in the cache, as the chat format wants


def test_cancel_stops_within_one_token(tiny_engine):
    cancel = threading.Event()
    seen = 0
    for event in tiny_engine.chat(CHAT, SamplingSettings(temperature=0.0, max_tokens=50), cancel):
        if isinstance(event, TextChunk):
            seen += 1
            cancel.set()
        if isinstance(event, Finished):
            stats = event.stats
    assert seen == 1
    assert stats.finish_reason == "cancelled"
    assert stats.generated_tokens == 1


def test_cancel_between_prefill_chunks(tiny_engine):
    prompt = [1] + tiny_engine.tokenizer.encode("word " * 200)
    cache = tiny_engine.model.make_cache()
    cancel = threading.Event()
    progress = []
    for event in stream_tokens(
        tiny_engine.model, tiny_engine.tokenizer, prompt, cache, GREEDY, cancel, prefill_step=32
    ):
        if isinstance(event, PrefillProgress):
            progress.append(event)
            if len(progress) == 2:
                cancel.set()
        if isinstance(event, TextChunk):
            pytest.fail("no text after cancel during prefill")
        if isinstance(event, Finished):
            stats = event.stats
    assert [p.done for p in progress] == [32, 64]
    assert progress[0].total == len(prompt)
    assert stats.finish_reason == "cancelled" and stats.generated_tokens == 0
    assert cache[0].offset == 64  # whole chunks only: the cache stays consistent


def test_sampling_settings_take_effect(tiny_engine):
    hot = SamplingSettings(temperature=1.5, max_tokens=12, seed=1)
    _, a, _ = _run(tiny_engine.chat(CHAT, hot))
    _, b, _ = _run(tiny_engine.chat(CHAT, hot))
    _, c, _ = _run(tiny_engine.chat(CHAT, SamplingSettings(temperature=1.5, max_tokens=12, seed=2)))
    assert a == b and a != c
    prompt = tiny_engine.tokenizer.encode_chat(CHAT)
    model = Favouring(tiny_engine.model, token=5000)

    def answer(settings):
        fed: list[int] = []
        cache = tiny_engine.model.make_cache()
        _run(stream_tokens(model, tiny_engine.tokenizer, prompt, cache, settings, fed=fed))
        return fed[len(prompt) :]

    def repeats(ids):  # mlx-lm's penalty looks at the last 20 tokens
        return sum(ids[i] in ids[max(0, i - 19) : i] for i in range(len(ids)))

    assert repeats(answer(SamplingSettings(temperature=0.0, max_tokens=40))) == 39
    strong = SamplingSettings(temperature=0.0, max_tokens=40, repetition_penalty=50.0)
    assert repeats(answer(strong)) == 0


class Favouring:
    """The tiny model with one token made the greedy choice at every step."""

    def __init__(self, model, token: int):
        self.model, self.token, self.layers = model, token, model.layers

    def __call__(self, tokens, cache=None):
        logits = self.model(tokens, cache=cache)
        return logits + 30.0 * (mx.arange(logits.shape[-1]) == self.token)
