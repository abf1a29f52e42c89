"""Models on disk: where they live, which are there, whether each is complete, and deleting one."""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "Nemo Chat"


@dataclass(frozen=True)
class LocalModel:
    path: Path
    name: str  # the repo id the folder was named after
    size_bytes: int
    quantization: str  # "4-bit g64", or the dtype ("bf16", "fp16", "fp32") of an unquantized model
    bits: int | None
    group_size: int | None
    has_tokenizer: bool  # tekken.json present
    complete: bool  # config.json and every shard of the index, each as long as its header says


def models_dir() -> Path:
    """Where downloaded models live: the platform's app-data folder for Nemo Chat."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "models"


def model_dir_for(repo_id: str, root: Path | None = None) -> Path:
    return Path(root or models_dir()) / repo_id.replace("/", "--")


def missing_files(model_dir: Path, expected_sizes: dict[str, int] | None = None) -> list[str]:
    """What keeps `model_dir` from loading (missing config or shards, wrong sizes); [] if none."""
    model_dir = Path(model_dir)
    problems = [] if (model_dir / "config.json").is_file() else ["config.json is missing"]
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, AttributeError) as e:
            return problems + [f"{index.name} is not a valid index ({e})"]
    else:
        shards = ["model.safetensors"]
    for name in shards:
        path = model_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif (
            expected_sizes
            and name in expected_sizes
            and path.stat().st_size != expected_sizes[name]
        ):
            problems.append(
                f"{name} has {path.stat().st_size} bytes, expected {expected_sizes[name]}"
            )
        elif not _safetensors_size_ok(path):
            problems.append(f"{name} is truncated or not a safetensors file")
    return problems


def _safetensors_size_ok(path: Path) -> bool:
    """The header's last tensor ends exactly at the end of the file (cheap truncation check)."""
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        end = max(
            (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
        )
        return 8 + n + end == path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return False


def models_on_disk(root: Path | None = None) -> list[LocalModel]:
    """Model folders under `root` (default models_dir()), for the settings page.

    Hidden folders are skipped: a conversion in progress works in `.<name>.partial`.
    """
    root = Path(root or models_dir())
    if not root.is_dir():
        return []
    found = []
    folders = (p for p in root.iterdir() if not p.name.startswith("."))
    for d in sorted(p for p in folders if (p / "config.json").is_file()):
        try:
            config = json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        q = config.get("quantization") or config.get("quantization_config") or {}
        bits, group = q.get("bits"), q.get("group_size")
        dtype = config.get("torch_dtype") or config.get("dtype") or "unknown"
        label = (
            f"{bits}-bit g{group}"
            if bits
            else {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(dtype, dtype)
        )
        found.append(
            LocalModel(
                path=d,
                name=d.name.replace("--", "/", 1),
                size_bytes=sum(p.stat().st_size for p in d.rglob("*") if p.is_file()),
                quantization=label,
                bits=bits,
                group_size=group,
                has_tokenizer=(d / "tekken.json").is_file(),
                complete=not missing_files(d),
            )
        )
    return found


def delete_model(path: Path) -> None:
    """Remove a downloaded model folder (refuses anything that does not look like one)."""
    path = Path(path)
    if not path.is_dir() or not (
        (path / "config.json").is_file() or (path / ".cache" / "huggingface").is_dir()
    ):
        raise ValueError(f"{path} is not a model folder; nothing was deleted")
    shutil.rmtree(path)
