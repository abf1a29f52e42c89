"""The port against mlx-lm's model on the same weights, and the KV cache against a full pass."""

import mlx.core as mx
import pytest
from mlx_lm.models.cache import make_prompt_cache

from engine.config import ModelConfig
from engine.synthetic import preset_config, random_model
from engine.weights import load_model

from .mlx_lm_ref import reference_model

TOKENS = mx.array([[1, 3, 1050, 7777, 42000, 131071, 1234, 4, 99, 2]])


def test_tiny_preset_keeps_nemo_quirks():
    c = preset_config("tiny")
    assert c.num_attention_heads * c.head_dim != c.hidden_size
    assert c.num_attention_heads == 4 * c.num_key_value_heads
    assert (c.vocab_size, c.rope_theta, c.tie_word_embeddings) == (131072, 1e6, False)
    assert preset_config("nemo-12b").num_parameters == 12_247_782_400


def test_logits_equal_mlx_lm_llama(tiny_model_dir):
    ours = load_model(tiny_model_dir)
    theirs = reference_model(tiny_model_dir)
    a, b = ours(TOKENS), theirs(TOKENS)
    assert a.shape == (1, TOKENS.shape[1], 131072)
    assert mx.allclose(a, b, atol=1e-4, rtol=1e-4).item()
    # And not trivially: the logits depend on the tokens.
    assert not mx.allclose(a[0, 0], a[0, 1]).item()


def test_q_proj_maps_hidden_to_heads_times_head_dim(tiny_model_dir):
    attn = load_model(tiny_model_dir).layers[0].self_attn
    c = preset_config("tiny")
    assert attn.q_proj.weight.shape == (c.num_attention_heads * c.head_dim, c.hidden_size)
    assert attn.o_proj.weight.shape == (c.hidden_size, c.num_attention_heads * c.head_dim)
    assert attn.k_proj.weight.shape == (c.num_key_value_heads * c.head_dim, c.hidden_size)


def test_incremental_decoding_equals_full_forward():
    model = random_model(preset_config("tiny"), seed=3)
    full = model(TOKENS)
    cache = make_prompt_cache(model)  # mlx-lm's helper picks our make_cache()
    steps = [model(TOKENS[:, :4], cache=cache)]
    steps += [model(TOKENS[:, i : i + 1], cache=cache) for i in range(4, TOKENS.shape[1])]
    assert mx.allclose(full, mx.concatenate(steps, axis=1), atol=1e-4).item()
    assert cache[0].offset == TOKENS.shape[1]


def test_sliding_window_is_honoured():
    windowed = preset_config("tiny", sliding_window=4)
    full = preset_config("tiny")
    a = random_model(windowed, seed=1)
    b = random_model(full, seed=1)
    x = TOKENS
    # The first 4 positions see the same context either way; later ones do not.
    la, lb = a(x), b(x)
    assert mx.allclose(la[:, :4], lb[:, :4], atol=1e-5).item()
    assert not mx.allclose(la[:, 6:], lb[:, 6:], atol=1e-3).item()
    # Incremental decoding through the rotating cache equals the windowed full pass.
    cache = a.make_cache()
    steps = [a(x[:, i : i + 1], cache=cache) for i in range(x.shape[1])]
    assert mx.allclose(la, mx.concatenate(steps, axis=1), atol=1e-4).item()


def test_config_rejects_inconsistent_fields():
    base = dict(preset_config("tiny").raw)
    with pytest.raises(ValueError, match="num_key_value_heads"):
        ModelConfig.from_dict(base | {"num_key_value_heads": 3}, source="x/config.json")
