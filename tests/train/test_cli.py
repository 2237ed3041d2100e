"""`tinyml train` / `tinyml sample` end to end on a tiny text, and every bad input gets one line."""
import json
import os

import pytest
from tinyml.train.cli import main

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT)
    return str(p)


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_train_then_resume_then_sample(tmp_path, text_file, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--data", text_file, "--out", out, "--steps", "3", "--batch-size", "2", "--device", "cpu",
            "--sample-tokens", "20"]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "--- sample ---" in stdout and "done: step 3" in stdout
    for f in ("run.json", "tokenizer.json", "train.bin", "val.bin", "checkpoint.safetensors", "metrics.jsonl"):
        assert os.path.exists(os.path.join(out, f)), f
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["preset"] == "baby" and run["model"]["n_layer"] == 4 and run["tokenizer"] == "char"

    # a second start in the same folder would overwrite the checkpoint: refused
    assert main(args) == 1
    assert "already holds a checkpoint" in _one_line_error(capsys)
    assert main(args[:-4] + ["--steps", "5", "--batch-size", "2", "--sample-tokens", "0", "--resume"]) == 0
    assert "done: step 5" in capsys.readouterr().out

    assert main(["sample", "--ckpt", out, "--prompt", "First", "--tokens", "15", "--temperature", "0"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("First") and len(sample.rstrip("\n")) == len("First") + 15


def test_bpe_tokenizer(tmp_path, text_file, capsys):
    out = str(tmp_path / "bpe")
    assert main(["train", "--data", text_file, "--out", out, "--steps", "1", "--batch-size", "1", "--device", "cpu",
                 "--tokenizer", "bpe", "--vocab-size", "280", "--sample-tokens", "5"]) == 0
    tok = json.load(open(os.path.join(out, "tokenizer.json")))
    assert tok["model"]["type"] == "BPE"


@pytest.mark.parametrize("argv,message", [
    (["train", "--data", "/no/such/file.txt"], "no such file"),
    (["train", "--config", "huge"], "unknown preset 'huge'"),
    (["train", "--steps", "0"], "--steps must be at least 1"),
    (["train", "--resume"], "no checkpoint"),
    (["sample", "--ckpt", "/no/such/run"], "expected a run folder"),
])
def test_bad_input_one_line(tmp_path, argv, message, capsys):
    argv = argv + ["--out", str(tmp_path / "x")] if argv[0] == "train" else argv
    assert main(argv) == 1
    assert message in _one_line_error(capsys)


def test_empty_and_short_text(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    assert main(["train", "--data", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "e")]) == 1
    assert "is empty" in _one_line_error(capsys)
    (tmp_path / "short.txt").write_text("To be or not to be")
    assert main(["train", "--data", str(tmp_path / "short.txt"), "--out", str(tmp_path / "s")]) == 1
    assert "too short" in _one_line_error(capsys)
    assert not os.path.exists(tmp_path / "s" / "checkpoint.safetensors")


def test_resume_with_another_config_is_refused(tmp_path, text_file, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--out", out, "--steps", "1", "--batch-size", "1",
                 "--device", "cpu", "--sample-tokens", "0"]) == 0
    before = open(os.path.join(out, "checkpoint.safetensors"), "rb").read()
    capsys.readouterr()
    assert main(["train", "--config", "small", "--out", out, "--resume", "--device", "cpu"]) == 1
    assert "another configuration" in _one_line_error(capsys)
    assert open(os.path.join(out, "checkpoint.safetensors"), "rb").read() == before  # nothing lost


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--steps", "many"])
    assert e.value.code == 2
    assert "invalid int value" in _one_line_error(capsys)
