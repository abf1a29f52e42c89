"""ChatSession: KV cache reuse across turns, the num_ctx budget, overflow, KV bits, cancel."""

import dataclasses
import threading

import mlx.core as mx
import pytest
from mlx_lm.models.cache import QuantizedKVCache
from mlx_lm.utils import common_prefix_len

from engine import ContextTrimmed, Finished, PrefillProgress, SamplingSettings, TextChunk
from engine.session import ChatSession, ContextOverflow

GREEDY = SamplingSettings(temperature=0.0, max_tokens=8)


def turn(session, messages, settings=GREEDY, cancel=None):
    events = list(session.chat(messages, settings, cancel))
    text = "".join(e.text for e in events if isinstance(e, TextChunk))
    stats = events[-1].stats
    trimmed = [e for e in events if isinstance(e, ContextTrimmed)]
    return text, stats, trimmed


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def assert_cache_equals_cold_prefill(session):
    """Logits from the session's (reused + prefilled) cache equal a cold full pass."""
    model, tokens = session.engine.model, session.tokens
    probe = mx.array([[1234]])
    warm = model(probe, cache=session._cache)[0, -1]
    cold = model(mx.array([tokens + [1234]]))[0, -1]
    assert mx.allclose(warm, cold, atol=1e-4, rtol=1e-4).item()


@pytest.fixture
def session(tiny_engine):
    return ChatSession(tiny_engine, num_ctx=2048)


class Scripted:
    """The tiny model, steered to answer with given text; the cache is the real model's."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer, self.script = model, tokenizer, {}

    def __getattr__(self, name):
        return getattr(self.model, name)

    def answer_with(self, prompt: list[int], text: str) -> None:
        ids = [*self.tokenizer.encode(text), self.tokenizer.eos_id]
        self.script = {len(prompt) + i: t for i, t in enumerate(ids)}

    def __call__(self, tokens, cache=None):
        logits = self.model(tokens, cache=cache)
        if cache is None:
            return logits
        nxt = self.script.get(cache[0].offset)  # position of the token these logits choose
        return logits if nxt is None else logits + 1e4 * (mx.arange(logits.shape[-1]) == nxt)


def test_follow_up_prefills_only_the_new_message(tiny_engine):
    tok = tiny_engine.tokenizer
    scripted = Scripted(tiny_engine.model, tok)
    session = ChatSession(dataclasses.replace(tiny_engine, model=scripted), num_ctx=2048)
    first = [user("What is the capital of France?")]
    scripted.answer_with(tok.encode_chat(first), "Paris is the capital of France.")
    a1, s1, _ = turn(session, first)
    assert a1 == "Paris is the capital of France." and s1.finish_reason == "stop"

    second = [*first, assistant(a1), user("And of Italy?")]
    _, s2, _ = turn(session, second)
    ids2 = tok.encode_chat(second)
    last_inst = max(i for i, t in enumerate(ids2) if t == tok.inst_id)
    assert s2.prefilled_tokens == len(ids2) - last_inst  # just [INST]And of Italy?[/INST]
    assert s2.reused_tokens == last_inst
    assert s2.prompt_tokens == len(ids2)
    assert_cache_equals_cold_prefill(session)


def test_system_prompt_moves_so_only_the_last_exchange_is_re_read(session, tiny_engine):
    tok = tiny_engine.tokenizer
    system = {"role": "system", "content": "You are terse."}
    chat = [system, user("One?")]
    a1, _, _ = turn(session, chat)
    chat += [assistant(a1), user("Two?")]
    a2, s2, _ = turn(session, chat)
    assert s2.reused_tokens == 2  # <s>[INST]: the system prompt left the first message
    chat += [assistant(a2), user("Three?")]
    _, s3, _ = turn(session, chat)
    ids3 = tok.encode_chat(chat)
    second_inst = [i for i, t in enumerate(ids3) if t == tok.inst_id][1]
    assert s3.reused_tokens == second_inst + 1  # everything up to the last exchange
    assert s3.prefilled_tokens == len(ids3) - second_inst - 1
    assert_cache_equals_cold_prefill(session)


def test_regenerate_and_edit_reuse_the_prefix(session, tiny_engine):
    tok = tiny_engine.tokenizer
    chat = [user("Tell me a joke."), assistant("Why did the chicken cross the road?"), user("Why?")]
    turn(session, chat)
    _, again, _ = turn(session, chat)  # regenerate: the same prompt
    assert (again.reused_tokens, again.prefilled_tokens) == (len(tok.encode_chat(chat)) - 1, 1)
    edited = [*chat[:2], user("Why, really?")]
    _, s, _ = turn(session, edited)
    expected = common_prefix_len(tok.encode_chat(chat), tok.encode_chat(edited))
    assert s.reused_tokens == expected
    assert s.prefilled_tokens == len(tok.encode_chat(edited)) - expected
    assert_cache_equals_cold_prefill(session)


def test_overflow_drops_oldest_exchanges_and_says_so(tiny_engine):
    session = ChatSession(tiny_engine, num_ctx=512)
    tok = tiny_engine.tokenizer
    system = {"role": "system", "content": "Be kind."}
    chat = [system]
    for i in range(12):
        chat += [
            user(f"Question {i}: " + "tell me more " * 8),
            assistant(f"Answer {i}: " + "sure " * 10),
        ]
    chat.append(user("The newest question"))
    settings = SamplingSettings(temperature=0.0, max_tokens=32)
    assert len(tok.encode_chat(chat)) > 512

    _, stats, trimmed = turn(session, chat, settings)
    (notice,) = trimmed
    assert notice.dropped_messages % 2 == 0 and notice.dropped_messages > 0
    assert notice.num_ctx == 512 and notice.prompt_tokens + 32 <= 512
    kept = [system, *chat[1 + notice.dropped_messages :]]
    assert session.tokens[: stats.prompt_tokens] == tok.encode_chat(kept)
    assert tok.decode(session.tokens).startswith("Question " + str(notice.dropped_messages // 2))
    assert "Be kind." in tok.decode(session.tokens) and "The newest question" in tok.decode(
        session.tokens
    )

    # The next turn keeps the same start, so the prefix is reused instead of re-read.
    a = tok.decode(session.tokens[stats.prompt_tokens :])
    chat += [assistant(a), user("One more")]
    _, s2, trimmed2 = turn(session, chat, settings)
    assert trimmed2[0].dropped_messages == notice.dropped_messages
    assert s2.reused_tokens > stats.prompt_tokens // 2


def test_a_single_message_too_large_raises_with_counts(tiny_engine):
    session = ChatSession(tiny_engine, num_ctx=512)
    huge = [user("lorem ipsum " * 400)]
    with pytest.raises(ContextOverflow) as e:
        session.chat(huge, SamplingSettings(max_tokens=64))
    n = len(tiny_engine.tokenizer.encode_chat(huge))
    assert (e.value.prompt_tokens, e.value.num_ctx, e.value.max_tokens) == (n, 512, 64)
    assert f"{n:,}" in str(e.value) and "512" in str(e.value)
    assert session.tokens == []  # nothing was run


def test_num_ctx_changes_between_turns(tiny_engine):
    session = ChatSession(tiny_engine, num_ctx=1024)
    chat = [user("hello world " * 200)]
    n = len(tiny_engine.tokenizer.encode_chat(chat))
    assert 256 < n < 1024 - 64
    turn(session, chat)
    session.set_num_ctx(2048)  # growing keeps the cache
    _, s, _ = turn(session, chat)
    assert s.reused_tokens == n - 1
    session.set_num_ctx(256)  # shrinking below what the cache holds drops it
    assert session.tokens == []
    with pytest.raises(ContextOverflow):
        session.chat(chat, SamplingSettings(max_tokens=64))
    _, s, _ = turn(session, [user("short")])
    assert s.reused_tokens == 0 and s.finish_reason == "length"


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_kv_cache(tiny_engine, bits):
    session = ChatSession(tiny_engine, num_ctx=2048, kv_bits=bits)
    chat = [user("A question about quantized caches")]
    a, _, _ = turn(session, chat)
    assert all(isinstance(c, QuantizedKVCache) and c.bits == bits for c in session._cache)
    _, s, _ = turn(session, [*chat, assistant(a), user("next")])
    assert s.reused_tokens >= len(tiny_engine.tokenizer.encode_chat(chat))
    session.set_kv_bits(None)
    assert session.tokens == []  # another precision cannot reuse the cache


def test_cancel_during_prefill_leaves_the_session_usable(tiny_engine):
    session = ChatSession(tiny_engine, num_ctx=2048, prefill_step=64)
    chat = [user("long text " * 150)]
    cancel = threading.Event()
    for event in session.chat(chat, GREEDY, cancel):
        if isinstance(event, PrefillProgress):
            cancel.set()
        if isinstance(event, Finished):
            assert event.stats.finish_reason == "cancelled"
    assert len(session.tokens) == 64
    _, s, _ = turn(session, chat)
    assert s.reused_tokens == 64 and s.finish_reason == "length"
    assert_cache_equals_cold_prefill(session)


def test_refuses_a_num_ctx_that_does_not_fit_memory(tiny_engine):
    from engine.memory import MemoryPlanError

    with pytest.raises(MemoryPlanError) as e:
        ChatSession(tiny_engine, num_ctx=131072, available_bytes=tiny_engine.weights_bytes * 2)
    assert e.value.largest_num_ctx and e.value.largest_num_ctx < 131072


def test_closing_an_answer_early_keeps_the_cache_consistent(tiny_engine):
    session = ChatSession(tiny_engine, num_ctx=2048)
    chat = [user("Count to ten.")]
    events = session.chat(chat, SamplingSettings(temperature=0.0, max_tokens=20))
    for event in events:
        if isinstance(event, TextChunk):
            break
    events.close()  # e.g. the app dropped a stale request
    n = len(tiny_engine.tokenizer.encode_chat(chat))
    assert len(session.tokens) == n + 1  # the prompt and the one answer token received
    assert_cache_equals_cold_prefill(session)
    _, s, _ = turn(session, chat)
    assert s.reused_tokens == n - 1
