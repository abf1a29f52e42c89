"""Shared fixtures: tiny random-weight checkpoints with Nemo's shape quirks, built once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HF layout, bf16, two shards, tekken.json: like mistralai/Mistral-Nemo-Instruct-2407."""
    from engine.synthetic import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("models") / "tiny-hf", "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_q4_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our 4-bit g64 conversion: the layout of mlx-community/Mistral-Nemo-Instruct-2407-4bit."""
    from engine.weights import convert

    return convert(tiny_model_dir, tmp_path_factory.mktemp("models") / "tiny-q4")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path):
    import engine

    return engine.load(tiny_model_dir)
