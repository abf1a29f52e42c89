"""engine.hub.convert_flow (download the bf16 original, quantize it here) and `nemo pull`, against the
local imitation of the Hub in tests/engine/hub_server.py."""

from __future__ import annotations

import _thread
import argparse
import json
import shutil
import threading
import time
from collections import namedtuple
from pathlib import Path

import mlx.core as mx
import pytest

import engine
from engine.cli import pull as pull_cli
from engine.config import load_config
from engine.events import Cancelled
from engine.hub import download as hub
from engine.hub.convert_flow import PullProgress, pull_and_convert, quantized_bytes
from engine.hub.local_models import models_on_disk
from engine.weights import load_model

from .hub_server import FakeRepo, HubServer, isolate_huggingface_hub, point_huggingface_hub_at

TINY = "test-org/tiny-nemo-bf16"  # the shared tiny_model_dir: ~200 MB of bf16 weights
MICRO = "test-org/micro-nemo-bf16"  # the same shapes with a 1024-token vocab: ~7 MB, fast


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def micro_files(tmp_path_factory) -> dict[str, bytes]:
    from engine.synthetic import preset_config, write_checkpoint

    config = preset_config("tiny", vocab_size=1024)
    return _files(write_checkpoint(tmp_path_factory.mktemp("micro") / "m", config))


@pytest.fixture
def fake_hub(micro_files, monkeypatch):
    isolate_huggingface_hub(monkeypatch)
    with HubServer() as fake:
        fake.add(FakeRepo(MICRO, dict(micro_files)))
        point_huggingface_hub_at(fake.url, monkeypatch)
        yield fake


def _loads(path: Path) -> dict:
    """Load the weights of a micro model (engine.load refuses its 1024-token vocab) and return its
    quantization."""
    config = load_config(path)
    load_model(path, config)
    return config.quantization


def _phases(events: list[PullProgress]) -> dict[str, list[PullProgress]]:
    """Events by phase, checking that every download event comes before every convert event."""
    names = [e.phase for e in events]
    assert names == sorted(names, key=["download", "convert"].index), names
    return {p: [e for e in events if e.phase == p] for p in ("download", "convert")}


def _assert_runs_to_total(events: list[PullProgress], total: int) -> None:
    done = [e.done for e in events]
    assert done == sorted(done) and done[-1] == total, done
    assert all(e.total == total and e.speed_bps >= 0 for e in events)


def test_pull_and_convert_tiny_checkpoint(fake_hub, tiny_model_dir, tiny_q4_dir, tmp_path):
    files = _files(tiny_model_dir)  # config.json, two bf16 shards, index, tekken.json
    fake_hub.add(FakeRepo(TINY, files))
    root, events = tmp_path / "models", []
    path = pull_and_convert(root, repo_id=TINY, on_progress=events.append)

    assert path == root / "test-org--tiny-nemo-bf16-4bit-local"
    loaded = engine.load(path)
    assert loaded.config.quantization == {"group_size": 64, "bits": 4}
    assert loaded.tokenizer.encode_chat([{"role": "user", "content": "Salut"}])[0] == 1
    # The same bytes as engine.weights.convert run directly on the source folder.
    for name in ["model.safetensors.index.json", "model-00001-of-00001.safetensors"]:
        assert (path / name).read_bytes() == (tiny_q4_dir / name).read_bytes(), name

    phases = _phases(events)
    _assert_runs_to_total(phases["download"], sum(len(b) for b in files.values()))
    shards = sum(len(b) for n, b in files.items() if n.endswith(".safetensors"))
    _assert_runs_to_total(phases["convert"], shards)
    assert phases["convert"][0].done == 0 and len(phases["convert"]) > 10  # one per tensor

    # The bf16 original is kept by default, next to the 4-bit copy; no work folder is left.
    found = {m.name: (m.quantization, m.complete) for m in models_on_disk(root)}
    assert found == {TINY: ("bf16", True), TINY + "-4bit-local": ("4-bit g64", True)}
    assert not list(root.glob(".*.partial"))
    # Done is done: a second call returns at once, without asking the Hub anything.
    requests = len(fake_hub.log)
    assert pull_and_convert(root, repo_id=TINY) == path
    assert len(fake_hub.log) == requests


def test_cancel_during_convert_then_resume(fake_hub, micro_files, tmp_path):
    root, cancel, events = tmp_path / "models", threading.Event(), []

    def on_progress(p: PullProgress) -> None:
        events.append(p)
        if p.phase == "convert" and p.done > 0:
            cancel.set()  # as the GUI would, between two tensors

    with pytest.raises(Cancelled, match="conversion cancelled; the download is complete"):
        pull_and_convert(root, repo_id=MICRO, on_progress=on_progress, cancel=cancel)
    final = root / "test-org--micro-nemo-bf16-4bit-local"
    assert not final.exists() and not list(root.glob(".*.partial"))
    assert [m.name for m in models_on_disk(root)] == [MICRO]  # nothing that looks converted

    # A conversion killed outright (power cut) leaves a work folder that looks almost complete.
    stale = root / f".{final.name}.partial"
    stale.mkdir()
    (stale / "config.json").write_text(json.dumps({"quantization": {"bits": 4}}))
    (stale / "model-00001-of-00001.safetensors").write_bytes(b"half")

    events.clear()
    path = pull_and_convert(root, repo_id=MICRO, on_progress=events.append, keep_original=False)
    assert path == final and not stale.exists()
    assert [m.name for m in models_on_disk(root)] == [MICRO + "-4bit-local"]  # bf16 deleted
    assert _loads(path) == {"group_size": 64, "bits": 4}
    assert set(_files(path)) >= {"config.json", "tekken.json", "model.safetensors.index.json"}
    # The download was not fetched again; the conversion started over and ran to its end.
    for name in micro_files:
        assert len(fake_hub.data_gets(name)) == 1, name
    phases = _phases(events)
    assert phases["download"][0].done == phases["download"][0].total
    _assert_runs_to_total(phases["convert"], phases["convert"][0].total)
    assert phases["convert"][0].done == 0


def test_cancel_during_download_keeps_the_bytes(fake_hub, tmp_path):
    cancel = threading.Event()

    def on_progress(p: PullProgress) -> None:
        if p.phase == "download" and p.done > 1_000_000:
            cancel.set()

    fake_hub.chunk_delay_s = 0.005
    assert issubclass(hub.DownloadCancelled, Cancelled)  # one except clause for both phases
    with pytest.raises(hub.DownloadCancelled):
        pull_and_convert(tmp_path, repo_id=MICRO, on_progress=on_progress, cancel=cancel)
    assert list((tmp_path / "test-org--micro-nemo-bf16" / ".cache").rglob("*.incomplete"))
    assert not list(tmp_path.glob("*-local")) and not list(tmp_path.glob(".*.partial"))


def test_disk_check_counts_the_converted_copy(fake_hub, micro_files, tmp_path, monkeypatch):
    download = sum(len(b) for b in micro_files.values())
    shards = sum(len(b) for n, b in micro_files.items() if n.endswith(".safetensors"))
    assert quantized_bytes(shards) == int(shards / 2 * 0.5625)  # 4-bit g64: 0.5625 B/param
    free = hub.DISK_MARGIN_BYTES + download + quantized_bytes(shards) // 2  # not enough for both
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 10**12 - free, free))
    with pytest.raises(
        hub.DownloadError,
        match=r"GB free \(0\.0 GB to download, 0\.0 GB for the 4-bit copy\), only",
    ):
        pull_and_convert(tmp_path, repo_id=MICRO)
    assert not [r for r in fake_hub.log if r.kind != "api"]  # nothing was fetched
    hub.download(MICRO, tmp_path / "plain")  # the download alone fits


def test_short_write_is_not_taken_for_a_model(fake_hub, tmp_path, monkeypatch):
    # MLX's save_safetensors does not report a full disk; the shard is then shorter than its header.
    save = mx.save_safetensors

    def save_then_lose_the_tail(path, arrays, metadata=None):
        save(path, arrays, metadata=metadata)
        with open(path, "r+b") as f:
            f.truncate(Path(path).stat().st_size - 100)

    monkeypatch.setattr(mx, "save_safetensors", save_then_lose_the_tail)
    with pytest.raises(hub.DownloadError, match="could not be written in full .* is the disk full"):
        pull_and_convert(tmp_path, repo_id=MICRO)
    assert not list(tmp_path.glob("*-local")) and not list(tmp_path.glob(".*.partial"))
    assert [m.name for m in models_on_disk(tmp_path)] == [MICRO]


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nemo")
    pull_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["pull", *argv])


def _run_cli(*argv: str) -> int:
    return pull_cli.run(_parse(*argv))


def test_cli_pull_and_convert_8bit(fake_hub, tmp_path, capsys):
    assert _run_cli(MICRO, "--convert", "--bits", "8", "--dest", str(tmp_path)) == 0
    out, err = capsys.readouterr()
    path = tmp_path / "test-org--micro-nemo-bf16-8bit-local"
    assert out.strip().splitlines()[-1] == str(path)
    assert _loads(path) == {"group_size": 64, "bits": 8}
    lines = err.splitlines()
    downloads = [x for x in lines if x.startswith("download")]
    converts = [x for x in lines if x.startswith("convert")]
    assert downloads and converts and lines.index(downloads[-1]) < lines.index(converts[0])
    for last in (downloads[-1], converts[-1]):  # bar, percent, bytes, speed, time left
        assert "[########################] 100%" in last and " MB / " in last and "/s" in last
        assert "left" in last
    assert "the bf16 original is kept in" in err


def test_cli_missing_repo_is_one_clear_line(fake_hub, tmp_path, capsys):
    from engine.cli.main import main

    assert main(["pull", "nobody/nothing", "--dest", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "nemo pull: no such model repo: nobody/nothing (check the name on 127.0.0.1)\n"


def test_cli_ctrl_c_stops_and_the_next_run_resumes(fake_hub, micro_files, tmp_path, capsys):
    # The largest shard stalls after a megabyte (the server holds the connection open), so the
    # Ctrl+C lands mid-shard however slowly this machine runs: no race with a fixed delay.
    shard = max(
        (n for n in micro_files if n.endswith(".safetensors")), key=lambda n: len(micro_files[n])
    )
    fake_hub.stall_at[shard] = 1_000_000
    whole = 1_000_000 // hub._CHUNK_BYTES * hub._CHUNK_BYTES  # what the client can write by then
    cache, pressed = tmp_path / "test-org--micro-nemo-bf16" / ".cache", []

    def landed() -> int:
        sizes = []
        for part in cache.rglob("*.incomplete"):
            try:
                sizes.append(part.stat().st_size)
            except FileNotFoundError:  # a small file finished and was renamed meanwhile
                pass
        return max(sizes, default=0)

    def press_ctrl_c() -> None:  # like a user would, once part of the shard has landed
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if fake_hub.stalled.is_set() and landed() >= whole:
                pressed.append(True)
                _thread.interrupt_main()
                return
            time.sleep(0.01)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    rc = _run_cli(MICRO, "--dest", str(tmp_path))
    presser.join()
    assert pressed, "the download never reached the stall"
    err = capsys.readouterr().err
    assert rc == 130 and "what arrived is kept — run the same command again to resume" in err
    assert _run_cli(MICRO, "--dest", str(tmp_path)) == 0  # stall_at fires once
    ranges = [g.range for g in fake_hub.data_gets(shard)]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and len(ranges) == 2
