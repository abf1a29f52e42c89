"""Run a parser in a worker process that can be stopped: a time limit and a memory limit.

A hostile or broken file can make a parser loop or allocate without bound; in a child process
that costs the child, never the app. The worker is started with multiprocessing's 'spawn'
context (safe from a Qt process, and in a PyInstaller bundle once `freeze_support()` runs in
packaging/entry.py) and reused across calls; it is killed on a limit and restarted on demand.

Limits: the parent polls the child's resident memory (psutil, every platform) and its clock;
on Linux the child also caps its own address space (RLIMIT_AS), so an allocation fails at once.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import sys
import threading
import time
import types
from dataclasses import dataclass
from typing import Any

DEFAULT_MEMORY = 1536 * 1024 * 1024  # bytes of resident memory the parser may use
_POLL_S = 0.02
_RECYCLE_FRACTION = 0.5  # a worker left above half the limit is restarted to free it


class SandboxError(Exception):
    """The call did not return; str() says why (time, memory, crash)."""


class Timeout(SandboxError):
    pass


class OutOfMemory(SandboxError):
    pass


class Crashed(SandboxError):
    pass


class Failed(SandboxError):
    """The target raised; `type_name`, `message` and `problem` (a DocumentError's) say what."""

    def __init__(self, type_name: str, message: str, problem: str | None):
        self.type_name, self.message, self.problem = type_name, message, problem
        super().__init__(f"{type_name}: {message}")


@dataclass(frozen=True)
class Usage:
    seconds: float
    peak_rss: int  # the worker's peak resident memory during the call, bytes


# The child's first code: it makes the `engine` package importable without running its
# __init__ (which loads MLX: slow, and memory the parser needs), then serves calls.
_BOOT = """
import importlib.util, sys
spec = importlib.util.find_spec("engine")
sys.modules["engine"] = importlib.util.module_from_spec(spec)
from engine.docs.sandbox import _worker_main
_worker_main(conn, memory)
"""


def _worker_main(conn, memory: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _limit_address_space(memory)
    while True:
        try:
            target, args = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        _reset_peak()
        try:
            module, _, name = target.partition(":")
            result = ("ok", getattr(importlib.import_module(module), name)(*args))
        except MemoryError:
            result = ("memory", None)
        except Exception as exc:  # reported to the parent as plain data
            result = ("raise", (type(exc).__name__, str(exc), getattr(exc, "problem", None)))
        try:
            conn.send((*result, _peak_rss()))
        except MemoryError:
            conn.send(("memory", None, _peak_rss()))


def _limit_address_space(memory: int) -> None:
    if not sys.platform.startswith("linux"):
        return  # macOS does not enforce RLIMIT_AS; the parent's RSS watch covers it
    import resource

    # Address space runs well above resident memory (thread stacks, mapped libraries).
    limit = memory + 1024 * 1024 * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _reset_peak() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, so each call's peak is its own.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss() -> int:
    """This process's peak resident bytes since `_reset_peak` (Linux) or its current RSS.

    Not ru_maxrss: Linux carries the parent's peak over fork+exec, so a child of an app holding
    a 7 GB model would report 7 GB.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return psutil.Process().memory_info().rss


class Worker:
    """One reusable child process; `call` runs `module:function(*args)` in it under limits."""

    def __init__(self, memory: int = DEFAULT_MEMORY):
        self.memory = memory
        self._proc = None
        self._conn = None
        self._lock = threading.Lock()
        self.last_usage: Usage | None = None
        self._sampled = 0

    def call(self, target: str, args: tuple = (), *, timeout: float, fresh: bool = False) -> Any:
        with self._lock:
            if fresh:
                self._stop()
            self._start()
            t0 = time.monotonic()
            try:
                self._conn.send((target, args))
                status, payload, peak = self._wait(timeout)
            except (EOFError, OSError, BrokenPipeError):
                code = self._stop()
                raise Crashed(
                    f"the reader process stopped unexpectedly (exit code {code})"
                ) from None
            self.last_usage = Usage(time.monotonic() - t0, peak)
            if peak > self.memory * _RECYCLE_FRACTION:
                self._stop()
            if status == "ok":
                return payload
            if status == "memory":
                self._stop()
                raise OutOfMemory(f"reading it needed more than {self.memory >> 20:,} MB of memory")
            raise Failed(*payload)

    def _wait(self, timeout: float):
        import psutil

        deadline = time.monotonic() + timeout
        process = psutil.Process(self._proc.pid)
        while not self._conn.poll(_POLL_S):
            if not self._proc.is_alive():
                raise EOFError
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                raise EOFError from None
            self._sampled = max(self._sampled, rss)
            if rss > self.memory:
                self._stop()
                raise OutOfMemory(f"reading it needed more than {self.memory >> 20:,} MB of memory")
            if time.monotonic() > deadline:
                self._stop()
                raise Timeout(f"reading it took longer than {timeout:.0f} seconds; stopped")
        return self._conn.recv()

    def _start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._stop()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._proc = context.Process(
            target=exec,
            args=(_BOOT, {"conn": child, "memory": self.memory}),
            name="nemo-doc-reader",
            daemon=True,
        )
        with _main_hidden():
            self._proc.start()
        child.close()
        self._conn = parent

    def _stop(self) -> int | None:
        proc, self._proc = self._proc, None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if proc is None:
            return None
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        return proc.exitcode

    def close(self) -> None:
        with self._lock:
            self._stop()


_main_lock = threading.Lock()


@contextlib.contextmanager
def _main_hidden():
    """Start the child without re-running this process's main script (it need not be guarded
    by `if __name__ == "__main__"`, and the worker needs nothing from it). In a bundle the
    child starts through `multiprocessing.freeze_support()` in packaging/entry.py."""
    with _main_lock:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is None:  # an embedded interpreter may have none
                sys.modules.pop("__main__", None)
            else:
                sys.modules["__main__"] = main


_shared: Worker | None = None
_shared_lock = threading.Lock()


def shared_worker() -> Worker:
    """The process-wide worker that `engine.docs.extract` uses."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Worker()
        return _shared
