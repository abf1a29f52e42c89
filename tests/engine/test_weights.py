"""Loading HF and MLX-quantized folders, converting both ways with mlx-lm, and broken folders."""

import json
import shutil
from pathlib import Path

import mlx.core as mx
import pytest

from engine.config import ConfigError
from engine.synthetic import preset_config
from engine.weights import WeightsError, convert, load_model, read_tensor_infos

from .mlx_lm_ref import mlx_lm_convert, reference_model

TOKENS = mx.array([[1, 3, 1050, 7777, 42000, 131071, 1234, 4]])


def _cosine(a: mx.array, b: mx.array) -> float:
    a, b = a.reshape(-1), b.reshape(-1)
    return ((a * b).sum() / mx.sqrt((a * a).sum() * (b * b).sum())).item()


def _bytes_per_param(model_dir: Path) -> float:
    files = {i.file for i in read_tensor_infos(model_dir).values()}
    total = sum(v.nbytes for f in files for v in mx.load(str(f)).values())
    return total / preset_config("tiny").num_parameters


def test_hf_folder_loads_its_tensors(tiny_model_dir):
    model = load_model(tiny_model_dir)
    stored = {}
    for f in sorted(tiny_model_dir.glob("*.safetensors")):
        stored |= mx.load(str(f))
    w = stored["model.layers.1.mlp.down_proj.weight"].astype(mx.float32)
    assert mx.array_equal(model.layers[1].mlp.down_proj.weight, w).item()
    assert model.lm_head.weight.dtype == mx.float32  # CPU backend computes in fp32


def test_our_4bit_is_close_to_fp_and_0_5625_bytes_per_param(tiny_model_dir, tiny_q4_dir):
    config = json.loads((tiny_q4_dir / "config.json").read_text())
    assert config["quantization"] == {"group_size": 64, "bits": 4}
    assert (tiny_q4_dir / "tekken.json").is_file()
    assert _bytes_per_param(tiny_q4_dir) == pytest.approx(0.5625, rel=0.01)
    fp, q = load_model(tiny_model_dir)(TOKENS), load_model(tiny_q4_dir)(TOKENS)
    assert _cosine(fp, q) > 0.9
    assert not mx.allclose(fp, q, atol=1e-3).item()  # really quantized


def test_our_conversion_loads_in_mlx_lm(tiny_q4_dir):
    ours, theirs = load_model(tiny_q4_dir), reference_model(tiny_q4_dir)
    assert mx.allclose(ours(TOKENS), theirs(TOKENS), atol=1e-4, rtol=1e-4).item()


def test_mlx_lm_conversion_loads_in_ours(tiny_model_dir, tmp_path):
    dst = mlx_lm_convert(tiny_model_dir, tmp_path / "mlx-lm-q4")
    ours, theirs = load_model(dst), reference_model(dst)
    assert mx.allclose(ours(TOKENS), theirs(TOKENS), atol=1e-4, rtol=1e-4).item()
    # The two converters agree tensor for tensor.
    ref = {k: v for f in dst.glob("*.safetensors") for k, v in mx.load(str(f)).items()}
    out = convert(tiny_model_dir, tmp_path / "ours-q4")
    mine = {k: v for f in out.glob("*.safetensors") for k, v in mx.load(str(f)).items()}
    assert mine.keys() == ref.keys()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert mx.array_equal(mine[key], ref[key]).item()


def test_8bit_conversion(tiny_model_dir, tmp_path):
    dst = convert(tiny_model_dir, tmp_path / "q8", bits=8)
    assert _bytes_per_param(dst) == pytest.approx(1.0625, rel=0.01)
    fp, q = load_model(tiny_model_dir)(TOKENS), load_model(dst)(TOKENS)
    assert _cosine(fp, q) > 0.99


def test_loading_never_holds_two_copies(tiny_model_dir):
    mx.clear_cache()
    mx.reset_peak_memory()
    before = mx.get_active_memory()
    model = load_model(tiny_model_dir)
    size = sum(v.nbytes for _, v in __import__("mlx.utils").utils.tree_flatten(model.parameters()))
    # fp32 model + one bf16 shard in flight; two full copies would be 2x.
    assert mx.get_peak_memory() - before < 1.6 * size


# -- broken folders: each gets a clear error naming the file (and the tensor) --


@pytest.fixture
def broken(tiny_model_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


def _edit_config(folder: Path, **changes):
    path = folder / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def test_missing_config(broken):
    (broken / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"config\.json: not found"):
        load_model(broken)


def test_config_not_json(broken):
    (broken / "config.json").write_text("{ nope")
    with pytest.raises(ConfigError, match=r"config\.json: cannot be read as JSON"):
        load_model(broken)


def test_wrong_model_type(broken):
    _edit_config(broken, model_type="gpt2")
    with pytest.raises(ConfigError, match=r"config\.json: model_type is 'gpt2'"):
        load_model(broken)


def test_missing_field(broken):
    cfg = json.loads((broken / "config.json").read_text())
    del cfg["hidden_size"]
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="missing field.*hidden_size"):
        load_model(broken)


def test_missing_shard(broken):
    (broken / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"model-00002-of-00002\.safetensors: missing shard"):
        load_model(broken)


def test_truncated_shard(broken):
    shard = broken / "model-00001-of-00002.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"model-00001-of-00002\.safetensors: truncated"):
        load_model(broken)


def test_garbage_shard(broken):
    (broken / "model-00002-of-00002.safetensors").write_bytes(b"\xff" * 100)
    with pytest.raises(WeightsError, match=r"model-00002-of-00002\.safetensors"):
        load_model(broken)


def test_shape_mismatch_names_file_and_tensor(broken):
    _edit_config(broken, intermediate_size=1024)
    with pytest.raises(WeightsError, match=r"safetensors: tensor model\.layers\.0\.mlp\.\w+_proj"):
        load_model(broken)


def test_missing_tensor(broken, tmp_path):
    shard = broken / "model-00002-of-00002.safetensors"
    tensors = mx.load(str(shard))
    gone = sorted(tensors)[0]
    del tensors[gone]
    mx.save_safetensors(str(shard), tensors)
    with pytest.raises(WeightsError, match=f"tensor {gone.replace('.', '.')} is missing"):
        load_model(broken)


def test_no_weights_at_all(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(preset_config("tiny").raw))
    with pytest.raises(WeightsError, match=r"no \*\.safetensors"):
        load_model(tmp_path)


def test_convert_refuses_a_quantized_folder(tiny_q4_dir, tmp_path):
    with pytest.raises(ConfigError, match="already quantized"):
        convert(tiny_q4_dir, tmp_path / "again")
