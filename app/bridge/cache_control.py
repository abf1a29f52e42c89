"""Conversations' KV caches from the app (issue 12): settings, disk used, Clear, forget.

The engine's CacheStore (engine.cache_store, on the engine thread) keeps each conversation's
cache ("chat:<id>"; the quick prompt's "quick") in memory and writes snapshots to the app's cache
folder. Here, on the GUI thread: the CacheSettings the app loads models with (app.main), Settings'
changes and "Clear caches" run as engine jobs, and a conversation purged for good loses its
snapshot. The disk used is a scan of the folder (files only, no MLX), so Settings shows it with
no model loaded as well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platformdirs import user_cache_dir
from PySide6.QtCore import QObject, Signal

from app.identity import APP_NAME
from engine.cache_settings import SUFFIX, TEMP_PREFIX, CacheSettings, snapshot_file_name
from engine.errors import NoModel

if TYPE_CHECKING:
    from app.bridge.engine_controller import EngineController
    from app.bridge.qt_job import QtJob
    from app.settings import ChatSettings
    from app.store.store import Store
    from engine.jobs import Job
    from engine.service import EngineService

log = logging.getLogger(__name__)

GB = 10**9  # the disk budget is in decimal GB, as disks are sold
CACHE_JOB = "caches"


def chat_key(conversation_id: int) -> str:
    """The cache key of a window chat (app.window sends it with every answer)."""
    return f"chat:{conversation_id}"


def default_cache_folder() -> Path:
    """The app's cache folder, named as the history's data folder is (macOS:
    ~/Library/Caches/Nemo Chat/kv-cache): a cache, so backups may skip it."""
    return Path(user_cache_dir(APP_NAME, appauthor=False)) / "kv-cache"


def cache_settings(settings: ChatSettings, folder: str | Path | None = None) -> CacheSettings:
    """What the engine is given at load: the folder, the disk budget and the off switch; the
    memory budget is left to the memory plan."""
    return CacheSettings(
        dir=Path(folder) if folder is not None else default_cache_folder(),
        disk_budget=settings.cache_disk_gb * GB,
        enabled=settings.cache_enabled,
    )


@dataclass(frozen=True)
class DiskUsage:
    """What Settings shows (plain data)."""

    folder: str | None  # None: this app keeps caches in memory only (tests, scripts)
    disk_bytes: int
    snapshots: int
    disk_budget: int
    enabled: bool


def _snapshot_files(folder: Path) -> list[Path]:
    # The store's layout: <folder>/<model id>/<key hash>.safetensors, temporaries hidden.
    if not folder.is_dir():
        return []
    return [p for p in folder.glob(f"*/*{SUFFIX}") if not p.name.startswith(TEMP_PREFIX)]


def disk_usage(folder: Path) -> tuple[int, int]:
    """Bytes and number of snapshots under `folder`, every model's."""
    total = count = 0
    for path in _snapshot_files(folder):
        try:
            total += path.stat().st_size
        except OSError:
            continue  # removed meanwhile (evicted on the engine thread)
        count += 1
    return total, count


def _local_store(service: EngineService) -> Any:
    """The loaded backend's CacheStore; None with no model or a server (engine thread)."""
    try:
        backend = service.backend
    except NoModel:
        return None
    return getattr(backend, "caches", None)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as e:  # one stuck file must not keep the rest
            log.warning("could not delete the cache snapshot %s: %s", path, e)


def forget_snapshots(folder: Path, key: str) -> None:
    """Delete the key's snapshots of every model (files only: any thread while none writes)."""
    if folder.is_dir():
        _remove(list(folder.glob(f"*/{snapshot_file_name(key)}")))


class CacheControl(QObject):
    """The window's handle on the caches; `changed` carries the DiskUsage after each change."""

    changed = Signal(object)  # DiskUsage

    def __init__(
        self,
        controller: EngineController,
        store: Store | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        # Purged before the cache folder was set (a controller given its caches later; app.main
        # sets them at construction): their snapshots go once it is.
        self._unforgotten: list[int] = []
        controller.cachesChanged.connect(self._forget_pending)
        if store is not None:  # "Delete now" and the 30-day purge (app.chat.deletions)
            store.on_purged(self.forget_conversation)

    @property
    def settings(self) -> CacheSettings | None:
        return self.controller.caches

    def usage(self) -> DiskUsage:
        """The disk used now: a scan of the folder, cheap enough for the GUI thread."""
        caches = self.settings
        if caches is None:
            return DiskUsage(None, 0, 0, 0, False)
        size, count = disk_usage(caches.folder)
        return DiskUsage(str(caches.folder), size, count, caches.disk_budget, caches.enabled)

    def apply(self, settings: ChatSettings) -> QtJob | None:
        """Settings' budget and off switch: for the next load, and for the loaded model at once
        (CacheStore.configure on the engine thread); None when nothing changed."""
        old = self.settings
        if old is None:
            return None
        new = replace(old, disk_budget=settings.cache_disk_gb * GB, enabled=settings.cache_enabled)
        if new == old:
            return None
        self.controller.caches = new

        def configure(_job: Job) -> None:
            store = _local_store(self.controller.service)
            if store is not None:
                store.configure(new)

        return self._run(configure)

    def clear(self) -> QtJob:
        """ "Clear caches": every cache in memory and every snapshot on disk, on the engine
        thread (so no snapshot is being written meanwhile); `changed` follows."""
        caches = self.settings
        folder = caches.folder if caches is not None else None

        def clear(_job: Job) -> None:
            store = _local_store(self.controller.service)
            if store is not None:
                store.clear()
            if folder is not None and folder.is_dir():  # other models' too, with none loaded
                _remove(_snapshot_files(folder) + list(folder.glob(f"*/{TEMP_PREFIX}*")))

        return self._run(clear)

    def forget_conversation(self, conversation_id: int) -> None:
        """A conversation purged for good: its cache in memory and its snapshots on disk, also
        when no model is loaded (the purge of expired chats runs at start, before the load)."""
        key = chat_key(conversation_id)
        caches = self.settings
        folder = caches.folder if caches is not None else None
        if folder is None:
            self._unforgotten.append(conversation_id)

        def forget(_job: Job) -> None:
            store = _local_store(self.controller.service)
            if store is not None:
                store.forget(key)
            if folder is not None:
                forget_snapshots(folder, key)

        try:
            self._run(forget, notify=False)
        except RuntimeError:  # the engine has shut down: nothing writes any more
            if folder is not None:
                forget_snapshots(folder, key)

    def _forget_pending(self) -> None:
        if self.settings is not None:
            pending, self._unforgotten = self._unforgotten, []
            for conversation_id in pending:
                self.forget_conversation(conversation_id)

    def _run(self, run: Any, notify: bool = True) -> QtJob:
        job = self.controller.run_on_engine(CACHE_JOB, run)
        if notify:
            job.finished.connect(lambda _result: self.changed.emit(self.usage()))
            job.failed.connect(lambda _message: self.changed.emit(self.usage()))
        return job
