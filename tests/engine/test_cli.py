"""The `nemo` command line on the tiny model: generate, chat, convert, and clear errors."""

import io
import json

from engine.cli.main import main


def test_generate_streams_an_answer_and_stats(tiny_model_dir, capsys):
    args = ["generate", "--model", str(tiny_model_dir), "--prompt", "Bonjour", "--max-tokens", "6"]
    assert main([*args, "--temperature", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.strip()
    assert "6 generated" in err and "length" in err


def test_chat_repl_keeps_history(tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("first question\nsecond question\n\n"))
    args = ["chat", "--model", str(tiny_model_dir), "--max-tokens", "4", "--temperature", "0"]
    assert main(args) == 0
    err = capsys.readouterr().err
    turns = [line for line in err.splitlines() if "prompt tokens" in line]
    assert len(turns) == 2
    # The second turn reuses the first one's cache: history was kept, not re-read.
    assert "(0 reused)" in turns[0] and "(0 reused)" not in turns[1]


def test_convert(tiny_model_dir, tmp_path, capsys):
    dst = tmp_path / "q8"
    assert main(["convert", str(tiny_model_dir), str(dst), "--bits", "8"]) == 0
    config = json.loads((dst / "config.json").read_text())
    assert config["quantization"] == {"group_size": 64, "bits": 8}
    assert "wrote" in capsys.readouterr().err


def test_a_broken_model_folder_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    assert main(["generate", "--model", str(tmp_path), "--prompt", "hi"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nemo: ") and "config.json: model_type is 'bert'" in err
    assert "Traceback" not in err
