"""Memory plan: weights + KV cache(num_ctx, kv_bits) + working memory vs what this machine can give.

Nemo Chat refuses a num_ctx that would over-allocate (and swap or crash the Mac) and tells the
user, in numbers, what a num_ctx costs and what would fit instead.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from engine.config import ModelConfig
from engine.sampling import prefill_step_for
from engine.units import gb


def _mx():  # noqa: ANN202 - mlx.core, imported on first use: plans for a server need no MLX
    import mlx.core as mx

    return mx


# mlx-lm's caches grow in whole steps of 256 tokens, so a cache holds round_up(tokens, 256).
# KVCache.step, written out: importing mlx_lm loads transformers (seconds) and the app's window
# must not wait for it (tests/app/test_main_startup.py checks the two agree).
KV_STEP = 256

KV_BITS = (8, 4, 2)  # powers of two pack exactly into mlx-lm's uint32 words
NEMO_PARAMETERS = 12_247_782_400
NEMO_4BIT_WEIGHTS_BYTES = NEMO_PARAMETERS * 9 // 16  # 4-bit g64: 0.5625 B/param
# Keep 10% back: the plan counts MLX's arrays only, not Python, Qt, MLX's buffer cache and
# allocator rounding, nor the other apps that the OS will not page out for us.
MARGIN_FRACTION = 0.10
# Idle conversation caches may use what the plan leaves, less this share of what is available:
# freeing a cache is cheap, swapping is not.
CACHE_MARGIN_FRACTION = 0.05
# Metal's fused attention kernel (steel attention) handles prefill for these head dims; it never
# materializes the scores. mlx-lm's quantized-KV attention and the CPU fallback always do.
FUSED_HEAD_DIMS = (64, 80, 128)


def _check_kv_bits(config: ModelConfig, kv_bits: int | None, group_size: int) -> None:
    if kv_bits is None:
        return
    if kv_bits not in KV_BITS:
        raise ValueError(f"kv_bits must be None (fp) or one of {KV_BITS}, got {kv_bits!r}")
    if config.head_dim % group_size:
        raise ValueError(
            f"a {kv_bits}-bit KV cache needs head_dim ({config.head_dim}) to be a multiple of "
            f"the quantization group size ({group_size})"
        )


def kv_bytes_per_token(
    config: ModelConfig, kv_bits: int | None, dtype_bytes: int = 2, group_size: int = 64
) -> float:
    """K and V of every layer for one token (Nemo: fp16 160 KiB, 8-bit 85 KiB, 4-bit 45 KiB)."""
    _check_kv_bits(config, kv_bits, group_size)
    d = config.head_dim
    if kv_bits is None:
        per_head = d * dtype_bytes
    else:
        # QuantizedKVCache: packed values plus a scale and a bias per group in the activation dtype.
        per_head = d * kv_bits // 8 + 2 * (d // group_size) * dtype_bytes
    return float(2 * config.num_hidden_layers * config.num_key_value_heads * per_head)


def cache_tokens(num_ctx: int) -> int:
    """Tokens a cache filled to num_ctx really holds: mlx-lm allocates whole 256-token steps.

    Exact for a cache filled from empty in chunks that are multiples of 256 (engine.generate).
    A trimmed cache that grows again (prefix reuse) can hold up to num_ctx + 255: the margin covers it.
    """
    return -(-num_ctx // KV_STEP) * KV_STEP


def fused_attention_available(config: ModelConfig) -> bool:
    return _mx().metal.is_available() and config.head_dim in FUSED_HEAD_DIMS


def activation_dtype_bytes() -> int:
    """The engine computes in float32 on the CPU backend and in the checkpoint's 16-bit dtype on a GPU."""
    return 4 if _mx().default_device().type == _mx().cpu else 2


def _ctx_label(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 else f"{n:,}"


def _where() -> str:
    return "this Mac" if sys.platform == "darwin" else "this machine"


@dataclass(frozen=True)
class MemoryPlan:
    num_ctx: int
    kv_bits: int | None
    dtype_bytes: int
    cache_tokens: int
    weights_bytes: int
    kv_bytes: int
    working_bytes: int
    total_bytes: int
    available_bytes: int
    fits: bool
    headroom: int  # available - total; negative when it does not fit

    @property
    def cache_budget_bytes(self) -> int:
        """Bytes idle conversations' KV caches may keep in memory beside this plan."""
        return cache_budget(self)

    def kv_label(self) -> str:
        if self.kv_bits is not None:
            return f"{self.kv_bits}-bit"
        return {2: "fp16", 4: "fp32"}.get(self.dtype_bytes, f"{8 * self.dtype_bytes}-bit fp")

    def describe(self) -> str:
        """One line for the UI: what each part costs and whether it fits."""
        return (
            f"{gb(self.weights_bytes)} weights + {gb(self.kv_bytes)} KV cache "
            f"({_ctx_label(self.num_ctx)}, {self.kv_label()}) + {gb(self.working_bytes)} working"
            f" = {gb(self.total_bytes)} of {gb(self.available_bytes)} available"
        )


def plan(
    config: ModelConfig,
    weights_bytes: int,
    num_ctx: int,
    kv_bits: int | None = None,
    *,
    dtype_bytes: int = 2,
    prefill_step: int | None = None,
    available: int | None = None,
    group_size: int = 64,
    fused_attention: bool | None = None,
) -> MemoryPlan:
    """What running with this num_ctx and KV cache needs, against `available` (default: this machine).

    fused_attention: whether fp-cache prefill attention runs in a kernel that never materializes
    the scores; None decides from the backend (Metal, head_dim 64/80/128). A quantized cache never does.
    """
    if not isinstance(num_ctx, int) or num_ctx <= 0:
        raise ValueError(f"num_ctx must be a positive number of tokens, got {num_ctx!r}")
    if prefill_step is None:  # the engine's own choice for this cache
        prefill_step = prefill_step_for(kv_bits)
    if prefill_step <= 0:
        raise ValueError(f"prefill_step must be positive, got {prefill_step!r}")
    # A sliding-window config would need less (RotatingKVCache); the full cache is a safe bound.
    tokens = cache_tokens(num_ctx)
    kv = int(tokens * kv_bytes_per_token(config, kv_bits, dtype_bytes, group_size))
    if fused_attention is None:
        fused_attention = fused_attention_available(config)
    fused_attention = fused_attention and kv_bits is None  # mlx-lm's quantized SDPA is unfused

    c, h, i = min(prefill_step, num_ctx), config.hidden_size, config.intermediate_size
    heads, kv_heads, d = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    # One prefill chunk of c tokens: 4 hidden-state rows, MLP gate/up/product, q/k/v before+after RoPE,
    # unfused scores+softmax (heads x c x cache), one layer's cache copied as it grows, f32 logits+logprobs.
    working = dtype_bytes * c * (4 * h + 3 * i + 2 * (heads + 2 * kv_heads) * d)
    if not fused_attention:
        working += 2 * dtype_bytes * heads * c * tokens
    working += kv // config.num_hidden_layers + 2 * 4 * config.vocab_size

    if available is None:
        available = available_memory()
    total = weights_bytes + kv + working
    return MemoryPlan(
        num_ctx=num_ctx,
        kv_bits=kv_bits,
        dtype_bytes=dtype_bytes,
        cache_tokens=tokens,
        weights_bytes=weights_bytes,
        kv_bytes=kv,
        working_bytes=working,
        total_bytes=total,
        available_bytes=available,
        fits=total <= available,
        headroom=available - total,
    )


def cache_budget(plan: MemoryPlan, margin_fraction: float = CACHE_MARGIN_FRACTION) -> int:
    """What is left after weights, the active num_ctx's KV and working buffers, less a margin:
    the byte budget for caches of conversations not in use (engine.cache_store); never negative."""
    return max(0, plan.headroom - int(plan.available_bytes * margin_fraction))


def largest_num_ctx(
    config: ModelConfig,
    weights_bytes: int,
    kv_bits: int | None,
    available: int,
    *,
    multiple: int = KV_STEP,
    limit: int | None = None,
    **plan_kwargs: Any,
) -> int:
    """The largest multiple of `multiple` (up to `limit`, default the model's max positions) that fits; 0 if none."""
    limit = config.max_position_embeddings if limit is None else limit

    def fits(k: int) -> bool:
        p = plan(config, weights_bytes, k * multiple, kv_bits, available=available, **plan_kwargs)
        return p.fits

    # The total grows with num_ctx, so bisect on k where num_ctx = k * multiple.
    lo, hi = 0, limit // multiple
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo * multiple


class MemoryPlanError(ValueError):
    """A num_ctx / KV cache that does not fit, with what would."""

    def __init__(
        self,
        num_ctx: int,
        kv_bits: int | None,
        plan: MemoryPlan,
        largest_num_ctx: int,
        suggested_kv_bits: int | None,
        suggested_plan: MemoryPlan | None = None,
    ):
        self.num_ctx = num_ctx
        self.kv_bits = kv_bits
        self.plan = plan
        self.largest_num_ctx = largest_num_ctx
        self.suggested_kv_bits = suggested_kv_bits
        self.suggested_plan = suggested_plan
        super().__init__(self._message())

    def _message(self) -> str:
        p, where = self.plan, _where()
        if p.weights_bytes > p.available_bytes:
            return (
                f"The model's weights alone need {gb(p.weights_bytes)} but {where} can give "
                f"{gb(p.available_bytes)}: use a smaller or more strongly quantized model."
            )
        msg = (
            f"num_ctx {self.num_ctx:,} ({p.kv_label()} KV cache) needs {gb(p.total_bytes)} "
            f"but {where} can give {gb(p.available_bytes)}."
        )
        if self.largest_num_ctx:
            msg += f" Largest that fits: {self.largest_num_ctx:,} tokens"
        else:
            msg += f" Not even {KV_STEP} tokens fit"
        if self.suggested_kv_bits is not None and self.suggested_plan is not None:
            msg += (
                f"; or use {'an' if self.suggested_kv_bits == 8 else 'a'} "
                f"{self.suggested_kv_bits}-bit KV cache "
                f"({gb(self.suggested_plan.total_bytes)})"
            )
        return msg + "."


def check(
    config: ModelConfig,
    weights_bytes: int,
    num_ctx: int,
    kv_bits: int | None = None,
    **plan_kwargs: Any,
) -> MemoryPlan:
    """plan(), raising MemoryPlanError (with the largest num_ctx and KV bits that fit) if it does not fit."""
    p = plan(config, weights_bytes, num_ctx, kv_bits, **plan_kwargs)
    if p.fits:
        return p
    kwargs = {k: v for k, v in plan_kwargs.items() if k != "available"}
    largest = largest_num_ctx(config, weights_bytes, kv_bits, p.available_bytes, **kwargs)
    # Fewer KV bits than asked, fewest savings first: fp -> 8 -> 4.
    smaller = [b for b in KV_BITS[:2] if kv_bits is None or b < kv_bits]
    for bits in smaller:
        try:
            q = plan(config, weights_bytes, num_ctx, bits, available=p.available_bytes, **kwargs)
        except ValueError:  # head_dim not a multiple of the group size: no quantized cache
            break
        if q.fits:
            raise MemoryPlanError(num_ctx, kv_bits, p, largest, bits, q)
    raise MemoryPlanError(num_ctx, kv_bits, p, largest, None)


def bits_that_fit(
    config: ModelConfig, weights_bytes: int, num_ctx: int, available: int, **plan_kwargs: Any
) -> int | None:
    """None if an fp cache fits, else 8 or 4; raises MemoryPlanError if none does."""
    for bits in (None, *KV_BITS[:2]):
        if plan(config, weights_bytes, num_ctx, bits, available=available, **plan_kwargs).fits:
            return bits
    check(config, weights_bytes, num_ctx, None, available=available, **plan_kwargs)
    raise AssertionError("unreachable: check() raises when nothing fits")


def _device_info() -> dict[str, Any]:
    # mx.device_info() (what mlx-lm's wired_limit uses) is new; older MLX has mx.metal.device_info().
    for get in (getattr(_mx(), "device_info", None), getattr(_mx().metal, "device_info", None)):
        try:
            info = dict(get()) if get is not None else {}
        except Exception:  # no GPU, or an MLX that cannot describe it
            info = {}
        if info:
            return info
    return {}


def _total_ram() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _mem_available_linux() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _held_by_mlx() -> int:
    # What this process's MLX already holds (loaded weights, caches) is ours to plan, though the
    # OS counts it as used: add it back so that loaded weights are not counted twice.
    return _mx().get_active_memory() + _mx().get_cache_memory()


def _cuda_available() -> bool:
    cuda = getattr(_mx(), "cuda", None)
    return bool(cuda and cuda.is_available())


def available_memory() -> int:
    """Bytes the model may use on this machine, less MARGIN_FRACTION."""
    info = _device_info()
    ram = _total_ram()
    if _mx().metal.is_available() and info.get("max_recommended_working_set_size"):
        # Unified memory: Metal's recommended working set is what the GPU may keep resident.
        raw = min(
            x for x in (info["max_recommended_working_set_size"], info.get("memory_size"), ram) if x
        )
    elif _cuda_available() and (info.get("free_memory") or info.get("total_memory")):
        total = info.get("total_memory") or info["free_memory"]
        free = info.get("free_memory")
        raw = total if free is None else min(total, free + _held_by_mlx())
    else:
        free = _mem_available_linux()
        if free is None:
            raw = ram
        else:
            raw = free + _held_by_mlx()
            if ram:
                raw = min(raw, ram)
    if not raw:
        raise RuntimeError("cannot tell how much memory this machine has")
    return int(raw * (1 - MARGIN_FRACTION))


def batch_size_that_fits(
    config: ModelConfig,
    weights_bytes: int,
    ctx_tokens: int,
    kv_bits: int | None = None,
    *,
    available: int | None = None,
    max_batch: int = 8,
    **plan_kwargs: Any,
) -> int:
    """How many sequences of `ctx_tokens` (prompt + answer) one batched generation may run:
    weights + B x (KV cache + working memory) within `available`; 0 when not even one fits.

    Each sequence has its own cache; a batched prefill chunk is B chunks at once, so the working
    memory is counted B times too (an upper bound)."""
    if available is None:
        available = available_memory()
    one = plan(config, weights_bytes, ctx_tokens, kv_bits, available=available, **plan_kwargs)
    per_sequence = one.kv_bytes + one.working_bytes
    room = available - weights_bytes
    if room < per_sequence:
        return 0
    return int(min(max_batch, room // per_sequence))
