"""Random-weight checkpoints with Nemo's exact shape quirks, for tests and benchmarks.

No weights can be downloaded here, so tests build tiny models that keep what matters:
head_dim != hidden/heads, GQA 4:1, rope_theta 1e6, vocab 131072 (so the real Tekken applies).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from engine.config import NEMO_12B, ModelConfig
from engine.model import Model

NEMO = NEMO_12B  # the real shape; the presets below shrink it

PRESETS: dict[str, dict] = {
    # head_dim 64 != 384 / 8 heads, like Nemo's 128 != 5120 / 32; 64 so the KV cache can quantize.
    "tiny": NEMO
    | {
        "hidden_size": 384,
        "num_hidden_layers": 2,
        "intermediate_size": 768,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
    },
    "small": NEMO
    | dict(
        hidden_size=1024,
        num_hidden_layers=8,
        intermediate_size=2816,
        num_attention_heads=16,
        num_key_value_heads=4,
        head_dim=48,
    ),
    "nemo-12b": NEMO,
}


def preset_config(preset: str = "tiny", **overrides) -> ModelConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return ModelConfig.from_dict(PRESETS[preset] | overrides, source=f"preset {preset}")


def random_model(config: ModelConfig, seed: int = 0, dtype: mx.Dtype = mx.float32) -> Model:
    """A Model with random weights scaled so that activations stay O(1) through the layers."""
    mx.random.seed(seed)
    model = Model(config)
    params = []
    for name, p in tree_flatten(model.parameters()):
        if name.endswith("norm.weight"):
            w = 1.0 + 0.1 * mx.random.normal(p.shape)
        else:
            w = mx.random.normal(p.shape) * (p.shape[-1] ** -0.5)
        params.append((name, w.astype(dtype)))
    model.load_weights(params)
    mx.eval(model.parameters())
    return model


def write_checkpoint(
    dst: str | Path,
    preset: str | ModelConfig = "tiny",
    seed: int = 0,
    dtype: mx.Dtype = mx.bfloat16,
    num_shards: int = 2,
    with_tokenizer: bool = True,
) -> Path:
    """Write an HF-layout folder: config.json, sharded safetensors with an index, tekken.json."""
    config = preset if isinstance(preset, ModelConfig) else preset_config(preset)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(random_model(config, seed, dtype).parameters()))

    names = sorted(weights)
    per_shard = -(-len(names) // num_shards)
    weight_map, total = {}, 0
    for i in range(num_shards):
        shard = f"model-{i + 1:05d}-of-{num_shards:05d}.safetensors"
        part = {k: weights[k] for k in names[i * per_shard : (i + 1) * per_shard]}
        mx.save_safetensors(str(dst / shard), part, metadata={"format": "pt"})
        weight_map |= {k: shard for k in part}
        total += sum(v.nbytes for v in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (dst / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    raw = dict(config.raw)
    raw["torch_dtype"] = {mx.bfloat16: "bfloat16", mx.float16: "float16"}.get(dtype, "float32")
    (dst / "config.json").write_text(json.dumps(raw, indent=2))
    if with_tokenizer:
        from engine.tokenizer import bundled_tekken_path

        shutil.copyfile(bundled_tekken_path(), dst / "tekken.json")
    return dst


def count_parameters(model: nn.Module) -> int:
    return sum(v.size for _, v in tree_flatten(model.parameters()))
