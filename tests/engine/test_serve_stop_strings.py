"""Stop sequences in the decode loop (used by the local API) and the API's extra penalties."""

from __future__ import annotations

from dataclasses import replace

import mlx.core as mx

from engine.events import Finished, TextChunk
from engine.generate import SamplingSettings, _logits_processors
from engine.session import ChatSession
from engine.stop_strings import StopStrings

GREEDY = SamplingSettings(temperature=0.0, max_tokens=16)


def feed(stops: StopStrings, pieces: list[str]) -> list[str]:
    return [stops.add(p) for p in pieces] + [stops.flush()]


def test_a_stop_string_split_across_pieces_is_found_and_cut():
    stops = StopStrings(["lo Wo"])
    assert feed(stops, ["Hel", "lo W", "orld"]) == ["He", "l", "", ""]  # "l" could start it
    assert stops.hit


def test_text_that_only_looked_like_a_stop_string_is_released():
    stops = StopStrings(["abc"])
    assert feed(stops, ["xa", "b", "d"]) == ["x", "", "abd", ""]
    assert not stops.hit
    # Held text at the end of the answer is shown too.
    assert feed(StopStrings(["abc"]), ["xab"]) == ["x", "ab"]


def test_the_earliest_of_several_stop_strings_wins():
    stops = StopStrings(["world", "lo"])
    assert feed(stops, ["hello world"]) == ["hel", ""]


def run(session: ChatSession, messages, settings) -> tuple[str, str]:
    text, reason = [], None
    for e in session.chat(messages, settings):
        if isinstance(e, TextChunk):
            text.append(e.text)
        elif isinstance(e, Finished):
            reason = e.stats.finish_reason
    return "".join(text), reason


def test_the_engine_stops_before_the_stop_string_and_keeps_its_cache(tiny_engine):
    messages = [{"role": "user", "content": "Count the stars"}]
    full, _ = run(ChatSession(tiny_engine, num_ctx=1024), messages, GREEDY)
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    session = ChatSession(tiny_engine, num_ctx=1024)
    text, reason = run(session, messages, replace(GREEDY, stop=(stop,)))
    assert text == full[: full.index(stop)] and reason == "stop"
    # The cache holds exactly the tokens fed (the stop string's included): kept, not reset.
    assert session.tokens and session._cache[0].offset == len(session.tokens)
    prompt = tiny_engine.tokenizer.encode_chat(messages)
    assert session.tokens[: len(prompt)] == prompt
    follow_up = [
        *messages,
        {"role": "assistant", "content": text},
        {"role": "user", "content": "?"},
    ]
    events = list(session.chat(follow_up, replace(GREEDY, max_tokens=2)))
    assert events[-1].stats.reused_tokens >= len(prompt)


def test_presence_and_frequency_penalties_reach_mlx_lm():
    tail = mx.array([5, 6], dtype=mx.int32)
    assert len(_logits_processors(SamplingSettings(), tail)) == 0
    both = SamplingSettings(presence_penalty=1.5, frequency_penalty=0.5)
    processors = _logits_processors(both, tail)
    assert len(processors) == 2
    logits = mx.zeros((1, 10))
    out = logits
    for p in processors:
        out = p(mx.array([7, 7], dtype=mx.int32), out)
    # Token 7 seen twice: presence 1.5 + frequency 2 * 0.5; tokens 5 and 6 (prompt tail) once.
    assert out[0, 7].item() == -2.5 and out[0, 5].item() == -2.0 and out[0, 0].item() == 0.0
