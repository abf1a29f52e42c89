"""mlx-lm as the reference nobody here wrote: its llama model and its own conversion."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
from mlx_lm.utils import load_model, quantize_model, save_config, save_model


def reference_model(model_dir: Path):
    """mlx-lm's model (model_type mistral -> llama) on the same folder, computing in float32."""
    model, _ = load_model(Path(model_dir))
    model.set_dtype(mx.float32, lambda dtype: mx.issubdtype(dtype, mx.floating))
    return model


def mlx_lm_convert(src: Path, dst: Path, bits: int = 4, group_size: int = 64) -> Path:
    """mlx_lm.convert's steps without its tokenizer step (our folders carry only tekken.json)."""
    model, config = load_model(Path(src), lazy=True)
    model, config = quantize_model(model, config, group_size, bits)
    save_model(dst, model)
    save_config(config, dst / "config.json")
    return dst
