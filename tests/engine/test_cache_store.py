"""The cache store: per-conversation KV caches in memory (LRU under a budget) and on disk."""

from __future__ import annotations

import errno
import io
import json
import logging
import threading
import time

import mlx.core as mx
import pytest
from mlx_lm.models.cache import load_prompt_cache, make_prompt_cache
from mlx_lm.utils import common_prefix_len

from engine import SamplingSettings
from engine.backend import ChatRequest, CompletionRequest, GenerationOptions, collect, messages_of
from engine.cache_snapshot import read_header
from engine.cache_store import CacheSettings
from engine.local_backend import LocalBackend
from engine.memory import cache_budget, plan

GREEDY = SamplingSettings(temperature=0.0, max_tokens=6)


def options(kv_bits=None):
    return GenerationOptions(GREEDY, num_ctx=2048, kv_bits=kv_bits)


def backend_in(tiny_engine, folder, **settings):
    return LocalBackend(tiny_engine, CacheSettings(dir=folder, **settings))


def ask(backend, key, messages, kv_bits=None):
    request = ChatRequest(messages_of(messages), options(kv_bits), key)
    return collect(backend.chat(request, threading.Event()))


def user(text):
    return {"role": "user", "content": text}


def grow(backend, key, questions, kv_bits=None):
    """A chat of several turns; returns the messages and the last stats."""
    chat = []
    for q in questions:
        chat.append(user(q))
        text, stats = ask(backend, key, chat, kv_bits)
        chat.append({"role": "assistant", "content": text or "ok"})
    return chat, stats


def cold_logits(engine, tokens, kv_bits):
    from engine.session import ChatSession

    cache = ChatSession(engine, num_ctx=2048, kv_bits=kv_bits)._make_cache()
    engine.model(mx.array([tokens]), cache=cache)  # logits of the prompt are never computed
    mx.eval([c.state for c in cache])
    return engine.model(mx.array([[1234]]), cache=cache)[0, -1]


def assert_state_matches_cold_prefill(engine, state, kv_bits):
    assert state.tokens and state.cache[0].offset == len(state.tokens)
    warm = engine.model(mx.array([[1234]]), cache=state.cache)[0, -1]
    cold = cold_logits(engine, state.tokens, kv_bits)
    tol = 1e-4 if kv_bits is None else 1e-3
    assert mx.allclose(warm, cold, atol=tol, rtol=tol).item()


@pytest.mark.parametrize("kv_bits", [None, 8, 4])
@pytest.mark.parametrize("path", ["memory", "disk"])
def test_restored_cache_gives_the_logits_of_a_cold_prefill(tiny_engine, tmp_path, path, kv_bits):
    backend = backend_in(tiny_engine, tmp_path)
    chat, _ = grow(backend, "chat:a", ["Tell me about caches.", "And snapshots?"], kv_bits)
    if path == "disk":
        backend.close()  # quitting writes the snapshot
        assert backend.caches.snapshot_path("chat:a").exists()
        backend = backend_in(tiny_engine, tmp_path)  # as after a restart
    else:
        ask(backend, "chat:b", [user("another chat")], kv_bits)  # a is idle in memory now
    state = backend.caches.take("chat:a", kv_bits)
    assert backend.caches.timings.discarded == []
    assert_state_matches_cold_prefill(tiny_engine, state, kv_bits)
    # The next turn prefills only the new message (and the </s> a length-stopped answer lacks).
    held = list(state.tokens)
    chat.append(user("One more question."))
    _, stats = ask(backend, "chat:a", chat, kv_bits)
    ids = tiny_engine.tokenizer.encode_chat(chat)
    last_inst = max(i for i, t in enumerate(ids) if t == tiny_engine.tokenizer.inst_id)
    assert stats.reused_tokens == common_prefix_len(held, ids) >= last_inst - 1
    assert stats.prefilled_tokens == len(ids) - stats.reused_tokens


def test_a_snapshot_is_an_mlx_lm_prompt_cache(tiny_engine, tiny_model_dir, tmp_path):
    """mlx-lm's own loader and model, on the same weights, continue from our snapshot."""
    from tests.engine.mlx_lm_ref import reference_model

    backend = backend_in(tiny_engine, tmp_path)
    grow(backend, "chat:a", ["Hello there, reference."])
    backend.close()
    path = backend.caches.snapshot_path("chat:a")
    cache, meta = load_prompt_cache(str(path), return_metadata=True)
    tokens = json.loads(meta["tokens"])
    ref = reference_model(tiny_model_dir)
    warm = ref(mx.array([[1234]]), cache=cache)[0, -1]
    fresh = make_prompt_cache(ref)
    ref(mx.array([tokens]), cache=fresh)
    mx.eval([c.state for c in fresh])
    cold = ref(mx.array([[1234]]), cache=fresh)[0, -1]
    assert mx.allclose(warm, cold, atol=1e-4, rtol=1e-4).item()


def test_switching_chats_keeps_both_caches(tiny_engine, tmp_path):
    backend = backend_in(tiny_engine, tmp_path)
    a, _ = grow(backend, "chat:a", ["First chat, first question."])
    b, _ = grow(backend, "chat:b", ["Second chat, first question."])
    for key, chat in (("chat:a", a), ("chat:b", b)):
        n = len(tiny_engine.tokenizer.encode_chat(chat[:-1]))  # the last turn's prompt
        _, stats = ask(backend, key, [*chat, user("follow-up")])
        assert stats.reused_tokens >= n - 1
    assert list(tmp_path.rglob("*.safetensors")) == []  # nothing written before idle/evict/quit


def test_quick_prompt_summary_and_api_leave_the_chat_cache_intact(tiny_engine, tmp_path):
    backend = backend_in(tiny_engine, tmp_path)
    chat, _ = grow(backend, "chat:a", ["A long question about the weather " * 8])
    held = backend.caches.take("chat:a", None).tokens[:]
    ask(backend, "quick", [user("quick question")])
    summarize = backend.generate_fn(options())
    collect(summarize([user("Summarize this part " * 4)], 2, None))
    # A stateless API request sharing the chat's prefix reuses a copy of it.
    _, api = ask(backend, None, [*chat, user("API follow-up")])
    assert api.reused_tokens >= len(tiny_engine.tokenizer.encode_chat(chat[:-1])) - 1
    _, raw = collect(
        backend.complete(CompletionRequest("raw text " * 4, options()), threading.Event())
    )
    assert raw.finish_reason in ("stop", "length")
    state = backend.caches.take("chat:a", None)
    assert state.tokens == held
    assert_state_matches_cold_prefill(tiny_engine, state, None)


def test_eviction_is_lru_and_the_budget_is_never_exceeded(tiny_engine, tmp_path):
    backend = backend_in(tiny_engine, tmp_path)
    grow(backend, "probe", ["x"])
    one = backend.caches.take("probe", None).nbytes  # one 256-token step of the tiny model
    backend.forget("probe")
    backend.caches.configure(CacheSettings(dir=tmp_path, memory_budget=2 * one + one // 2))
    store = backend.caches
    for key in ("chat:a", "chat:b", "chat:c", "chat:d"):
        grow(backend, key, [f"question for {key}"])
        usage = store.usage()
        assert usage.memory_bytes <= usage.memory_budget
    # The active chat (d) is the plan's KV; two idle ones fit: a, the oldest, went to disk.
    assert store.keys() == ["chat:b", "chat:c", "chat:d"]
    assert store.snapshot_path("chat:a").exists()
    assert not store.snapshot_path("chat:b").exists()
    _, stats = ask(backend, "chat:a", [user("question for chat:a"), user("again")])
    assert stats.reused_tokens > 0  # resumed from its snapshot
    assert store.keys() == ["chat:c", "chat:d", "chat:a"]  # b was the least recently used
    assert store.usage().memory_bytes <= store.usage().memory_budget


def test_disk_budget_drops_the_least_recently_used_snapshot(tiny_engine, tmp_path):
    backend = backend_in(tiny_engine, tmp_path)
    for key in ("chat:a", "chat:b", "chat:c"):
        grow(backend, key, [f"question for {key}"])
    backend.close()
    sizes = {k: backend.caches.snapshot_path(k).stat().st_size for k in ("chat:a", "chat:b")}
    backend = backend_in(tiny_engine, tmp_path)
    backend.caches.take("chat:a", None)  # a is used again: b is now the oldest on disk
    budget = backend.caches.usage().disk_bytes - sizes["chat:b"] // 2
    backend.caches.configure(CacheSettings(dir=tmp_path, disk_budget=budget))
    assert not backend.caches.snapshot_path("chat:b").exists()
    assert backend.caches.snapshot_path("chat:a").exists()
    assert backend.caches.usage().disk_bytes <= budget


def _rewrite_metadata(path, **changes):
    arrays, meta = mx.load(str(path), return_metadata=True)
    meta.update({f"0.{k}": v for k, v in changes.items()})
    mx.save_safetensors(str(path), arrays, meta)


BREAKAGES = {
    "corrupt": lambda p: p.write_bytes(b"\xff" * 64 + p.read_bytes()[64:]),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 3]),
    "wrong-model": lambda p: _rewrite_metadata(p, model="0" * 64),
    "wrong-tokenizer": lambda p: _rewrite_metadata(p, tokenizer="0" * 64),
    "wrong-kv_bits": None,  # the fp snapshot asked for with an 8-bit cache
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_bad_snapshot_is_discarded_and_the_turn_still_answers(
    tiny_engine, tmp_path, caplog, breakage
):
    backend = backend_in(tiny_engine, tmp_path)
    chat, _ = grow(backend, "chat:a", ["Question before the restart."])
    backend.close()
    path = backend.caches.snapshot_path("chat:a")
    if BREAKAGES[breakage] is not None:
        BREAKAGES[breakage](path)
    kv_bits = 8 if breakage == "wrong-kv_bits" else None
    backend = backend_in(tiny_engine, tmp_path)
    with caplog.at_level(logging.WARNING, logger="engine.cache_store"):
        text, stats = ask(backend, "chat:a", [*chat, user("after")], kv_bits)
    assert stats.reused_tokens == 0 and stats.finish_reason in ("stop", "length")
    assert not path.exists()
    (reason,) = backend.caches.timings.discarded
    expected = {"truncated": "truncated", "wrong-kv_bits": "kv_bits"}
    assert expected.get(breakage, breakage.removeprefix("wrong-")) in reason
    assert "discarding KV-cache snapshot" in caplog.text and reason in caplog.text


def test_disk_full_loses_only_the_snapshot(tiny_engine, tmp_path, monkeypatch):
    backend = backend_in(tiny_engine, tmp_path)
    chat, _ = grow(backend, "chat:a", ["First question."])
    backend.close()
    path = backend.caches.snapshot_path("chat:a")
    before = path.read_bytes()

    def full_disk(file_name, cache, metadata=None):
        with open(file_name, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    backend = backend_in(tiny_engine, tmp_path)
    chat.append(user("Second question."))
    _, stats = ask(backend, "chat:a", chat)
    assert stats.reused_tokens > 0
    monkeypatch.setattr("engine.cache_snapshot.save_prompt_cache", full_disk)
    assert backend.caches.idle(now=time.monotonic() + 1e6) == 0  # failed, logged, no crash
    assert backend.caches.take("chat:a", None).tokens  # the memory cache is still there
    backend.close()
    assert path.read_bytes() == before  # the older snapshot is untouched
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    monkeypatch.undo()
    backend = backend_in(tiny_engine, tmp_path)
    _, again = ask(backend, "chat:a", chat)  # resumes from the older snapshot
    held, ids = read_header(path).tokens, tiny_engine.tokenizer.encode_chat(chat)
    assert again.reused_tokens == common_prefix_len(held, ids) > 0


def test_deleting_a_conversation_removes_its_snapshot(tiny_engine, tmp_path):
    backend = backend_in(tiny_engine, tmp_path)
    grow(backend, "chat:a", ["To be deleted."])
    grow(backend, "chat:b", ["To be kept."])
    backend.close()
    backend = backend_in(tiny_engine, tmp_path)
    backend.forget("chat:a")
    assert not backend.caches.snapshot_path("chat:a").exists()
    assert backend.caches.snapshot_path("chat:b").exists()
    _, stats = ask(backend, "chat:a", [user("To be deleted.")])
    assert stats.reused_tokens == 0


def test_the_off_switch_writes_nothing(tiny_engine, tmp_path):
    backend = backend_in(tiny_engine, tmp_path / "caches", enabled=False)
    backend.caches.configure(CacheSettings(dir=tmp_path / "caches", memory_budget=0, enabled=False))
    for key in ("chat:a", "chat:b"):
        grow(backend, key, [f"question for {key}", "and another"])
    backend.caches.idle(now=time.monotonic() + 1e6)
    backend.close()
    assert not (tmp_path / "caches").exists()
    assert backend.caches.usage().disk_bytes == 0


def test_idle_conversations_are_snapshotted_once_after_a_while(tiny_engine, tmp_path):
    backend = backend_in(tiny_engine, tmp_path, idle_after_s=60.0)
    grow(backend, "chat:a", ["An idle chat."])
    now = time.monotonic()
    assert backend.caches.idle(now=now) == 0  # just used: not yet
    assert backend.caches.idle(now=now + 61) == 1
    assert backend.caches.idle(now=now + 122) == 0  # unchanged since: not again
    assert backend.caches.snapshot_path("chat:a").exists()
    backend.caches.clear()
    assert backend.caches.usage().disk_bytes == 0 and backend.caches.keys() == []


def test_the_engine_thread_calls_idle_when_nothing_is_queued(monkeypatch):
    from engine import service as service_module

    monkeypatch.setattr(service_module, "IDLE_TICK_S", 0.05)

    class Idle:
        info, calls = None, 0

        def idle(self):
            Idle.calls += 1

        def close(self):
            pass

    svc = service_module.EngineService(Idle(), prepare=False)
    deadline = time.monotonic() + 60
    while Idle.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    svc.shutdown()
    assert Idle.calls >= 2


def test_the_memory_budget_is_what_the_plan_leaves(tiny_engine):
    p = plan(tiny_engine.config, tiny_engine.weights_bytes, 2048, available=10**9)
    assert cache_budget(p) == p.headroom - 10**9 // 20 == p.cache_budget_bytes
    tight = plan(tiny_engine.config, tiny_engine.weights_bytes, 2048, available=p.total_bytes)
    assert cache_budget(tight) == 0


def test_cli_conversation_keeps_history_and_cache_across_runs(
    tiny_model_dir, tmp_path, monkeypatch
):
    from engine.cli.main import main

    args = ["chat", "--model", str(tiny_model_dir), "--conversation", "demo"]
    args += ["--data-dir", str(tmp_path), "--max-tokens", "4", "--temperature", "0"]
    runs = []
    for lines in ("first question\n\n", "second question\n\n"):
        monkeypatch.setattr("sys.stdin", io.StringIO(lines))
        err = io.StringIO()
        monkeypatch.setattr("sys.stderr", err)
        assert main(args) == 0
        runs.append([ln for ln in err.getvalue().splitlines() if "prompt tokens" in ln])
    history = json.loads((tmp_path / "conversations" / "demo.json").read_text())["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert "(0 reused)" in runs[0][0]
    assert "(0 reused)" not in runs[1][0]  # the restart resumed from the snapshot
    assert list((tmp_path / "kv-cache").rglob("*.safetensors"))
