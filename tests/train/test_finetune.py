"""`tinyml finetune` end to end on a tiny source run trained for a few steps: every method, the
adapter-only checkpoint and its bit-exact resume, loading the result, an HF folder as source, the
bundled text, and one-line errors that leave the source untouched."""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from tinyml.models import save_pretrained
from tinyml.train import trainer as trainer_module
from tinyml.train.checkpoint import load_checkpoint
from tinyml.train.cli import main
from tinyml.train.commands import finetune

import tinyml

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12
NEW = ("All:\nYou are resolved, speak.\n\nFirst Citizen:\nBefore we die, hear me: famish rather than "
       "proceed?\n\n") * 14  # another text in the same characters
FAST = ["--batch-size", "2", "--device", "cpu", "--eval-iters", "2", "--sample-tokens", "0"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("finetune")
    (d / "tiny.txt").write_text(TEXT)
    (d / "new.txt").write_text(NEW)
    args = ["train", "--data", str(d / "tiny.txt"), "--out", str(d / "source"), "--steps", "3", *FAST]
    assert main(args) == 0
    return d


def _finetune(workdir, out, *args):
    return main(["finetune", "--from", str(workdir / "source"), "--data", str(workdir / "new.txt"), "--out",
                 str(out), "--eval-interval", "2", *FAST, *args])


def _digest(folder):
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        h.update(name.encode())
        h.update(open(os.path.join(folder, name), "rb").read())
    return h.hexdigest()


@pytest.mark.parametrize("method", finetune.METHODS)
def test_every_method_trains_reports_and_loads_back(workdir, tmp_path, capsys, method):
    out = tmp_path / method
    extra = ["--rank", "2", "--reduction", "4"] if method != "full" else []
    assert _finetune(workdir, out, "--method", method, "--steps", "2", *extra) == 0
    printed = capsys.readouterr().out
    assert f"tinyml finetune: {method} on" in printed and "validation loss" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["finetune"]["method"] == method and record["val_loss_before"] > 0
    state = load_checkpoint(str(out / "checkpoint.safetensors"))["model"]
    source_params = load_checkpoint(str(workdir / "source" / "checkpoint.safetensors"))["model"]
    n_saved = sum(t.numel() for t in state.values())
    n_base = sum(t.numel() for t in source_params.values())
    assert n_saved == n_base if method == "full" else n_saved < n_base / 2  # the adapter alone
    model, tok = finetune.load_finetuned(str(out))
    if method != "full":
        for k, v in model.adapter_state_dict().items():
            np.testing.assert_array_equal(v.numpy(), state[k].numpy())
    ids = tinyml.models.generate(model, [tok.encode("\n")], 5, temperature=0)
    assert len(ids[0]) == 6


def test_resume_is_bit_exact_and_the_source_stays_untouched(workdir, tmp_path, capsys, monkeypatch):
    before = _digest(workdir / "source")
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert _finetune(workdir, straight, "--method", "lora", "--rank", "2", "--steps", "6") == 0
    original = trainer_module.Trainer.train_step

    def step_then_ctrl_c(self):
        result = original(self)
        if self.step == 3:  # as if Ctrl-C came during the fourth step
            self.request_stop()
        return result

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step_then_ctrl_c)
    assert _finetune(workdir, broken, "--method", "lora", "--rank", "2", "--steps", "6") == 130
    assert "resume with: tinyml finetune" in capsys.readouterr().out
    monkeypatch.setattr(trainer_module.Trainer, "train_step", original)
    assert _finetune(workdir, broken, "--method", "lora", "--resume") == 0  # to the run's own 6 steps
    a = load_checkpoint(str(straight / "checkpoint.safetensors"))
    b = load_checkpoint(str(broken / "checkpoint.safetensors"))
    assert a["step"] == b["step"] == 6
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k].numpy(), b["model"][k].numpy())

    def losses(folder):
        records = map(json.loads, open(folder / "metrics.jsonl"))
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in records]

    assert losses(straight) == losses(broken)
    assert _digest(workdir / "source") == before


def test_a_hugging_face_folder_as_source(workdir, tmp_path, capsys):
    model, tok = tinyml.train.lm.load_run(str(workdir / "source"))
    hf = tmp_path / "hf"
    save_pretrained(model, str(hf))
    shutil.copy(workdir / "source" / "tokenizer.json", hf / "tokenizer.json")
    out = tmp_path / "out"
    assert main(["finetune", "--from", str(hf), "--data", str(workdir / "new.txt"), "--out", str(out),
                 "--method", "rslora", "--rank", "2", "--steps", "2", *FAST]) == 0
    assert json.loads((out / "run.json").read_text())["finetune"]["source"] == str(hf)


def test_bundled_dialogues_encode_with_the_shakespeare_characters():
    text = finetune._read_text(None)
    assert len(text) > 100_000 and text.startswith("A: ")
    assert set(text) <= set(tinyml.data.shakespeare())


def _one_line_error(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "RuntimeWarning" not in line
             and "from . import cpu" not in line]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("args,message", [
    (["--targets", "q_proj"], "matched no Linear"),
    (["--method", "lora", "--rank", "999"], "rank r=999 is larger than the layer"),
])
def test_a_failed_start_names_the_problem_and_writes_nothing(workdir, tmp_path, capsys, args, message):
    before = _digest(workdir / "source")
    out = tmp_path / "out"
    assert _finetune(workdir, out, "--steps", "2", *args) == 1
    assert message in _one_line_error(capsys)
    assert not out.exists() and _digest(workdir / "source") == before


def test_usage_errors(workdir, tmp_path, capsys):
    for args, message in [(["--from", str(workdir / "source"), "--out", str(workdir / "source"), *FAST],
                           "is the source itself"),
                          (["--from", str(workdir / "source"), "--out", str(tmp_path / "none"), "--resume",
                            *FAST],
                           "no fine-tuning run to continue")]:
        with pytest.raises(SystemExit) as e:
            main(["finetune", *args])
        assert e.value.code == 2 and message in _one_line_error(capsys)
    (tmp_path / "odd.txt").write_text("Zebras quack 123 \u00e9" * 200)
    assert main(["finetune", "--from", str(workdir / "source"), "--data", str(tmp_path / "odd.txt"), "--out",
                 str(tmp_path / "odd"), *FAST]) == 1
    assert "is not in this tokenizer's vocabulary" in _one_line_error(capsys)


def test_tinyml_sample_generates_from_a_finetune_run(workdir, tmp_path, capsys):
    out = tmp_path / "lora"
    assert _finetune(workdir, out, "--method", "lora", "--rank", "2", "--steps", "2") == 0
    capsys.readouterr()
    assert main(["sample", "--ckpt", str(out), "--tokens", "5", "--device", "cpu", "--temperature", "0"]) == 0
    assert len(capsys.readouterr().out) == 1 + 5 + 1  # the "\n" prompt, 5 characters, print's newline
