"""ModelConfig: a Mistral Nemo config.json, validated with errors that name the file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config.json that is missing, unreadable or inconsistent."""


REQUIRED = (
    "hidden_size",
    "num_hidden_layers",
    "intermediate_size",
    "num_attention_heads",
    "vocab_size",
)


@dataclass(frozen=True)
class ModelConfig:
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    vocab_size: int
    num_key_value_heads: int
    head_dim: int
    model_type: str = "mistral"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 1_000_000.0
    max_position_embeddings: int = 1_024_000
    sliding_window: int | None = None
    tie_word_embeddings: bool = False
    bos_token_id: int = 1
    eos_token_id: int = 2
    torch_dtype: str = "bfloat16"
    quantization: dict[str, int] | None = None
    # The raw dict, written back on conversion so nothing the checkpoint said is lost.
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config.json") -> ModelConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(d).__name__}")
        model_type = d.get("model_type")
        if model_type not in ("mistral", "llama"):
            raise ConfigError(
                f"{source}: model_type is {model_type!r}; Nemo Chat runs Mistral models "
                "(model_type 'mistral')"
            )
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise ConfigError(f"{source}: missing field(s) {', '.join(missing)}")
        for k in (*REQUIRED, "num_key_value_heads", "head_dim"):
            v = d.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise ConfigError(f"{source}: field {k} must be a positive integer, got {v!r}")

        heads = d["num_attention_heads"]
        kv_heads = d.get("num_key_value_heads") or heads
        # Nemo's head_dim (128) is NOT hidden/heads (160): always prefer the explicit field.
        head_dim = d.get("head_dim") or d["hidden_size"] // heads
        if heads % kv_heads:
            raise ConfigError(
                f"{source}: num_attention_heads ({heads}) is not a multiple of "
                f"num_key_value_heads ({kv_heads})"
            )
        if head_dim % 2:
            raise ConfigError(f"{source}: head_dim must be even for RoPE, got {head_dim}")
        window = d.get("sliding_window")
        if window is not None and (not isinstance(window, int) or window <= 0):
            raise ConfigError(f"{source}: sliding_window must be null or a positive integer")
        quant = d.get("quantization") or d.get("quantization_config")
        if quant is not None:
            if not isinstance(quant, dict) or {"bits", "group_size"} - quant.keys():
                raise ConfigError(f"{source}: quantization needs 'bits' and 'group_size'")
            if quant["bits"] not in (2, 3, 4, 5, 6, 8):
                raise ConfigError(f"{source}: quantization bits {quant['bits']} not supported")
            quant = {"group_size": int(quant["group_size"]), "bits": int(quant["bits"])}

        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known and v is not None}
        kwargs.update(
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            sliding_window=window,
            quantization=quant,
            raw=dict(d),
        )
        for k in ("rms_norm_eps", "rope_theta"):
            if k in kwargs:
                kwargs[k] = float(kwargs[k])
        return cls(**kwargs)

    @property
    def num_parameters(self) -> int:
        """Parameter count of the unquantized model (Nemo: 12,247,782,400)."""
        h, i, hd = self.hidden_size, self.intermediate_size, self.head_dim
        attn = h * hd * (self.num_attention_heads * 2 + self.num_key_value_heads * 2)
        layer = attn + 3 * h * i + 2 * h
        embeds = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return self.num_hidden_layers * layer + embeds + h


def load_config(model_dir: str | Path) -> ModelConfig:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{path}: not found — is {Path(model_dir)} a model folder?")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read as JSON ({e})") from e
    return ModelConfig.from_dict(d, source=str(path))


# Mistral-Nemo-Instruct-2407's config.json (DESIGN "The model"): the memory estimate before any
# model is loaded, and the shape the random test checkpoints (engine.synthetic) copy.
NEMO_12B: dict[str, Any] = dict(
    model_type="mistral",
    architectures=["MistralForCausalLM"],
    hidden_size=5120,
    num_hidden_layers=40,
    intermediate_size=14336,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    rms_norm_eps=1e-5,
    rope_theta=1_000_000.0,
    max_position_embeddings=1_024_000,
    sliding_window=None,
    vocab_size=131072,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    hidden_act="silu",
    torch_dtype="bfloat16",
)


def nemo_12b_config() -> ModelConfig:
    """Mistral Nemo 12B's shape, without its files."""
    return ModelConfig.from_dict(NEMO_12B, source="Mistral Nemo 12B")
