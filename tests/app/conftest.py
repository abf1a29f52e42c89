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
