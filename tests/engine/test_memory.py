"""The memory plan: Nemo's figures exact, the tiny model's planned KV equal to mlx-lm's live cache."""

from __future__ import annotations

import re

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten
from mlx_lm.models.cache import QuantizedKVCache

from engine import memory
from engine.memory import (
    NEMO_4BIT_WEIGHTS_BYTES,
    MemoryPlanError,
    bits_that_fit,
    check,
    kv_bytes_per_token,
    largest_num_ctx,
    plan,
)
from engine.synthetic import preset_config, random_model

KiB, MiB, GiB = 1024, 1024**2, 1024**3
NEMO = preset_config("nemo-12b")
BIG = 10**15  # "available" that anything fits in


@pytest.mark.parametrize(
    "bits, per_token, at_128k",
    [
        (None, 160 * KiB, 20 * GiB),
        (8, 85 * KiB, 10_880 * MiB),  # 10.625 GiB
        (4, 45 * KiB, 5_760 * MiB),  # 5.625 GiB
    ],
)
def test_nemo_kv_cache_sizes_are_exact(bits, per_token, at_128k):
    assert kv_bytes_per_token(NEMO, bits) == per_token
    p = plan(NEMO, NEMO_4BIT_WEIGHTS_BYTES, 131_072, bits, available=BIG)
    assert p.kv_bytes == at_128k
    assert p.cache_tokens == 131_072


def test_nemo_weights_constant_and_fp32_cache():
    assert NEMO.num_parameters == 12_247_782_400
    assert NEMO_4BIT_WEIGHTS_BYTES == 6_889_377_600  # the ≈ 6.89 GB of DESIGN.md
    # The CPU backend computes in float32: twice the fp16 cache, and float32 scales/biases.
    assert kv_bytes_per_token(NEMO, None, dtype_bytes=4) == 320 * KiB
    assert kv_bytes_per_token(NEMO, 8, dtype_bytes=4) == 2 * 40 * 8 * (128 + 2 * 2 * 4)


@pytest.mark.parametrize("num_ctx, tokens", [(1, 256), (255, 256), (256, 256), (257, 512)])
def test_kv_is_allocated_in_steps_of_256(num_ctx, tokens):
    p = plan(NEMO, 0, num_ctx, available=BIG)
    assert p.cache_tokens == tokens
    assert p.kv_bytes == tokens * 160 * KiB


# --- the plan against mlx-lm's real caches, filled by running the tiny model --------------------

# The tiny preset's head_dim is 64, so a group-64 quantized cache applies.
TINY = preset_config("tiny")
DTYPE_BYTES = 4  # float32 on the CPU backend


@pytest.fixture(scope="module")
def tiny_model():
    return random_model(TINY)


def make_cache(model, bits):
    if bits is None:
        return model.make_cache()
    return [QuantizedKVCache(group_size=64, bits=bits) for _ in model.layers]


def prefill(model, cache, n, step=256):
    """Like engine.generate.prefill: chunks of `step` tokens, evaluating only the cache."""
    tokens = mx.random.randint(1000, 131_072, (n,), key=mx.random.key(n))
    for start in range(0, n, step):
        model(tokens[start : start + step][None], cache=cache)
        mx.eval([c.state for c in cache])


@pytest.mark.parametrize("bits", [None, 8, 4])
def test_planned_kv_equals_live_cache_nbytes(tiny_model, bits):
    assert memory.activation_dtype_bytes() == DTYPE_BYTES
    for n in (1, 255, 256, 257):
        cache = make_cache(tiny_model, bits)
        prefill(tiny_model, cache, n)
        assert cache[0].offset == n
        live = sum(c.nbytes for c in cache)
        planned = plan(TINY, 0, n, bits, dtype_bytes=DTYPE_BYTES, available=BIG).kv_bytes
        assert planned == live, (n, bits)
    # One decode step past a full step grows the cache by another 256 tokens, as planned.
    cache = make_cache(tiny_model, bits)
    prefill(tiny_model, cache, 512)
    prefill(tiny_model, cache, 1)
    assert (
        sum(c.nbytes for c in cache)
        == plan(TINY, 0, 513, bits, dtype_bytes=4, available=BIG).kv_bytes
    )


@pytest.mark.parametrize("bits", [None, 8])
def test_plan_bounds_the_measured_peak_of_a_prefill(tiny_model, bits):
    n = 512
    cache = make_cache(tiny_model, bits)
    mx.clear_cache()
    mx.reset_peak_memory()
    before = mx.get_active_memory()  # the weights
    prefill(tiny_model, cache, n)
    used = mx.get_peak_memory() - before
    weights = sum(v.nbytes for _, v in tree_flatten(tiny_model.parameters()))
    p = plan(TINY, weights, n, bits, dtype_bytes=4, prefill_step=256, available=BIG)
    assert before >= weights
    assert used <= p.kv_bytes + p.working_bytes
    # ...and is not a wild over-estimate either.
    assert p.kv_bytes + p.working_bytes < 2 * used


# --- refusing what does not fit ------------------------------------------------------------------

GB = 10**9
NEMO_MAC = dict(dtype_bytes=2, prefill_step=512, fused_attention=True)  # Metal, fp16


def test_too_large_num_ctx_is_refused_with_what_would_fit():
    with pytest.raises(MemoryPlanError) as info:
        check(NEMO, NEMO_4BIT_WEIGHTS_BYTES, 131_072, None, available=22 * GB, **NEMO_MAC)
    e = info.value
    assert (e.num_ctx, e.kv_bits, e.plan.fits) == (131_072, None, False)
    assert e.plan.total_bytes > 22 * GB
    assert e.largest_num_ctx % 256 == 0 and 0 < e.largest_num_ctx < 131_072
    assert plan(
        NEMO, NEMO_4BIT_WEIGHTS_BYTES, e.largest_num_ctx, available=22 * GB, **NEMO_MAC
    ).fits
    # 8-bit does not fit (mlx-lm's quantized attention materializes the scores); 4-bit does.
    assert e.suggested_kv_bits == 4
    assert e.suggested_plan.fits and e.suggested_plan.kv_bits == 4
    msg = str(e)
    assert msg.startswith("num_ctx 131,072 (fp16 KV cache) needs ")
    assert f"{e.plan.total_bytes / GB:.1f} GB" in msg and "can give 22.0 GB" in msg
    assert f"Largest that fits: {e.largest_num_ctx:,} tokens" in msg
    assert f"or use a 4-bit KV cache ({e.suggested_plan.total_bytes / GB:.1f} GB)." in msg


def test_refusal_without_a_kv_bits_suggestion():
    with pytest.raises(MemoryPlanError) as info:
        check(NEMO, NEMO_4BIT_WEIGHTS_BYTES, 131_072, 4, available=12 * GB, **NEMO_MAC)
    e = info.value
    assert e.suggested_kv_bits is None and "KV cache (" not in str(e)
    assert re.search(r"Largest that fits: [\d,]+ tokens\.$", str(e))


def test_weights_that_do_not_fit_are_named():
    with pytest.raises(MemoryPlanError, match=r"weights alone need 6\.9 GB .* can give 5\.0 GB"):
        check(NEMO, NEMO_4BIT_WEIGHTS_BYTES, 8192, available=5 * GB, **NEMO_MAC)
    assert largest_num_ctx(NEMO, NEMO_4BIT_WEIGHTS_BYTES, None, 5 * GB, **NEMO_MAC) == 0


def test_check_returns_the_plan_when_it_fits():
    p = check(NEMO, NEMO_4BIT_WEIGHTS_BYTES, 8192, available=16 * GB, **NEMO_MAC)
    assert p.fits and p.headroom == 16 * GB - p.total_bytes > 0


@pytest.mark.parametrize("bits", [None, 8, 4])
@pytest.mark.parametrize("multiple", [256, 1024])
def test_largest_num_ctx_fits_and_one_more_step_does_not(bits, multiple):
    kw = dict(available=16 * GB, **NEMO_MAC)
    n = largest_num_ctx(NEMO, NEMO_4BIT_WEIGHTS_BYTES, bits, multiple=multiple, **kw)
    assert n > 0 and n % multiple == 0
    assert plan(NEMO, NEMO_4BIT_WEIGHTS_BYTES, n, bits, **kw).fits
    assert not plan(NEMO, NEMO_4BIT_WEIGHTS_BYTES, n + multiple, bits, **kw).fits


def test_largest_num_ctx_is_capped_by_the_model():
    assert largest_num_ctx(NEMO, 0, None, BIG) == NEMO.max_position_embeddings // 256 * 256
    assert largest_num_ctx(NEMO, 0, None, BIG, limit=131_072) == 131_072


def test_bits_that_fit():
    w, kw = NEMO_4BIT_WEIGHTS_BYTES, NEMO_MAC
    assert bits_that_fit(NEMO, w, 8192, 16 * GB, **kw) is None
    assert bits_that_fit(NEMO, w, 49_152, 15 * GB, **kw) == 8  # fp16 needs 15.2 GB
    assert bits_that_fit(NEMO, w, 65_536, 16 * GB, **kw) == 4
    with pytest.raises(MemoryPlanError):
        bits_that_fit(NEMO, w, 131_072, 12 * GB, **kw)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_ctx"):
        plan(NEMO, 0, 0, available=BIG)
    with pytest.raises(ValueError, match="kv_bits"):
        plan(NEMO, 0, 1024, 3, available=BIG)
    # head_dim 24 cannot be quantized in groups of 64; mlx-lm would crash.
    with pytest.raises(ValueError, match="head_dim"):
        plan(preset_config("tiny", head_dim=24), 0, 1024, 8, available=BIG)


def test_describe():
    p = plan(NEMO, NEMO_4BIT_WEIGHTS_BYTES, 8192, None, available=12 * GB, fused_attention=True)
    assert p.describe() == (
        "6.9 GB weights + 1.3 GB KV cache (8K, fp16) + 0.3 GB working = 8.6 GB of 12.0 GB available"
    )
    q = plan(NEMO, NEMO_4BIT_WEIGHTS_BYTES, 5000, 4, available=12 * GB, prefill_step=512)
    assert "KV cache (5,000, 4-bit)" in q.describe()


def test_working_memory_counts_unfused_attention_scores():
    fused = plan(NEMO, 0, 32_768, None, available=BIG, fused_attention=True)
    unfused = plan(NEMO, 0, 32_768, None, available=BIG, fused_attention=False)
    # scores + softmax: 2 x fp16 x 32 heads x 2048-token chunk x 32K cache
    assert unfused.working_bytes - fused.working_bytes == 2 * 2 * 32 * 2048 * 32_768


def test_available_memory_is_positive_and_at_most_ram():
    avail = memory.available_memory()
    with open("/proc/meminfo") as f:
        total_kib = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    assert 0 < avail < total_kib * 1024
    p = plan(TINY, 0, 1024)  # available=None asks the machine
    assert 0 < p.available_bytes <= total_kib * 1024
