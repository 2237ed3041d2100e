"""`tinyml distill` end to end on tiny teachers trained for a few steps in a temporary folder: the
run folder it leaves (samplable with `tinyml sample`), the validation loss it reports (the student's
own NLL on real text), each method, and one-line errors with argparse's exit statuses."""
import json
import os

import numpy as np
import pytest
from tinyml.train.batches import model_loss
from tinyml.train.cli import main
from tinyml.train.distill.mlm import load_bert_run, train_mlm_teacher

import tinyml
from tinyml.data import RandomWindowSampler, load_tokens

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12
FAST = ["--batch-size", "2", "--device", "cpu", "--eval-iters", "2", "--sample-tokens", "0"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("distill")
    (d / "tiny.txt").write_text(TEXT)
    args = ["train", "--data", str(d / "tiny.txt"), "--out", str(d / "teacher"), "--steps", "3", *FAST]
    assert main(args) == 0
    return d


def _one_line_error(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "RuntimeWarning" not in line
             and "from . import cpu" not in line]  # the not-built-extension warning, when it shows
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("tinyml: error: ") or lines[0].startswith("tinyml distill: error: "), lines[0]
    return lines[0]


def _distill(workdir, *args):
    return main(["distill", "--teacher", str(workdir / "teacher"), "--steps", "2", *FAST, *args])


def test_logit_distillation_leaves_a_samplable_run_whose_val_loss_is_the_students_nll(workdir, capsys):
    out = str(workdir / "logit")
    assert _distill(workdir, "--student", "layers=2", "--method", "logit", "--out", out,
                    "--sample-tokens", "10") == 0
    stdout = capsys.readouterr().out
    assert "teacher layers [0, 2], embeddings and head inherited" in stdout and "--- sample ---" in stdout
    for f in ("run.json", "tokenizer.json", "train.bin", "val.bin", "checkpoint.safetensors", "metrics.jsonl",
              "loss.png"):
        assert os.path.exists(os.path.join(out, f)), f
    record = json.load(open(os.path.join(out, "run.json")))
    assert record["model"]["n_layer"] == 2 and record["distill"]["method"] == "logit"
    assert record["distill"]["alpha"] == 0.5 and record["distill"]["temperature"] == 2.0
    assert main(["sample", "--ckpt", out, "--tokens", "5", "--device", "cpu"]) == 0
    # the reported val loss: the final student's own cross-entropy on the held-out windows
    from tinyml.train.lm import load_run

    student, _ = load_run(out)
    val = RandomWindowSampler(load_tokens(os.path.join(out, "val.bin")), 64, 2, seed=1337 + 1)
    with tinyml.no_grad():
        ours = np.mean([model_loss(student, tuple(tinyml.tensor(a) for a in val.next_batch())).item()
                        for _ in range(2)])
    last = [r for r in map(json.loads, open(os.path.join(out, "metrics.jsonl"))) if "val_loss" in r][-1]
    assert abs(last["val_loss"] - ours) < 1e-4


def test_sequence_distillation_into_a_fresh_tiny_student(workdir, capsys):
    out = str(workdir / "sequence")
    assert _distill(workdir, "--student", "tiny", "--method", "sequence", "--sequences", "2",
                    "--gen-temperature", "0", "--out", out) == 0
    stdout = capsys.readouterr().out
    assert "the teacher writes 2 sequences of 57 tokens (greedy)" in stdout
    assert "fresh initialisation" in stdout  # tiny is narrower than the teacher: nothing to inherit
    record = json.load(open(os.path.join(out, "run.json")))
    assert record["model"]["n_embd"] == 64 and record["distill"]["alpha"] == 0.0


def test_distilbert_from_a_small_bert_teacher(workdir, capsys):
    bert = str(workdir / "bert")
    train_mlm_teacher(bert, data=str(workdir / "tiny.txt"), n_layer=2, hidden=32, heads=2, block_size=32,
                      batch_size=2, steps=2, eval_iters=1, progress=False)
    out = str(workdir / "distilbert")
    assert main(["distill", "--teacher", bert, "--method", "distilbert", "--student", "layers=1",
                 "--out", out, "--steps", "2", *FAST]) == 0
    stdout = capsys.readouterr().out
    assert "load it with: tinyml.train.distill.mlm.load_bert_run" in stdout
    model, tok, record = load_bert_run(out)
    assert model.config.num_hidden_layers == 1 and record["distill"]["method"] == "distilbert"
    assert model.config.vocab_size == tok.vocab_size + 1  # + [MASK]
    # a BERT teacher with another method, and a narrower student for DistilBERT's cosine loss
    with pytest.raises(SystemExit) as e:
        main(["distill", "--teacher", bert, "--method", "logit", "--out", str(workdir / "x1"), *FAST])
    assert e.value.code == 2 and "is a BERT (masked LM); use --method distilbert" in _one_line_error(capsys)
    with pytest.raises(SystemExit) as e:
        main(["distill", "--teacher", bert, "--method", "distilbert", "--student", "tiny",
              "--out", str(workdir / "x2"), *FAST])
    assert e.value.code == 2 and "cosine loss needs the teacher's width 32" in _one_line_error(capsys)
    with pytest.raises(SystemExit) as e:  # sampling is for language-model runs
        main(["sample", "--ckpt", bert, "--tokens", "3", "--device", "cpu"])
    assert e.value.code == 2 and "a bert run; tinyml sample generates from" in _one_line_error(capsys)


@pytest.mark.parametrize("args, code, message", [
    (["--method", "bogus"], 2, "invalid choice: 'bogus'"),
    (["--student", "huge"], 2, "expected baby, tiny or layers=N"),
    (["--student", "layers=9"], 2, "the teacher has 4 layers; a student has 1 to 4"),
    (["--method", "distilbert"], 2, "is a GPT; distilbert needs a BERT teacher"),
    (["--alpha", "1.5"], 2, "must be a finite number in [0, 1]"),
])
def test_bad_flags_are_one_line_usage_errors(workdir, capsys, args, code, message):
    with pytest.raises(SystemExit) as e:
        _distill(workdir, "--out", str(workdir / "never"), *args)
    assert e.value.code == code
    assert message in _one_line_error(capsys)
    assert not os.path.exists(workdir / "never" / "run.json")


def test_bad_teacher_folders_and_mismatched_vocabularies(workdir, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        main(["distill", "--teacher", str(empty), "--out", str(tmp_path / "o"), *FAST])
    line = _one_line_error(capsys)
    assert e.value.code == 2 and f"--teacher {empty}: expected a trained run folder" in line
    assert "missing checkpoint.safetensors, run.json, tokenizer.json" in line
    with pytest.raises(SystemExit) as e:
        main(["distill", "--teacher", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), *FAST])
    assert e.value.code == 2 and "no such file or folder" in _one_line_error(capsys)
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("checkpoint.safetensors", "tokenizer.json"):
        (broken / f).write_bytes((workdir / "teacher" / f).read_bytes())
    (broken / "run.json").write_text("{not json")
    assert main(["distill", "--teacher", str(broken), "--out", str(tmp_path / "o"), *FAST]) == 1
    assert "is not valid JSON" in _one_line_error(capsys)
    other = tmp_path / "other.txt"
    other.write_text("Ωmega " * 400)  # characters the teacher's char tokenizer never saw
    assert _distill(workdir, "--data", str(other), "--out", str(tmp_path / "o")) == 1
    line = _one_line_error(capsys)
    assert "not in this tokenizer's vocabulary" in line and "sequence level through text" in line
    assert not os.path.exists(tmp_path / "o" / "run.json")
    with pytest.raises(SystemExit) as e:  # an --out that holds a run already
        _distill(workdir, "--out", str(workdir / "teacher"))
    assert e.value.code == 2 and "already holds a checkpoint" in _one_line_error(capsys)
