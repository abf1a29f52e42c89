"""engine.hub.download against a local imitation of the Hub (tests/engine/hub_server.py): no internet."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import shutil
import socket
import threading
import time
from collections import namedtuple
from pathlib import Path

import filelock
import mlx.core as mx
import numpy as np
import pytest

from engine.hub import download as hub
from engine.hub import local_models
from engine.tokenizer import bundled_tekken_path

from .hub_server import (
    FakeHub,
    FakeRepo,
    HubServer,
    isolate_huggingface_hub,
    point_huggingface_hub_at,
)

REPO = "test-org/tiny-nemo-4bit"
BIG = "model-00001-of-00002.safetensors"
SMALL = "model-00002-of-00002.safetensors"
CONFIG = {
    "model_type": "mistral",
    "hidden_size": 256,
    "num_hidden_layers": 2,
    "intermediate_size": 512,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 24,
    "vocab_size": 131072,
    "quantization": {"group_size": 64, "bits": 4},
}


@pytest.fixture(autouse=True)
def _hub_env(monkeypatch):
    isolate_huggingface_hub(monkeypatch)
    # Progress on every chunk; retries after a dropped connection without long waits.
    monkeypatch.setattr(hub, "_PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(hub, "_RETRY_WAITS_S", (0.05, 0.05, 0.05))


def _safetensors(arrays: dict[str, np.ndarray], tmp: Path) -> bytes:
    path = tmp / "t.safetensors"
    mx.save_safetensors(
        str(path), {k: mx.array(v) for k, v in arrays.items()}, metadata={"format": "mlx"}
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory) -> dict[str, bytes]:
    """A fake MLX 4-bit repo: a ~3 MB and a small shard, index, config, no tekken.json, extras."""
    tmp = tmp_path_factory.mktemp("repo")
    rng = np.random.default_rng(0)
    big = {"model.embed_tokens.weight": rng.integers(0, 2**32, (3000, 256), dtype=np.uint32)}
    small = {"model.norm.weight": rng.standard_normal(256).astype(np.float32)}
    index = {
        "metadata": {"total_size": 0},
        "weight_map": {**dict.fromkeys(big, BIG), **dict.fromkeys(small, SMALL)},
    }
    return {
        "config.json": json.dumps(CONFIG).encode(),
        BIG: _safetensors(big, tmp),
        SMALL: _safetensors(small, tmp),
        "model.safetensors.index.json": json.dumps(index).encode(),
        "tokenizer_config.json": b'{"model_max_length": 1024000}',
        "README.md": b"# not needed\n",
        "consolidated.safetensors": b"x" * 1000,  # the Mistral-native duplicate: never downloaded
    }


@pytest.fixture
def fake_hub(repo_files, monkeypatch):
    with HubServer(FakeHub()) as fake:
        fake.add(FakeRepo(REPO, dict(repo_files)))
        point_huggingface_hub_at(fake.url, monkeypatch)
        yield fake


@pytest.fixture
def refused_endpoint(monkeypatch) -> str:
    """An endpoint on a port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    point_huggingface_hub_at(url, monkeypatch)
    return url


def _download(dest: Path, **kw):
    events = []
    path = hub.download(REPO, dest, on_progress=events.append, **kw)
    return path, events


def _assert_complete(dest: Path, repo_files: dict[str, bytes]) -> None:
    wanted = ["config.json", BIG, SMALL, "model.safetensors.index.json", "tokenizer_config.json"]
    for name in wanted:
        assert (dest / name).read_bytes() == repo_files[name], name
    assert not (dest / "README.md").exists() and not (dest / "consolidated.safetensors").exists()
    assert local_models.missing_files(dest) == []
    # Loadable: the shards parse and hold what the server had.
    shard = mx.load(str(dest / BIG))
    assert shard["model.embed_tokens.weight"].shape == (3000, 256)
    assert not list((dest / ".cache").rglob("*.incomplete"))


def test_download_completes_with_monotonic_progress(fake_hub, repo_files, tmp_path):
    dest, events = _download(tmp_path / "m")
    _assert_complete(dest, repo_files)
    total = sum(
        len(repo_files[n])
        for n in [
            "config.json",
            BIG,
            SMALL,
            "model.safetensors.index.json",
            "tokenizer_config.json",
        ]
    )
    assert len(events) >= 10  # the 3 MB shard alone comes in 256 KiB chunks
    assert all(e.total_bytes == total for e in events)
    done = [e.done_bytes for e in events]
    assert done == sorted(done) and done[0] == 0 and done[-1] == total
    assert BIG in {e.current_file for e in events}
    assert all(e.speed_bps >= 0 for e in events) and any(e.eta_s is not None for e in events)
    # A second call finds everything in place: no file is fetched again.
    gets = len([r for r in fake_hub.log if r.method == "GET" and r.kind != "api"])
    _, again = _download(dest)
    assert len([r for r in fake_hub.log if r.method == "GET" and r.kind != "api"]) == gets
    assert again[-1].done_bytes == total


def test_updated_repo_refetches_only_changed_files(fake_hub, repo_files, tmp_path):
    dest, _ = _download(tmp_path / "m")
    changed = _safetensors({"model.norm.weight": np.ones(256, np.float32)}, tmp_path)
    fake_hub.repos[REPO].files[SMALL] = changed
    fake_hub.repos[REPO].sha = "f" * 40
    _download(dest)
    assert (dest / SMALL).read_bytes() == changed
    assert len(fake_hub.data_gets(SMALL)) == 2 and len(fake_hub.data_gets(BIG)) == 1


def test_missing_tekken_gets_bundled_copy(fake_hub, tmp_path):
    dest, _ = _download(tmp_path / "m")
    expected = hashlib.sha256(bundled_tekken_path().read_bytes()).hexdigest()
    assert hashlib.sha256((dest / "tekken.json").read_bytes()).hexdigest() == expected


def test_repo_tekken_is_kept(fake_hub, tmp_path):
    fake_hub.repos[REPO].files["tekken.json"] = b'{"config": "from the repo"}'
    dest, _ = _download(tmp_path / "m")
    assert (dest / "tekken.json").read_bytes() == b'{"config": "from the repo"}'


def test_dropped_connection_resumes_with_range(fake_hub, repo_files, tmp_path):
    fake_hub.drop_once[BIG] = 1_000_000
    dest, events = _download(tmp_path / "m")
    _assert_complete(dest, repo_files)
    gets = fake_hub.data_gets(BIG)
    assert [g.range is None for g in gets] == [True, False] and gets[1].status == 206
    # It continues from what reached the disk (whole chunks before the hang-up), not from zero.
    resumed_at = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 500_000 < resumed_at <= 1_000_000
    done = [e.done_bytes for e in events]
    assert done == sorted(done)  # the resumed part is not counted twice


DEADLINE_S = 60  # generous: the suite runs on busy machines; a pass never waits this long


def _wait_for(condition, deadline_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


def _partial_bytes(dest: Path) -> int:
    """Bytes in the .incomplete files under dest (0 while none, or one was just renamed)."""
    total = 0
    for part in (dest / ".cache").rglob("*.incomplete"):
        try:
            total += part.stat().st_size
        except FileNotFoundError:
            pass
    return total


def _cancel_midway(dest: Path, fake_hub: FakeHub, after_bytes: int) -> None:
    """Download in a worker thread, set the cancel event from this thread midway through the big
    shard (like the GUI does) and check the worker stops at the next chunk.

    The progress callback (on the worker, between chunks) holds the download until the test has
    set cancel, so a busy machine cannot let the shard finish first."""
    cancel, midway, outcome = threading.Event(), threading.Event(), []

    def on_progress(p):
        if p.current_file == BIG and p.done_bytes > after_bytes and not midway.is_set():
            midway.set()
            assert cancel.wait(DEADLINE_S)

    def worker():
        try:
            hub.download(REPO, dest, on_progress=on_progress, cancel=cancel)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    thread = threading.Thread(target=worker)
    thread.start()
    assert midway.wait(DEADLINE_S)
    held_at = _partial_bytes(dest)
    cancel.set()
    thread.join(DEADLINE_S)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], hub.DownloadCancelled), outcome
    # Prompt: at most the chunk being read when cancel came was written after it.
    assert _partial_bytes(dest) <= held_at + hub._CHUNK_BYTES


def test_cancel_is_prompt_and_next_call_resumes(fake_hub, repo_files, tmp_path):
    _cancel_midway(tmp_path / "m", fake_hub, 1_000_000)
    parts = list((tmp_path / "m" / ".cache").rglob("*.incomplete"))
    assert len(parts) == 1 and 1_000_000 < parts[0].stat().st_size < len(repo_files[BIG])
    partial = parts[0].stat().st_size
    assert not (tmp_path / "m" / BIG).exists()  # nothing half-written under the final name

    dest, events = _download(tmp_path / "m")
    _assert_complete(dest, repo_files)
    assert events[0].done_bytes >= partial  # the progress bar starts where it stopped
    # Files finished before the cancel were not fetched again; the big one continued with a Range.
    for name in ["config.json", "model.safetensors.index.json"]:
        assert len(fake_hub.data_gets(name)) == 1, name
    assert [g.range for g in fake_hub.data_gets(BIG)] == [None, f"bytes={partial}-"]


def test_resume_when_server_ignores_range(fake_hub, repo_files, tmp_path):
    _cancel_midway(tmp_path / "m", fake_hub, 1_000_000)
    fake_hub.ignore_range = True  # 200 with the whole file: start that file over, don't append
    dest, events = _download(tmp_path / "m")
    _assert_complete(dest, repo_files)
    assert events[-1].done_bytes == events[-1].total_bytes
    assert [g.status for g in fake_hub.data_gets(BIG)] == [200, 200]


def test_corrupt_partial_is_detected(fake_hub, repo_files, tmp_path):
    # Bytes left by an earlier run that do not match the server's file: the sha256 check sees it.
    dest = tmp_path / "m"
    f = hub._RemoteFile(
        BIG, len(repo_files[BIG]), hashlib.sha256(repo_files[BIG]).hexdigest(), True
    )
    part = hub._part_path(dest, f)
    part.write_bytes(b"\0" * 1000)
    with pytest.raises(hub.DownloadError, match="corrupted"):
        _download(dest)
    assert not part.exists()
    _download(dest)  # and the next attempt starts that file over
    _assert_complete(dest, repo_files)


@pytest.mark.parametrize("status", [401, 403])
def test_gated_or_private_repo(fake_hub, tmp_path, status):
    fake_hub.status, fake_hub.gated = status, True
    with pytest.raises(hub.DownloadError) as e:
        _download(tmp_path / "m")
    msg = str(e.value)
    assert (
        "accept the licence" in msg and "HF_TOKEN" in msg and "hf auth login" in msg and REPO in msg
    )


def test_token_is_sent(fake_hub, repo_files, tmp_path, monkeypatch):
    fake_hub.token = "hf_secret"
    with pytest.raises(hub.DownloadError, match="gated or private"):
        _download(tmp_path / "a")
    dest, _ = _download(tmp_path / "b", token="hf_secret")
    _assert_complete(dest, repo_files)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")  # huggingface_hub's own lookup
    dest, _ = _download(tmp_path / "c")
    _assert_complete(dest, repo_files)


def test_missing_repo(fake_hub, tmp_path):
    with pytest.raises(hub.DownloadError, match="no such model repo: nobody/nothing"):
        hub.download("nobody/nothing", tmp_path / "m")


@pytest.mark.parametrize("where", ["refused", "dns"])
def test_unreachable_hub(refused_endpoint, tmp_path, monkeypatch, where):
    if where == "dns":
        point_huggingface_hub_at("http://hub.nemo-chat-test.invalid", monkeypatch)
    host = "127.0.0.1" if where == "refused" else "hub.nemo-chat-test.invalid"
    t0 = time.monotonic()
    with pytest.raises(hub.DownloadError, match=f"can't reach {host} — check your connection"):
        hub.download(REPO, tmp_path / "m")
    # Fails fast rather than retrying with back-off for minutes (loose: the machine may be busy).
    assert time.monotonic() - t0 < DEADLINE_S / 2


def test_offline_mode(fake_hub, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(hub.DownloadError, match="offline mode is on"):
        _download(tmp_path / "m")


def test_one_download_per_folder(fake_hub, tmp_path):
    dest = tmp_path / "m"
    (dest / ".cache").mkdir(parents=True)
    with filelock.FileLock(dest / ".cache" / "nemo-download.lock"):
        with pytest.raises(hub.DownloadError, match="already running"):
            _download(dest)
    _download(dest)


def test_disk_space_is_checked_first(fake_hub, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 10**12 - 10**8, 10**8))
    with pytest.raises(
        hub.DownloadError, match=r"needs 0\.5 GB free, only 0\.1 GB available at .*m"
    ):
        _download(tmp_path / "m")
    assert not [r for r in fake_hub.log if r.kind != "api"]  # nothing was fetched


def test_disk_full_while_writing(fake_hub, tmp_path, monkeypatch):
    class FullDisk(io.FileIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    # engine.hub.download's own open() (module globals come before builtins) writes to a full disk.
    monkeypatch.setattr(
        hub, "open", lambda path, mode: FullDisk(path, mode.replace("b", "")), raising=False
    )
    with pytest.raises(hub.DownloadError, match="the disk is full at .*: free some space"):
        _download(tmp_path / "m")


def test_models_on_disk_and_delete(fake_hub, repo_files, tmp_path):
    root = tmp_path / "models"
    hub.download(REPO, local_models.model_dir_for(REPO, root))
    broken = local_models.model_dir_for("other/bf16-model", root)
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    (broken / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-1.safetensors"}})
    )
    (tmp_path / "models" / "not-a-model").mkdir()
    hidden = root / ".conversion-in-progress.partial"  # engine.hub.convert_flow's work folder
    hidden.mkdir()
    (hidden / "config.json").write_text("{}")

    found = {m.name: m for m in local_models.models_on_disk(root)}
    assert set(found) == {REPO, "other/bf16-model"}
    m = found[REPO]
    assert (m.quantization, m.bits, m.group_size, m.has_tokenizer, m.complete) == (
        "4-bit g64",
        4,
        64,
        True,
        True,
    )
    assert m.size_bytes >= sum(len(repo_files[n]) for n in [BIG, SMALL])
    b = found["other/bf16-model"]
    assert (b.quantization, b.bits, b.has_tokenizer, b.complete) == ("bf16", None, False, False)

    with pytest.raises(ValueError):
        local_models.delete_model(tmp_path / "models" / "not-a-model")
    local_models.delete_model(m.path)
    assert [x.name for x in local_models.models_on_disk(root)] == ["other/bf16-model"]


def test_truncated_shard_is_reported(fake_hub, repo_files, tmp_path):
    dest, _ = _download(tmp_path / "m")
    with open(dest / BIG, "r+b") as f:
        f.truncate(1000)
    assert local_models.missing_files(dest) == [f"{BIG} is truncated or not a safetensors file"]
    (dest / SMALL).unlink()
    assert f"{SMALL} is missing" in local_models.missing_files(dest)


def test_fake_hub_serves_huggingface_hub_itself(fake_hub, repo_files, tmp_path):
    # The imitation is faithful enough for huggingface_hub's own downloader (HEAD + redirect + GET).
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(REPO, BIG, local_dir=tmp_path / "hf")
    assert Path(path).read_bytes() == repo_files[BIG]


def test_download_of_a_real_tiny_checkpoint_loads(fake_hub, tiny_q4_dir, tmp_path):
    """End to end: an MLX 4-bit folder without tekken.json (like mlx-community's), fetched, loaded."""
    import engine

    files = {
        p.name: p.read_bytes()
        for p in tiny_q4_dir.iterdir()
        if p.is_file() and p.name != "tekken.json"
    }
    fake_hub.add(FakeRepo("test-org/tiny-q4", files))
    dest = hub.download("test-org/tiny-q4", tmp_path / "q4")
    for name, data in files.items():
        assert (dest / name).read_bytes() == data, name
    assert (dest / "tekken.json").read_bytes() == (tiny_q4_dir / "tekken.json").read_bytes()
    loaded = engine.load(dest)
    assert loaded.config.quantization == {"group_size": 64, "bits": 4}
    assert (
        loaded.tokenizer.encode_chat([{"role": "user", "content": "Bonjour"}])[0]
        == loaded.tokenizer.bos_id
    )


def test_cancel_wakes_a_stalled_connection(fake_hub, repo_files, tmp_path):
    fake_hub.stall_at[BIG] = 1_500_000  # bytes stop arriving; the socket stays open
    cancel, midway, outcome = threading.Event(), threading.Event(), []

    def on_progress(p):
        if p.current_file == BIG and p.done_bytes > 1_000_000:
            midway.set()

    def worker():
        try:
            hub.download(REPO, tmp_path / "m", on_progress=on_progress, cancel=cancel)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    thread = threading.Thread(target=worker)
    thread.start()
    assert midway.wait(DEADLINE_S) and fake_hub.stalled.wait(DEADLINE_S)
    # Every whole 256 KiB chunk before the stall is on disk: the worker waits in a socket read
    # for the rest of a chunk that never comes (the server holds until `release`).
    whole = 1_500_000 // hub._CHUNK_BYTES * hub._CHUNK_BYTES
    _wait_for(lambda: _partial_bytes(tmp_path / "m") >= whole)
    cancel.set()
    thread.join(DEADLINE_S)  # without the hang-up it would hang until the server lets go
    assert not thread.is_alive() and not fake_hub.release.is_set()
    assert len(outcome) == 1 and isinstance(outcome[0], hub.DownloadCancelled), outcome
