"""KV-cache snapshots on disk: mlx-lm's save_prompt_cache / load_prompt_cache plus what a file is
valid for (format, model, tokenizer, kv_bits, token ids), written atomically, always validated.

A snapshot that does not match or cannot be read raises SnapshotInvalid with the reason; the
caller deletes it and prefills cold. Engine thread only (MLX).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import mlx.core as mx
from mlx_lm.models.cache import KVCache, QuantizedKVCache, load_prompt_cache, save_prompt_cache

from engine.cache_settings import TEMP_PREFIX
from engine.config import ModelConfig

FORMAT_VERSION = "1"
KV_GROUP_SIZE = 64
_MAX_HEADER = 64 << 20  # a header past 64 MiB is not one of ours (128K tokens need ~1 MB)
_T = TypeVar("_T")


class SnapshotInvalid(Exception):
    """A snapshot that must not be used; str(e) is the reason that gets logged."""


@dataclass(frozen=True)
class SnapshotIdentity:
    """What a snapshot must match to be used: the model's files and the tokenizer's bytes."""

    model: str
    tokenizer: str

    @classmethod
    def of(cls, model_dir: str | Path, tokenizer_path: str | Path | None) -> SnapshotIdentity:
        return cls(model_identity(model_dir), tokenizer_hash(tokenizer_path))


def model_identity(model_dir: str | Path) -> str:
    """sha256 of config.json and the weight files' names, sizes and mtimes (not their bytes:
    hashing 7 GB at every load would cost seconds; a changed file changes size or mtime)."""
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    config = model_dir / "config.json"
    h.update(config.read_bytes() if config.exists() else b"")
    for f in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.index.json")):
        st = f.stat()
        h.update(f"\0{f.name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def tokenizer_hash(path: str | Path | None) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else "none"


def kv_label(kv_bits: int | None) -> str:
    return "fp" if kv_bits is None else str(kv_bits)


@dataclass(frozen=True)
class SnapshotHeader:
    """A snapshot's metadata, read from the safetensors header alone (no arrays loaded)."""

    key: str
    model: str
    tokenizer: str
    kv_bits: str
    tokens: list[int]
    skip: int


def read_header(path: Path) -> SnapshotHeader:
    """The metadata of a snapshot; raises SnapshotInvalid when it is not a readable one of ours."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) != 8:
                raise SnapshotInvalid("truncated: no safetensors header")
            (n,) = struct.unpack("<Q", raw_len)
            if n > min(size - 8, _MAX_HEADER):
                raise SnapshotInvalid(f"truncated or corrupt: header of {n} bytes in {size}")
            header = json.loads(f.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        if 8 + n + max(ends, default=0) != size:
            raise SnapshotInvalid(
                f"truncated: {size} bytes, the header describes {8 + n + max(ends, default=0)}"
            )
        meta = header.get("__metadata__") or {}
        if meta.get("0.format") != FORMAT_VERSION:
            raise SnapshotInvalid(f"format {meta.get('0.format')!r}, expected {FORMAT_VERSION}")
        return SnapshotHeader(
            key=meta["0.key"],
            model=meta["0.model"],
            tokenizer=meta["0.tokenizer"],
            kv_bits=meta["0.kv_bits"],
            tokens=[int(t) for t in json.loads(meta["0.tokens"])],
            skip=int(meta.get("0.skip", "0")),
        )
    except SnapshotInvalid:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise SnapshotInvalid(f"unreadable: {e}") from e


def _compact(cache: list[Any]) -> list[Any]:
    """Copies that hold exactly `offset` tokens: mlx-lm's state carries the whole 256-step buffer,
    including what a trim left behind."""
    out = []
    for c in cache:
        n = c.offset
        if isinstance(c, QuantizedKVCache):
            keys, values = _filled(c.keys, c.values)
            q = QuantizedKVCache(group_size=c.group_size, bits=c.bits)
            q.keys = tuple(x[..., :n, :] for x in keys)
            q.values = tuple(x[..., :n, :] for x in values)
            q.offset = n
            out.append(q)
        elif type(c) is not KVCache:  # e.g. a sliding window's RotatingKVCache
            raise ValueError(f"{type(c).__name__} snapshots are not supported")
        else:
            keys, values = _filled(c.keys, c.values)
            k = KVCache()
            k.keys, k.values, k.offset = keys[..., :n, :], values[..., :n, :], n
            out.append(k)
    return out


def _filled(keys: _T | None, values: _T | None) -> tuple[_T, _T]:
    # mlx-lm's caches start with keys/values None; write_snapshot only accepts filled ones.
    if keys is None or values is None:
        raise ValueError("an empty cache cannot be snapshotted")
    return keys, values


def write_snapshot(
    path: Path,
    key: str,
    cache: list[Any],
    tokens: list[int],
    skip: int,
    kv_bits: int | None,
    identity: SnapshotIdentity,
) -> int:
    """Write atomically (temporary file + os.replace); the file's size. On any failure the
    temporary file is removed and an older snapshot at `path` stays as it was."""
    if not tokens or cache[0].offset != len(tokens):
        raise ValueError("a snapshot needs a cache that holds exactly its tokens")
    metadata = {
        "format": FORMAT_VERSION,
        "key": key,
        "model": identity.model,
        "tokenizer": identity.tokenizer,
        "kv_bits": kv_label(kv_bits),
        "tokens": json.dumps(tokens, separators=(",", ":")),
        "skip": str(skip),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TEMP_PREFIX}{os.getpid()}-{path.name}"
    try:
        save_prompt_cache(str(tmp), _compact(cache), metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size


def read_snapshot(
    path: Path,
    key: str,
    identity: SnapshotIdentity,
    kv_bits: int | None,
    config: ModelConfig,
) -> tuple[list[Any], SnapshotHeader]:
    """The cache and its header, or SnapshotInvalid saying why it cannot be used."""
    header = read_header(path)
    expect = {
        "key": (header.key, key),
        "model": (header.model, identity.model),
        "tokenizer": (header.tokenizer, identity.tokenizer),
        "kv_bits": (header.kv_bits, kv_label(kv_bits)),
    }
    for what, (got, want) in expect.items():
        if got != want:
            raise SnapshotInvalid(f"wrong {what}: {got[:16]!r}, expected {want[:16]!r}")
    try:
        # Without return_metadata it returns the list alone; its stub lists both return types.
        cache = cast("list[Any]", load_prompt_cache(str(path)))
        mx.eval([c.state for c in cache])  # reads every byte now: a short file fails here
    except Exception as e:  # noqa: BLE001 - MLX reports bad files as RuntimeError/ValueError
        raise SnapshotInvalid(f"unreadable: {e}") from e
    _check_shapes(cache, header, kv_bits, config)
    return cache, header


def _check_shapes(
    cache: list[Any], header: SnapshotHeader, kv_bits: int | None, config: ModelConfig
) -> None:
    if len(cache) != config.num_hidden_layers:
        raise SnapshotInvalid(f"{len(cache)} layers, the model has {config.num_hidden_layers}")
    n, heads, d = len(header.tokens), config.num_key_value_heads, config.head_dim
    for c in cache:
        if kv_bits is None:
            ok = (
                type(c) is KVCache
                and c.keys is not None
                and c.keys.shape[1:] == (heads, c.offset, d)
            )
        else:
            per_word = 32 // kv_bits
            ok = (
                type(c) is QuantizedKVCache
                and (c.bits, c.group_size) == (kv_bits, KV_GROUP_SIZE)
                and c.keys is not None
                and c.keys[0].shape[1:] == (heads, c.offset, d // per_word)
            )
        if not ok or c.offset != n:
            raise SnapshotInvalid(f"cache shape does not match the model and its {n} tokens")
