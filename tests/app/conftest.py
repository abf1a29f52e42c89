"""Qt runs offscreen in tests; a fast tiny model for the worker's streaming tests."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fast_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A very small model (hidden 32, 4 heads of 64, tied) decoding ~50-80 tokens/s here.

    It keeps Nemo's vocabulary (131072), so any Tekken id is a valid input; it is fast enough
    that tokens outpace the 30 Hz chunk rate, which the batching tests need.
    """
    from engine.synthetic import preset_config, write_checkpoint

    config = preset_config(
        "tiny",
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=64,  # a multiple of 64, so the KV cache can be quantized
        tie_word_embeddings=True,
    )
    return write_checkpoint(tmp_path_factory.mktemp("models") / "fast", config, seed=1)


@pytest.fixture(scope="module")
def app_style(qapp):
    """The app's stylesheet, as main() applies it, so screenshots show the real look."""
    from app.main import apply_style

    apply_style(qapp)
    yield
    qapp.setStyleSheet("")


@pytest.fixture(scope="module")
def controller(qapp, request: pytest.FixtureRequest, fast_model_dir: Path):
    """One loaded controller a module: loading a model per test would be slow."""
    from pytestqt.qtbot import QtBot

    from app.bridge.engine_controller import EngineController

    c = EngineController()
    with QtBot(request).waitSignal(c.modelLoaded, timeout=60_000):
        c.load_model(str(fast_model_dir))
    yield c
    assert c.shutdown()


@pytest.fixture
def listen():
    """connect(signal, slot), undone after the test (the controller outlives tests)."""
    made = []

    def connect(signal, slot):
        signal.connect(slot)
        made.append((signal, slot))

    yield connect
    for signal, slot in made:
        signal.disconnect(slot)


@pytest.fixture
def store(tmp_path: Path):
    from app.store.store import Store

    s = Store(tmp_path / "history.sqlite3")
    yield s
    s.close()


@pytest.fixture
def qsettings(tmp_path: Path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


class JobLog:
    """What one QtJob's owner heard, in order (its public signals only)."""

    def __init__(self, job):
        self.job = job
        self.events: list[tuple[str, tuple]] = []
        for name in ("started", "prefillProgress", "text", "trimmed", "summaryProgress",
                     "finished", "failed"):  # fmt: skip
            getattr(job, name).connect(lambda *a, name=name: self.events.append((name, a)))

    def of(self, name: str) -> list[tuple]:
        return [args for name_, args in self.events if name_ == name]

    @property
    def text(self) -> str:
        return "".join(a[0] for a in self.of("text"))

    @property
    def ended(self) -> bool:
        return bool(self.of("finished") or self.of("failed"))


class Jobs:
    """Every job a controller hands out (EngineController.jobSubmitted), each with its log."""

    def __init__(self, controller):
        self.controller = controller
        self.all: list[JobLog] = []
        controller.jobSubmitted.connect(self._add)

    def _add(self, job) -> None:
        self.all.append(JobLog(job))

    @property
    def last(self) -> JobLog:
        return self.all[-1]

    def close(self) -> None:
        self.controller.jobSubmitted.disconnect(self._add)


@pytest.fixture
def jobs(controller):
    j = Jobs(controller)
    yield j
    j.close()


def wait_text(qtbot, jobs: Jobs, timeout: int = 60_000) -> JobLog:
    """Until the latest job has streamed some text; returns its log."""
    qtbot.waitUntil(lambda: bool(jobs.all) and bool(jobs.last.text), timeout=timeout)
    return jobs.last


def wait_end(qtbot, log: JobLog, timeout: int = 60_000) -> JobLog:
    qtbot.waitUntil(lambda: log.ended, timeout=timeout)
    return log
