"""What the KV-cache store is configured with and reports, as plain data: no MLX, no mlx-lm.

The app builds CacheSettings before its window shows (issue 17 #13); engine.cache_store, which
imports mlx-lm, re-exports everything here. The snapshot folder's layout (file names, suffix,
temporaries) lives here too, so the app can count and delete snapshots with no model loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "Nemo Chat"
DEFAULT_DISK_BUDGET = 10 * 10**9  # 10 GB
IDLE_AFTER_S = 120.0  # a conversation untouched this long gets its snapshot
SUFFIX = ".safetensors"
TEMP_PREFIX = ".tmp-"  # hidden temporary files; never counted as snapshots


def snapshot_file_name(key: str) -> str:
    """A key's snapshot file name, the same in every model's subfolder of the cache folder
    (the app deletes a purged conversation's snapshots by it while no model is loaded)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32] + SUFFIX


def default_cache_dir() -> Path:
    """The app's cache folder (macOS: ~/Library/Caches/Nemo Chat/kv-cache)."""
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "kv-cache"


@dataclass(frozen=True)
class CacheSettings:
    """What the user controls (Settings): the folder, the budgets and the off switch."""

    dir: str | Path | None = None  # None: default_cache_dir()
    memory_budget: int | None = None  # a cap in bytes; None: what the memory plan leaves
    disk_budget: int = DEFAULT_DISK_BUDGET
    enabled: bool = True  # False: nothing is read from or written to disk
    idle_after_s: float = IDLE_AFTER_S

    @property
    def folder(self) -> Path:
        return Path(self.dir).expanduser() if self.dir is not None else default_cache_dir()


@dataclass(frozen=True)
class CacheUsage:
    """Plain numbers for Settings and the status line."""

    enabled: bool
    folder: str
    memory_bytes: int  # caches of conversations not in use, held in memory
    active_bytes: int  # the conversation in use (counted in the memory plan's KV)
    memory_budget: int
    memory_entries: int
    disk_bytes: int
    disk_budget: int
    snapshots: int
