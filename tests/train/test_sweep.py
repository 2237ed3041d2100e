"""`tinyml sweep` on a tiny text with two-step runs: the json it writes (one run per log-spaced LR,
the same initial loss for each, the paper's LR sensitivity), the plot overlaying settings swept
into one folder, and one-line errors for empty, inverted and malformed ranges."""
import json
import math

import pytest
from tinyml.train.cli import main
from tinyml.train.commands.sweep import learning_rates, lr_sensitivity

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12


def test_learning_rates_are_log_spaced_and_end_exactly():
    lrs = learning_rates(3e-4, 3e-1, 4)
    assert lrs[0] == 3e-4 and lrs[-1] == 3e-1
    assert [b / a for a, b in zip(lrs, lrs[1:])] == pytest.approx([10.0] * 3)


def test_lr_sensitivity_is_the_papers_formula():
    # min(loss, l0) per LR: [2.0, 1.5, 3.0 (clipped from 3.5), 3.0 (diverged)]; best 1.5
    sens, best = lr_sensitivity([2.0, 1.5, 3.5, None], initial_loss=3.0)
    assert best == 1.5
    assert sens == pytest.approx((2.0 + 1.5 + 3.0 + 3.0) / 4 - 1.5)
    assert lr_sensitivity([math.inf, math.nan], 4.0) == (0.0, 4.0)


def test_sweep_writes_json_and_overlays_settings(tmp_path, capsys):
    (tmp_path / "tiny.txt").write_text(TEXT)
    common = ["sweep", "--data", str(tmp_path / "tiny.txt"), "--lr", "1e-3..1e-1", "--points", "2",
              "--steps", "2", "--batch-size", "2", "--eval-iters", "1", "--device", "cpu",
              "--out", str(tmp_path / "out")]
    assert main(common) == 0
    assert main([*common, "--qk-layernorm", "--z-loss", "1e-4"]) == 0
    out = capsys.readouterr().out
    assert "LR sensitivity" in out and "lr 0.001: final val loss" in out
    base = json.loads((tmp_path / "out" / "sweep-baseline.json").read_text())
    stab = json.loads((tmp_path / "out" / "sweep-qk-layernorm+z-loss-0.0001.json").read_text())
    assert [r["lr"] for r in base["runs"]] == pytest.approx([1e-3, 1e-1])
    assert base["model"]["qk_layernorm"] is False and stab["model"]["qk_layernorm"] is True
    assert stab["model"]["z_loss"] is True and stab["model"]["z_loss_coef"] == 1e-4
    for res in (base, stab):
        assert len({r["initial_loss"] for r in res["runs"]}) == 1  # same weights, same batches
        finals = [r["final_loss"] for r in res["runs"]]
        assert all(r["diverged"] is False and len(r["train_losses"]) == 2 for r in res["runs"])
        expected, best = lr_sensitivity(finals, res["initial_loss"])
        assert res["lr_sensitivity"] == pytest.approx(expected) and res["best_loss"] == best
        assert all(r["max_attn_logit"] is not None and r["log_z_mean"] is not None for r in res["runs"])
    # with two steps a higher learning rate moves the loss further from where it started
    assert base["runs"][1]["final_loss"] != base["runs"][0]["final_loss"]
    assert (tmp_path / "out" / "sweep.png").stat().st_size > 0


@pytest.mark.parametrize("lr, why", [("3e-1..3e-4", "inverted (low 0.3 > high 0.0003)"),
                                     ("1e-3..1e-3", "empty (low == high == 0.001)"),
                                     ("0..1e-2", "must be > 0"), ("3e-4-3e-1", "expected LOW..HIGH"),
                                     ("nan..1", "expected LOW..HIGH")])
def test_bad_ranges_are_one_line_errors(tmp_path, capsys, lr, why):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--lr", lr, "--out", str(tmp_path / "never")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and why in err and "--lr" in err
    assert not (tmp_path / "never").exists()


def test_one_point_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--points", "1", "--out", str(tmp_path / "never")])
    assert "--points: must be an integer >= 2" in capsys.readouterr().err


def test_a_diverged_run_counts_as_the_initial_loss(tmp_path, monkeypatch):
    from tinyml.train.trainer import Trainer

    real_step = Trainer.train_step

    def step(self):  # the runs above lr 5e-2 "diverge": their training loss turns non-finite
        loss, norm, tokens = real_step(self)
        return (math.nan if self.config.lr > 5e-2 else loss), norm, tokens

    monkeypatch.setattr(Trainer, "train_step", step)
    (tmp_path / "tiny.txt").write_text(TEXT)
    assert main(["sweep", "--data", str(tmp_path / "tiny.txt"), "--lr", "1e-3..1e-1", "--points", "3",
                 "--steps", "2", "--batch-size", "2", "--eval-iters", "1", "--device", "cpu", "--label", "x",
                 "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "sweep-x.json").read_text())
    assert [r["diverged"] for r in res["runs"]] == [False, False, True]
    assert res["runs"][2]["final_loss"] is None and res["runs"][2]["train_losses"] == [None]
    l0, finals = res["initial_loss"], [r["final_loss"] for r in res["runs"]]
    assert res["lr_sensitivity"] == pytest.approx((min(finals[0], l0) + min(finals[1], l0) + l0) / 3
                                                  - min(finals[0], finals[1], l0))
