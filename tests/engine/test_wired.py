"""engine.wired: the wired limit is weights + KV + a margin, capped, restored; a no-op off Metal.

MLX's Metal functions are patched: this machine has no Metal, and the arithmetic and the calls are
what matter (mlx#3186: the maximum itself is what panics the Mac).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import pytest

from engine import wired

GiB = 2**30
MAX_REC = 20 * GiB  # a 32 GB Mac's recommended working set, roughly


class FakeMetal:
    """Records set_wired_limit and synchronize calls; set_wired_limit returns the old limit."""

    def __init__(self, monkeypatch, available: bool = True, old_limit: int = 0):
        self.limit, self.calls = old_limit, []
        monkeypatch.setattr(mx.metal, "is_available", lambda: available)
        monkeypatch.setattr(mx, "device_info", self.device_info, raising=False)
        monkeypatch.setattr(mx, "set_wired_limit", self.set_wired_limit)
        monkeypatch.setattr(mx, "synchronize", self.synchronize)

    def device_info(self) -> dict:
        return {"max_recommended_working_set_size": MAX_REC, "memory_size": 32 * GiB}

    def set_wired_limit(self, limit: int) -> int:
        old, self.limit = self.limit, limit
        self.calls.append(("set", limit))
        return old

    def synchronize(self, stream=None) -> None:
        self.calls.append(("sync", stream))


def _model(nbytes: int) -> nn.Module:
    m = nn.Module()
    m.w = mx.zeros((nbytes // 4,), dtype=mx.float32)
    return m


def test_limit_is_weights_plus_kv_plus_margin():
    weights, kv = 7 * GiB, 2 * GiB
    assert wired.wired_limit_bytes(weights, kv, MAX_REC) == int(9 * GiB * 1.10)
    # A small model gets the floor of the margin, not 10% of almost nothing.
    assert wired.wired_limit_bytes(100 * 2**20, 0, MAX_REC) == 100 * 2**20 + 512 * 2**20


def test_limit_never_exceeds_the_recommended_maximum():
    assert wired.wired_limit_bytes(16 * GiB, 8 * GiB, MAX_REC) == MAX_REC
    assert wired.wired_limit_bytes(MAX_REC, 0, MAX_REC) == MAX_REC  # the margin is cut, not added
    assert wired.wired_limit_bytes(-5, -5, MAX_REC) == wired.MIN_MARGIN_BYTES  # nonsense is 0


def test_sets_then_restores_the_old_limit(monkeypatch):
    metal = FakeMetal(monkeypatch, old_limit=3 * GiB)
    model, stream = _model(4 * 2**20), object()
    with wired.wired_limit(model, kv_bytes=GiB, streams=[stream]) as limit:
        assert limit == 4 * 2**20 + GiB + wired.MIN_MARGIN_BYTES < MAX_REC
        assert metal.calls == [("set", limit)] and metal.limit == limit
    # The stream is synchronized before the old limit comes back (never mid async eval).
    assert metal.calls == [("set", limit), ("sync", stream), ("set", 3 * GiB)]


def test_restores_when_generation_fails(monkeypatch):
    metal = FakeMetal(monkeypatch, old_limit=0)
    with pytest.raises(RuntimeError, match="boom"), wired.wired_limit(_model(1024)):
        raise RuntimeError("boom")
    assert metal.limit == 0 and metal.calls[-1] == ("set", 0)
    assert ("sync", None) in metal.calls  # no streams given: synchronize everything


def test_huge_kv_is_capped_at_the_maximum(monkeypatch):
    metal = FakeMetal(monkeypatch)
    with wired.wired_limit(_model(1024), kv_bytes=100 * GiB) as limit:
        assert limit == MAX_REC
    assert max(v for k, v in metal.calls if k == "set") == MAX_REC


def test_no_op_without_metal(monkeypatch):
    metal = FakeMetal(monkeypatch, available=False)
    with wired.wired_limit(_model(1024), kv_bytes=GiB) as limit:
        assert limit is None
    assert metal.calls == []


def test_older_mlx_reads_device_info_from_mx_metal(monkeypatch):
    monkeypatch.delattr(mx, "device_info", raising=False)
    monkeypatch.setattr(mx.metal, "device_info", lambda: {"max_recommended_working_set_size": 42})
    assert wired.max_recommended_working_set() == 42


def test_stream_tokens_wires_the_kv_it_is_given(monkeypatch, tiny_engine):
    """The generate loop uses our limit (not mlx-lm's maximum) and passes kv_bytes through."""
    from engine import generate

    seen = []
    real = wired.wired_limit

    def spy(model, kv_bytes=0, streams=None):
        seen.append(kv_bytes)
        return real(model, kv_bytes, streams)

    monkeypatch.setattr(generate, "wired_limit", spy)
    loaded = tiny_engine
    ids = [loaded.tokenizer.bos_id, *loaded.tokenizer.encode("Hi")]
    settings = generate.SamplingSettings(max_tokens=2, temperature=0.0)
    cache = loaded.model.make_cache()
    events = list(
        generate.stream_tokens(loaded.model, loaded.tokenizer, ids, cache, settings, kv_bytes=GiB)
    )
    assert seen == [GiB] and events
    list(
        generate.stream_tokens(
            loaded.model, loaded.tokenizer, ids, loaded.model.make_cache(), settings
        )
    )
    assert seen == [GiB, 0]  # callers that pass nothing still work: weights + margin
