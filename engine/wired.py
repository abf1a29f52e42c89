"""A wired-memory limit sized to what generation needs, never Metal's recommended maximum.

mlx-lm's `wired_limit` raises the limit to `max_recommended_working_set_size` for every
generation: the reported trigger of macOS kernel panics under memory pressure (mlx#3186).
Ours wires weights + the plan's KV cache + a margin, capped at that maximum, and puts the old
limit back afterwards. Where Metal is unavailable (Linux, CUDA) it does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import mlx.core as mx
from mlx.utils import tree_reduce

# Room for working buffers (a prefill chunk, logits) and allocator rounding on top of weights + KV.
MARGIN_FRACTION = 0.10
MIN_MARGIN_BYTES = 512 * 2**20


def margin_bytes(needed: int) -> int:
    return max(int(needed * MARGIN_FRACTION), MIN_MARGIN_BYTES)


def wired_limit_bytes(weights_bytes: int, kv_bytes: int, max_recommended: int) -> int:
    """weights + KV + margin, never above the device's recommended working set."""
    needed = max(0, weights_bytes) + max(0, kv_bytes)
    return min(needed + margin_bytes(needed), max_recommended)


def model_bytes(model: Any) -> int:
    """Bytes of every array the model holds (its weights as loaded)."""
    # tree_reduce is unannotated (pyright infers a None); from 0 it sums ints.
    total = tree_reduce(lambda acc, x: acc + x.nbytes if isinstance(x, mx.array) else acc, model, 0)
    return cast(int, total)


def max_recommended_working_set() -> int:
    """Metal's max_recommended_working_set_size (mx.device_info on newer MLX, else mx.metal)."""
    info = mx.device_info() if hasattr(mx, "device_info") else mx.metal.device_info()
    return int(info["max_recommended_working_set_size"])


@contextmanager
def wired_limit(
    model: Any, kv_bytes: int = 0, streams: Sequence[mx.Stream] | None = None
) -> Iterator[int | None]:
    """Wire weights + `kv_bytes` + a margin while the block runs; yields the limit (None: no-op).

    `streams` are synchronized before the old limit is restored: the limit must not change
    during an async eval (as in mlx-lm).
    """
    if not mx.metal.is_available():
        yield None
        return
    limit = wired_limit_bytes(model_bytes(model), kv_bytes, max_recommended_working_set())
    old = mx.set_wired_limit(limit)
    try:
        yield limit
    finally:
        for s in streams or ():
            mx.synchronize(s)
        if not streams:
            mx.synchronize()
        mx.set_wired_limit(old)
