"""`tinyml train --model mamba|s4d`: the state space models train, checkpoint, resume and sample
through the same command as the GPT; the run remembers its model, a different --model on resume is
refused, and the SSM parameters' no-weight-decay hints reach the optimizer."""
import json
import os

import pytest
from tinyml.models.ssm import S4DLM, MambaLM
from tinyml.train import lm
from tinyml.train.cli import main

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n") * 12
FAST = ["--batch-size", "2", "--device", "cpu", "--eval-iters", "1", "--eval-interval", "2"]


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT)
    return str(p)


@pytest.mark.parametrize("family,cls", [("mamba", MambaLM), ("s4d", S4DLM)])
def test_train_resume_and_sample(tmp_path, text_file, capsys, family, cls):
    out = str(tmp_path / family)
    assert main(["train", "--model", family, "--data", text_file, "--out", out, "--steps", "2",
                 "--sample-tokens", "5", *FAST]) == 0
    stdout = capsys.readouterr().out
    assert f"baby {'Mamba' if family == 'mamba' else 'S4D'}," in stdout and "--- sample ---" in stdout
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["model"]["family"] == family
    assert main(["train", "--out", out, "--resume", "--steps", "4", "--sample-tokens", "0",
                 "--device", "cpu"]) == 0  # the run's own model, without --model
    assert "done: step 4" in capsys.readouterr().out
    model, tok = lm.load_run(out)
    assert isinstance(model, cls) and not model.training
    assert main(["sample", "--ckpt", out, "--tokens", "5", "--device", "cpu"]) == 0
    assert len(capsys.readouterr().out) > 0


def test_another_model_on_resume_is_refused(tmp_path, text_file, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--model", "s4d", "--data", text_file, "--out", out, "--steps", "1",
                 "--sample-tokens", "0", *FAST]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "mamba", "--out", out, "--resume", "--steps", "2", "--device", "cpu"])
    assert e.value.code == 2
    assert "--model mamba does not match the run" in capsys.readouterr().err


def test_ssm_parameters_take_no_weight_decay(tmp_path, text_file, monkeypatch):
    seen = {}
    real = lm.Trainer.fit

    def fit(self, resume=False):
        seen["names"] = {id(p): n for n, p in self.model.named_parameters()}
        seen["decay"] = {seen["names"][id(p)]: g["weight_decay"] for g in self.optimizer.param_groups
                         for p in g["params"]}
        return real(self, resume)

    monkeypatch.setattr(lm.Trainer, "fit", fit)
    out = str(tmp_path / "m")
    assert main(["train", "--model", "mamba", "--data", text_file, "--out", out, "--steps", "1",
                 "--sample-tokens", "0", *FAST]) == 0
    decay = seen["decay"]
    assert decay["backbone.layers.0.mixer.A_log"] == 0.0 and decay["backbone.layers.0.mixer.D"] == 0.0
    assert decay["backbone.layers.0.mixer.in_proj.weight"] == 0.1
    assert len(decay) == len(seen["names"])  # every parameter in exactly one group
