"""Per-conversation KV caches: a memory LRU under a byte budget, and snapshots on disk.

Each key (a conversation "chat:42", the quick prompt, a CLI conversation, a stateless API client)
owns a CacheState. The key in use is the active one: its KV is what the memory plan's num_ctx
already counts. The others stay in memory while they fit the budget; past it the least recently
used is written to disk (engine.cache_snapshot) and freed. Snapshots are also written at close
and after a conversation has been idle for a while, never after every turn (SSD wear).
Runs on the engine thread (MLX); usage() may be called from any thread.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlx_lm.utils import common_prefix_len

from engine.cache_settings import (  # re-exported: the plain data lives in an MLX-free module
    APP_NAME,
    DEFAULT_DISK_BUDGET,
    IDLE_AFTER_S,
    SUFFIX,
    TEMP_PREFIX,
    CacheSettings,
    CacheUsage,
    default_cache_dir,
    snapshot_file_name,
)
from engine.cache_snapshot import (
    SnapshotHeader,
    SnapshotIdentity,
    SnapshotInvalid,
    kv_label,
    read_header,
    read_snapshot,
    write_snapshot,
)
from engine.config import ModelConfig
from engine.session import CacheState

log = logging.getLogger(__name__)

__all__ = [  # with what engine.cache_settings holds, so older imports from here keep working
    "ANONYMOUS",
    "APP_NAME",
    "DEFAULT_DISK_BUDGET",
    "IDLE_AFTER_S",
    "MAX_ANONYMOUS",
    "MIN_SHARED_TOKENS",
    "SUFFIX",
    "TEMP_PREFIX",
    "CacheSettings",
    "CacheStore",
    "CacheUsage",
    "Timings",
    "default_cache_dir",
    "snapshot_file_name",
]

ANONYMOUS = "anon:"  # keys of key=None requests (the stateless local API)
MAX_ANONYMOUS = 4
MIN_SHARED_TOKENS = 32  # copying a cache to reuse fewer tokens than this does not pay
_STALE_TEMP_S = 3600.0


@dataclass
class _Entry:
    key: str
    state: CacheState
    kv_bits: int | None
    last_used: float
    saved: list[int] | None = None  # the tokens its snapshot on disk holds

    def dirty(self) -> bool:
        s = self.state
        return s.cache is not None and bool(s.tokens) and s.tokens != self.saved


@dataclass
class Timings:
    """The last snapshot write and read, for benchmarks and logs."""

    save_bytes: int = 0
    save_s: float = 0.0
    load_bytes: int = 0
    load_s: float = 0.0
    discarded: list[str] = field(default_factory=list)  # reasons, newest last


class CacheStore:
    def __init__(
        self,
        identity: SnapshotIdentity,
        config: ModelConfig,
        settings: CacheSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.identity, self.config, self.clock = identity, config, clock
        self.settings = settings or CacheSettings()
        self.timings = Timings()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._active: str | None = None
        self._plan_budget: int | None = None
        self._anonymous = itertools.count(1)
        self._headers: dict[Path, tuple[int, SnapshotHeader | None]] = {}
        self._memory_bytes = self._active_bytes = 0
        self._remove_stale_temp_files()

    # --- settings ---

    def configure(self, settings: CacheSettings) -> None:
        """New settings (Settings page): budgets apply at once; off stops all disk traffic."""
        self.settings = settings
        self._headers.clear()
        self._enforce_memory()
        self._enforce_disk()

    def set_plan_budget(self, nbytes: int | None) -> None:
        """The memory plan's budget for idle caches (engine.memory.cache_budget)."""
        self._plan_budget = nbytes
        self._enforce_memory()

    @property
    def memory_budget(self) -> int:
        caps = [b for b in (self.settings.memory_budget, self._plan_budget) if b is not None]
        return min(caps) if caps else sys.maxsize

    # --- requests ---

    def take(self, key: str, kv_bits: int | None) -> CacheState:
        """The key's state, now the active one: from memory, else its snapshot, else empty."""
        entry = self._entries.get(key)
        if entry is not None and entry.kv_bits != kv_bits:
            self._entries.pop(key)  # another precision: the memory cache cannot serve
            entry = None
        if entry is None:
            entry = self._load(key, kv_bits) or _Entry(key, CacheState(), kv_bits, self.clock())
            self._entries[key] = entry
        return self._activate(entry)

    def take_nearest(self, ids: list[int], kv_bits: int | None) -> tuple[str, CacheState]:
        """For a request without a key: the cached entry sharing the longest token prefix
        (like mlx-lm's LRUPromptCache). A conversation's own cache is copied, never taken."""
        best, best_len = None, 0
        for key, e in self._entries.items():
            n = common_prefix_len(e.state.tokens, ids) if e.kv_bits == kv_bits else 0
            if n > best_len:
                best, best_len = key, n
        label = kv_label(kv_bits)
        for header in self._disk_headers():
            if header.key not in self._entries and header.kv_bits == label:
                n = common_prefix_len(header.tokens, ids)
                if n > best_len:
                    best, best_len = header.key, n
        if best is not None and best_len >= MIN_SHARED_TOKENS and best.startswith(ANONYMOUS):
            return best, self.take(best, kv_bits)
        key = f"{ANONYMOUS}{next(self._anonymous)}-{os.getpid()}"
        state = CacheState()
        if best is not None and best_len >= MIN_SHARED_TOKENS:
            if best in self._entries:  # in memory: a copy; its owner keeps the original
                src = self._entries[best].state
                state = CacheState(copy.deepcopy(src.cache), list(src.tokens), 0)
            elif (loaded := self._load(best, kv_bits)) is not None:  # a fresh read is a copy
                state = CacheState(loaded.state.cache, loaded.state.tokens, 0)
        self._entries[key] = _Entry(key, state, kv_bits, self.clock())
        self._activate(self._entries[key])
        anonymous = [k for k in self._entries if k.startswith(ANONYMOUS) and k != key]
        for old in anonymous[: max(0, len(anonymous) + 1 - MAX_ANONYMOUS)]:
            self.forget(old)
        return key, state

    def done(self, key: str) -> None:
        """A turn on `key` ended: it counts as used now (idle snapshots wait from here)."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.last_used = self.clock()
        self._enforce_memory()

    def recover(self) -> None:
        """A failed answer may have left half a chunk in the active cache: drop just that one."""
        entry = self._entries.get(self._active) if self._active else None
        if entry is not None:
            entry.state.clear()

    def forget(self, key: str) -> None:
        """A conversation was deleted: its memory cache and its snapshots (for every model)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.state.clear()
        if self._active == key:
            self._active = None
        name = self._file_name(key)
        for path in self.settings.folder.glob(f"*/{name}"):
            path.unlink(missing_ok=True)
        self._enforce_memory()

    def idle(self, now: float | None = None) -> int:
        """Snapshot conversations idle for idle_after_s; returns how many were written."""
        now = self.clock() if now is None else now
        written = 0
        for entry in list(self._entries.values()):
            if entry.dirty() and now - entry.last_used >= self.settings.idle_after_s:
                written += self._save(entry)
        return written

    def close(self) -> None:
        """The app quits or the model changes: write what is not on disk yet, free memory."""
        for entry in list(self._entries.values()):
            self._save(entry)
            entry.state.clear()
        self._entries.clear()
        self._active = None
        self._memory_bytes = self._active_bytes = 0

    def clear(self) -> None:
        """Settings' "Clear caches": every cache in memory and every snapshot in the folder."""
        for entry in self._entries.values():
            entry.state.clear()
        self._entries.clear()
        self._active = None
        self._memory_bytes = self._active_bytes = 0
        self._headers.clear()
        for path in self._snapshot_files() + self._temp_files():
            path.unlink(missing_ok=True)

    def usage(self) -> CacheUsage:
        """Any thread: plain numbers kept by the engine thread, and a scan of the folder."""
        files = self._snapshot_files()
        return CacheUsage(
            enabled=self.settings.enabled,
            folder=str(self.settings.folder),
            memory_bytes=self._memory_bytes,
            active_bytes=self._active_bytes,
            memory_budget=self.memory_budget,
            memory_entries=len(self._entries),
            disk_bytes=sum(_size(p) for p in files),
            disk_budget=self.settings.disk_budget,
            snapshots=len(files),
        )

    def keys(self) -> list[str]:
        """Keys held in memory, least recently used first."""
        return list(self._entries)

    def snapshot_path(self, key: str) -> Path:
        return self.settings.folder / self.identity.model[:16] / self._file_name(key)

    # --- memory ---

    def _activate(self, entry: _Entry) -> CacheState:
        self._entries.move_to_end(entry.key)
        entry.last_used = self.clock()
        self._active = entry.key
        self._enforce_memory()
        return entry.state

    def _enforce_memory(self) -> None:
        budget = self.memory_budget
        idle = [e for e in self._entries.values() if e.key != self._active]
        total = sum(e.state.nbytes for e in idle)
        for entry in idle:  # least recently used first
            if total <= budget:
                break
            total -= entry.state.nbytes
            self._save(entry)
            entry.state.clear()
            del self._entries[entry.key]
        active = self._entries.get(self._active) if self._active else None
        self._memory_bytes = total
        self._active_bytes = active.state.nbytes if active is not None else 0

    # --- disk ---

    @staticmethod
    def _file_name(key: str) -> str:
        return snapshot_file_name(key)

    def _save(self, entry: _Entry) -> int:
        """Write the entry's snapshot if it changed; 1 if written. A failed write (disk full)
        costs the snapshot only: the memory cache and an older snapshot stay."""
        s = entry.state
        if not self.settings.enabled or not entry.dirty() or s.cache is None:
            return 0
        path = self.snapshot_path(entry.key)
        start = time.perf_counter()
        try:
            size = write_snapshot(
                path, entry.key, s.cache, s.tokens, s.skip, entry.kv_bits, self.identity
            )
        except (OSError, RuntimeError, ValueError) as e:
            log.warning("KV-cache snapshot of %s not written: %s", entry.key, e)
            return 0
        self.timings.save_bytes, self.timings.save_s = size, time.perf_counter() - start
        entry.saved = list(s.tokens)
        self._enforce_disk()
        return 1

    def _load(self, key: str, kv_bits: int | None) -> _Entry | None:
        path = self.snapshot_path(key)
        if not self.settings.enabled or not path.exists():
            return None
        start = time.perf_counter()
        try:
            cache, header = read_snapshot(path, key, self.identity, kv_bits, self.config)
        except SnapshotInvalid as e:
            reason = f"{key}: {e}"
            log.warning("discarding KV-cache snapshot %s (%s)", path, reason)
            self.timings.discarded.append(reason)
            path.unlink(missing_ok=True)
            return None
        self.timings.load_bytes, self.timings.load_s = _size(path), time.perf_counter() - start
        os.utime(path)  # the disk LRU goes by modification time
        state = CacheState(cache, list(header.tokens), header.skip)
        return _Entry(key, state, kv_bits, self.clock(), saved=list(header.tokens))

    def _disk_headers(self) -> list[SnapshotHeader]:
        """Headers of this model's snapshots (cached by mtime): for prefix search without loading."""
        if not self.settings.enabled:
            return []
        out = []
        for path in (self.settings.folder / self.identity.model[:16]).glob(f"*{SUFFIX}"):
            if path.name.startswith(TEMP_PREFIX):
                continue
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            cached = self._headers.get(path)
            if cached is None or cached[0] != mtime:
                try:
                    header = read_header(path)
                except SnapshotInvalid:
                    header = None  # deleted with its reason if it is ever loaded
                cached = self._headers[path] = (mtime, header)
            if cached[1] is not None:
                out.append(cached[1])
        return out

    def _snapshot_files(self) -> list[Path]:
        folder = self.settings.folder
        if not folder.is_dir():
            return []
        return [p for p in folder.glob(f"*/*{SUFFIX}") if not p.name.startswith(TEMP_PREFIX)]

    def _temp_files(self) -> list[Path]:
        folder = self.settings.folder
        return list(folder.glob(f"*/{TEMP_PREFIX}*")) if folder.is_dir() else []

    def _enforce_disk(self) -> None:
        """Least recently used snapshots go first until the folder fits the disk budget."""
        files = []
        for p in self._snapshot_files():
            try:
                st = p.stat()
            except OSError:
                continue
            files.append((st.st_mtime_ns, st.st_size, p))
        files.sort()
        total = sum(size for _, size, _ in files)
        for _, size, path in files:
            if total <= self.settings.disk_budget:
                break
            path.unlink(missing_ok=True)
            total -= size
            for entry in self._entries.values():
                if self.snapshot_path(entry.key) == path:
                    entry.saved = None  # its memory cache is the only copy again

    def _remove_stale_temp_files(self) -> None:
        # Another process (the CLI beside the app) may be writing its own right now.
        for path in self._temp_files():
            try:
                if time.time() - path.stat().st_mtime > _STALE_TEMP_S:
                    path.unlink()
            except OSError:
                pass


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
