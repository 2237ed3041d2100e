"""`tinyml distill --resume`: a run stopped and continued equals one run straight through, bit for bit;
flags not repeated keep the run's values, and a conflicting one is refused naming both."""
import numpy as np
import pytest
from tinyml.train.checkpoint import load_checkpoint
from tinyml.train.cli import main
from tinyml.train.trainer import Trainer

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12
FAST = ["--batch-size", "2", "--device", "cpu", "--eval-iters", "2", "--sample-tokens", "0",
        "--eval-interval", "2"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    d = tmp_path_factory.mktemp("distill_resume")
    (d / "tiny.txt").write_text(TEXT)
    assert main(["train", "--data", str(d / "tiny.txt"), "--out", str(d / "teacher"), "--steps", "3",
                 "--batch-size", "2", "--device", "cpu", "--eval-iters", "2", "--sample-tokens", "0"]) == 0
    return d


def _weights(folder):
    state = load_checkpoint(str(folder / "checkpoint.safetensors"))
    return state["step"], {k: v.numpy() for k, v in state["model"].items()}


@pytest.mark.parametrize("method", ["logit", "sequence", "seqinter"])
def test_stopping_and_resuming_equals_one_straight_run(teacher, method, monkeypatch, capsys):
    extra = ["--method", method, "--student", "layers=1"] + (["--alpha", "0.5", "--sequences", "8"]
                                                               if method != "logit" else [])
    straight, split = teacher / f"straight_{method}", teacher / f"split_{method}"
    base = ["distill", "--teacher", str(teacher / "teacher"), *FAST, *extra, "--steps", "4"]
    assert main([*base, "--out", str(straight)]) == 0
    # the split run stops after step 2 as a Ctrl-C would (checkpoint saved, exit 130), then resumes
    # with no run-defining flag repeated
    train_step = Trainer.train_step

    def stop_after_two(self):
        out = train_step(self)
        if self.step + 1 >= 2:
            self.request_stop()
        return out

    monkeypatch.setattr(Trainer, "train_step", stop_after_two)
    assert main([*base, "--out", str(split)]) == 130
    assert "continue with: tinyml distill --out" in capsys.readouterr().out
    monkeypatch.setattr(Trainer, "train_step", train_step)
    assert _weights(split)[0] == 2
    assert main(["distill", "--out", str(split), "--resume", "--sample-tokens", "0"]) == 0
    s1, w1 = _weights(straight)
    s2, w2 = _weights(split)
    assert s1 == s2 == 4
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)


def test_resume_refuses_a_changed_setting_or_going_back(teacher, capsys):
    out = teacher / "refuse"
    base = ["distill", "--teacher", str(teacher / "teacher"), *FAST, "--student", "layers=1"]
    assert main([*base, "--steps", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["distill", "--out", str(out), "--resume", "--lr", "0.01"])
    assert e.value.code == 2
    assert "--lr 0.01 (the run has 0.001)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["distill", "--out", str(out), "--resume", "--steps", "1"])
    assert "already at step 2; pass --steps 2 or more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["distill", "--out", str(teacher / "nothing"), "--resume"])
    assert "no distillation run to continue" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--steps", "2", "--out", str(out)])
    assert "pass --resume to continue that run" in capsys.readouterr().err
