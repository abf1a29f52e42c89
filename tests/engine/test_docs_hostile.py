"""No file can take the app down: ZIP bombs refused from the directory, parsers run in a worker
process that is stopped on a time or memory limit (engine.docs.sandbox)."""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from engine.docs import sandbox
from engine.docs.extract import DocumentError, extract

MB = 1024 * 1024


def _bomb(path: Path, inflated: int = 200 * MB) -> Path:
    """A DOCX whose document.xml inflates from a few hundred KB to `inflated` bytes of XML."""
    chunk = b"<w:p><w:r><w:t>aaaaaaaaaaaaaaaa</w:t></w:r></w:p>" * (MB // 48)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            written = 0
            while written < inflated:
                f.write(chunk)
                written += len(chunk)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return _bomb(tmp_path_factory.mktemp("bomb") / "contract.docx")


def test_zip_bomb_is_refused_at_once_with_bounded_memory(bomb):
    assert bomb.stat().st_size < 2 * MB
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(DocumentError) as info:
        extract(bomb)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    message = str(info.value)
    assert message.startswith("contract.docx: refused:") and "ZIP bomb" in message
    assert "word/document.xml" in message and "limit 100x" in message
    # Refused from the central directory: nothing inflated, no worker started.
    assert elapsed < 1.0, elapsed
    assert peak < bomb.stat().st_size + 8 * MB, peak


def test_zip_whose_directory_lies_about_sizes_cannot_inflate_past_them(tmp_path):
    """A bomb that declares small sizes: zipfile stops at the declared size (bad CRC)."""
    path = _bomb(tmp_path / "liar.docx", inflated=64 * MB)
    data = bytearray(path.read_bytes())
    # Rewrite the declared uncompressed size in the central directory entry of document.xml.
    name = b"word/document.xml"
    at = data.find(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(name)] != name:
        at = data.find(b"PK\x01\x02", at + 4)
    assert struct.unpack_from("<I", data, at + 24)[0] >= 64 * MB
    struct.pack_into("<I", data, at + 24, 1000)
    path.write_bytes(bytes(data))
    worker = sandbox.Worker(memory=512 * MB)
    try:
        with pytest.raises(sandbox.Failed) as info:
            worker.call("engine.docs.readers:parse", ("docx", str(path), bytes(data)), timeout=60)
        assert "corrupt" in (info.value.problem or "") or "CRC" in info.value.message
        assert worker.last_usage.peak_rss < 400 * MB
    finally:
        worker.close()


def test_runaway_memory_is_stopped_and_the_worker_comes_back():
    worker = sandbox.Worker(memory=256 * MB)
    try:
        with pytest.raises(sandbox.OutOfMemory) as info:
            worker.call("builtins:bytearray", (4 * 1024 * MB,), timeout=60)
        assert "more than 256 MB" in str(info.value)
        assert worker.call("builtins:len", ("still alive",), timeout=60) == 11
    finally:
        worker.close()


def test_runaway_memory_in_many_small_pieces_is_stopped():
    """Growth the address-space limit may not catch at once: the parent's RSS watch does."""
    worker = sandbox.Worker(memory=200 * MB)
    try:
        with pytest.raises(sandbox.OutOfMemory):
            # a list of 40M distinct ints: ~1.5 GB if let run
            worker.call("builtins:list", (range(10**9, 10**9 + 40_000_000),), timeout=120)
    finally:
        worker.close()


def test_a_hanging_parser_is_stopped_on_time_and_the_worker_comes_back():
    worker = sandbox.Worker()
    try:
        worker.call("builtins:len", ("warm",), timeout=60)  # startup is not the parser's time
        with pytest.raises(sandbox.Timeout) as info:
            worker.call("time:sleep", (60,), timeout=0.5)
        assert "longer than 0 seconds" in str(info.value) or "longer than 1 seconds" in str(
            info.value
        )
        assert worker.call("builtins:abs", (-3,), timeout=60) == 3
    finally:
        worker.close()


def test_a_crashing_parser_is_reported_not_fatal():
    worker = sandbox.Worker()
    try:
        with pytest.raises(sandbox.Crashed):
            worker.call("os:_exit", (3,), timeout=60)
        assert worker.call("builtins:max", ((1, 5),), timeout=60) == 5
    finally:
        worker.close()


def test_extract_names_the_file_when_the_worker_gives_up(tmp_path, monkeypatch):
    path = tmp_path / "slow.txt"
    path.write_text("hello")
    monkeypatch.setattr(sandbox.Worker, "call", _raise_timeout)
    with pytest.raises(DocumentError) as info:
        extract(path)
    assert str(info.value).startswith("slow.txt: could not be read as TEXT: reading it took")


def _raise_timeout(self, *args, **kwargs):
    raise sandbox.Timeout("reading it took longer than 60 seconds; stopped")


def test_extraction_runs_in_another_process(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("pid check")
    extract(path)
    worker = sandbox.shared_worker()
    assert worker._proc is not None and worker._proc.pid != os.getpid()
