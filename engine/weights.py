"""Read safetensors shards; load HF or MLX-quantized folders; convert HF to 4-bit groups.

Shards are checked from their headers before any tensor is read (missing shard, truncated file,
wrong shape), and loaded one shard at a time so two full copies of the weights never coexist.
"""

from __future__ import annotations

import json
import shutil
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from engine.config import ConfigError, ModelConfig, load_config
from engine.events import Cancelled
from engine.model import Model

INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = (
    "tekken.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
MAX_SHARD_BYTES = 5 << 30  # mlx-lm's default shard size


class WeightsError(ValueError):
    """A model folder whose weights are missing, truncated or do not fit the config."""


@dataclass(frozen=True)
class TensorInfo:
    file: Path
    dtype: str
    shape: tuple[int, ...]


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor names, dtypes and shapes from a safetensors header; checks the file is complete."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100 << 20:
                raise WeightsError(f"{path}: not a safetensors file (header length {n})")
            header = json.loads(f.read(n))
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: cannot read safetensors header ({e})") from e
    header.pop("__metadata__", None)
    end = max((t["data_offsets"][1] for t in header.values()), default=0)
    size = path.stat().st_size
    if size < 8 + n + end:
        raise WeightsError(
            f"{path}: truncated — {size:,} bytes on disk, the header says {8 + n + end:,} "
            "(an interrupted download? download it again)"
        )
    return {k: TensorInfo(path, t["dtype"], tuple(t["shape"])) for k, t in header.items()}


def shard_files(model_dir: Path) -> list[Path]:
    """The shards named by the index (all must exist), or every *.safetensors when unindexed."""
    index = model_dir / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
            raise WeightsError(f"{index}: cannot be read ({e})") from e
        files = [model_dir / f for f in dict.fromkeys(weight_map.values())]
        for f in files:
            if not f.is_file():
                tensor = next(k for k, v in weight_map.items() if v == f.name)
                raise WeightsError(
                    f"{f}: missing shard (listed in {INDEX} for {tensor} and others)"
                )
        return files
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise WeightsError(f"{model_dir}: no *.safetensors weights in this folder")
    return files


def read_tensor_infos(model_dir: Path) -> dict[str, TensorInfo]:
    infos: dict[str, TensorInfo] = {}
    for f in shard_files(model_dir):
        infos.update(read_header(f))
    return {k: v for k, v in infos.items() if "rotary_emb.inv_freq" not in k}


def compute_dtype(checkpoint_dtype: mx.Dtype) -> mx.Dtype:
    # MLX's CPU backend is far slower in bf16/fp16 than in fp32; on a GPU keep the checkpoint's.
    return mx.float32 if mx.default_device() == mx.cpu else checkpoint_dtype


def _checkpoint_dtype(config: ModelConfig) -> mx.Dtype:
    return {"float16": mx.float16, "float32": mx.float32}.get(config.torch_dtype, mx.bfloat16)


def build_model(config: ModelConfig, infos: dict[str, TensorInfo]) -> Model:
    """An unloaded Model whose layers are quantized where the checkpoint has `.scales`."""
    model = Model(config)
    if config.quantization:
        nn.quantize(
            model,
            group_size=config.quantization["group_size"],
            bits=config.quantization["bits"],
            class_predicate=lambda path, _: f"{path}.scales" in infos,
        )
    return model


def check_tensors(model: Model, infos: dict[str, TensorInfo], model_dir: Path) -> None:
    expected = {k: v.shape for k, v in tree_flatten(model.parameters())}
    for name, shape in expected.items():
        if name not in infos:
            raise WeightsError(f"{model_dir}: tensor {name} is missing from the weights")
        if infos[name].shape != tuple(shape):
            raise WeightsError(
                f"{infos[name].file}: tensor {name} has shape {list(infos[name].shape)}, "
                f"config.json implies {list(shape)}"
            )
    unexpected = sorted(set(infos) - set(expected))
    if unexpected:
        raise WeightsError(
            f"{infos[unexpected[0]].file}: unexpected tensor {unexpected[0]} "
            f"({len(unexpected)} in all) — does config.json match these weights?"
        )


def load_model(
    model_dir: str | Path,
    config: ModelConfig | None = None,
    dtype: mx.Dtype | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Model:
    """Load an HF or MLX-quantized folder, one shard at a time, into our Model.

    on_progress(bytes_loaded, bytes_total) is called after each shard.
    """
    model_dir = Path(model_dir)
    config = config or load_config(model_dir)
    dtype = dtype or compute_dtype(_checkpoint_dtype(config))
    infos = read_tensor_infos(model_dir)
    model = build_model(config, infos)
    model.eval()
    check_tensors(model, infos, model_dir)
    files = list(dict.fromkeys(i.file for i in infos.values()))
    total, done = sum(f.stat().st_size for f in files), 0
    for f in files:
        try:
            arrays = model.sanitize(_load_shard(f))
            arrays = {
                k: v.astype(dtype) if mx.issubdtype(v.dtype, mx.floating) else v
                for k, v in arrays.items()
            }
            model.load_weights(list(arrays.items()), strict=False)
            mx.eval(list(arrays.values()))  # materialize this shard only
        except (RuntimeError, ValueError) as e:
            raise WeightsError(f"{f}: cannot load weights ({e})") from e
        del arrays
        done += f.stat().st_size
        if on_progress:
            on_progress(done, total)
    return model


def _load_shard(path: Path) -> dict[str, mx.array]:
    # A .safetensors file loads as a dict; mx.load's stub lists every format's return type.
    return cast("dict[str, mx.array]", mx.load(str(path)))


def weights_nbytes(model: nn.Module) -> int:
    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))


def _quantizable(name: str, w: mx.array, group_size: int) -> bool:
    # What mlx-lm quantizes: every Linear and Embedding matrix whose rows split into groups.
    return name.endswith(".weight") and w.ndim == 2 and w.shape[-1] % group_size == 0


def convert(
    src: str | Path,
    dst: str | Path,
    bits: int = 4,
    group_size: int = 64,
    on_progress: Callable[[int, int], None] | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    cancel: threading.Event | None = None,
) -> Path:
    """Quantize an HF folder into the MLX layout of mlx-community/Mistral-Nemo-Instruct-2407-4bit.

    Tensor by tensor, so memory holds one source tensor plus at most one output shard.
    """
    src, dst = Path(src), Path(dst)
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    config = load_config(src)
    if config.quantization:
        raise ConfigError(f"{src / 'config.json'}: this folder is already quantized")
    infos = read_tensor_infos(src)
    model = build_model(config, infos)  # lazy: never materialized, used for checks only
    check_tensors(model, infos, src)
    dst.mkdir(parents=True, exist_ok=True)

    shards: list[dict[str, mx.array]] = [{}]
    written, pending, total = [], 0, 0
    done, count = 0, len(infos)

    def flush() -> None:
        nonlocal pending
        name = f"model-{len(written) + 1:05d}.safetensors"
        mx.save_safetensors(str(dst / name), shards[0], metadata={"format": "mlx"})
        written.append((name, list(shards[0])))
        shards[0], pending = {}, 0

    for f in dict.fromkeys(i.file for i in infos.values()):
        arrays = model.sanitize(_load_shard(f))
        for k, w in arrays.items():
            if cancel is not None and cancel.is_set():  # dst is left without config.json
                raise Cancelled(f"conversion into {dst} cancelled")
            if _quantizable(k, w, group_size):
                q, scales, biases = mx.quantize(w, group_size=group_size, bits=bits)
                out = {k: q, k[: -len("weight")] + "scales": scales}
                out[k[: -len("weight")] + "biases"] = biases
            else:
                out = {k: w}
            mx.eval(out)
            for name, a in out.items():
                shards[0][name] = a
                pending += a.nbytes
                total += a.nbytes
            done += 1
            if on_progress:
                on_progress(done, count)
            if pending >= max_shard_bytes:
                flush()
        del arrays
    if shards[0]:
        flush()

    # mlx-community names shards model-0000i-of-0000n.safetensors.
    weight_map = {}
    for i, (name, keys) in enumerate(written):
        final = f"model-{i + 1:05d}-of-{len(written):05d}.safetensors"
        (dst / name).rename(dst / final)
        weight_map |= {k: final for k in keys}
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (dst / INDEX).write_text(json.dumps(index, indent=2))

    raw = dict(config.raw)
    raw["quantization"] = {"group_size": group_size, "bits": bits}
    raw["quantization_config"] = raw["quantization"]
    (dst / "config.json").write_text(json.dumps(raw, indent=2))
    copy_tokenizer_files(src, dst)
    return dst


def copy_tokenizer_files(src: Path, dst: Path) -> None:
    """Copy the tokenizer; where src has no tekken.json, the verified copy from mistral-common."""
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    if not (dst / "tekken.json").is_file():
        from engine.tokenizer import bundled_tekken_path

        shutil.copyfile(bundled_tekken_path(), dst / "tekken.json")
