"""The two demonstrations of docs/stability.md and docs/pruning.md, on toy sizes: the divergence
example (examples/stability/divergence.py) trains both arms from the same weights on the same batches
and records what its plot draws; the Adapt-Pruner demo (examples/pruning/demo.py) saves its
pretrained source with --save-source and a --source run reuses it bit for bit."""
import json
import math

import pytest
from helpers import load_script


def _example(path):
    return load_script(path)


def test_divergence_example_records_both_arms_and_plots(tmp_path, capsys):
    div = _example("examples/stability/divergence.py")
    out = tmp_path / "d"
    common = ["--width", "16", "--heads", "2", "--layers", "1", "--block", "8", "--batch-size", "2",
              "--steps", "6", "--monitor-every", "2", "--eval-iters", "1", "--out", str(out)]
    assert div.main(["--lr", "1e-2", *common]) == 0
    runs = {arm: json.loads((out / f"run-{arm}-lr0.01.json").read_text()) for arm in ("base", "qk")}
    assert runs["base"]["qk_layernorm"] is False and runs["qk"]["qk_layernorm"] is True
    for r in runs.values():
        assert r["finite"] and len(r["train_loss"]) == 6 and r["monitor_steps"] == [2, 4, 6]
        assert all(len(layers) == 1 and layers[0] > 0 for layers in r["attn_logit_max"])
        assert math.isfinite(r["final_val_loss"]) and r["warmup"] == 1  # 5% of 6 steps, at least 1
        assert r["args"]["independent_wd"] == 1e-4 and r["args"]["betas"] == [0.9, 0.95]
    # the same initial weights and batches: only qk-layernorm differs, and at init its LayerNorm
    # (gain 1, bias 0) only rescales q and k, so the first losses are close but not equal
    first = [runs[a]["train_loss"][0] for a in ("base", "qk")]
    assert first[0] != first[1] and abs(first[0] - first[1]) < 0.1
    # one arm per process writes the same file names; --plot-only draws them all
    assert div.main(["--lr", "2e-2", "--arm", "qk", *common]) == 0
    png = tmp_path / "plot.png"
    assert div.main(["--plot-only", "--out", str(out), "--png", str(png)]) == 0
    assert png.stat().st_size > 10_000 and len(list(out.glob("run-*.json"))) == 3
    capsys.readouterr()
    for flags, why in ((["--lr", "0"], "--lr 0.0"),
                       (["--width", "15"], "--width 15 (not a multiple of --heads 4)")):
        with pytest.raises(SystemExit):
            div.main(flags)
        assert why in capsys.readouterr().err


def test_pruning_demo_reuses_a_saved_source(tmp_path, capsys):
    demo = _example("examples/pruning/demo.py")
    src = tmp_path / "src"
    common = ["--arch", "narrow", "--steps", "4", "--rounds", "2", "--eval-iters", "1", "--no-total-baby",
              "--schedule", "geometric", "--lr", "2e-3"]
    assert demo.main(["--pretrain", "3", "--save-source", str(src), "--out", str(tmp_path / "a"),
                      *common]) == 0
    assert json.loads((src / "pretrain.json").read_text())["steps"] == 3
    assert demo.main(["--source", str(src), "--out", str(tmp_path / "b"), *common]) == 0
    a, b = (json.loads((tmp_path / x / "results.json").read_text()) for x in "ab")
    assert b["pretrain_steps"] == 3 and [r["model"] for r in b["rows"]] == [
        "6-layer GPT, pretrained", "Adapt-Pruner (interleaved)", "one-shot magnitude, before training",
        "one-shot magnitude + training", "baby from scratch, post-pruning budget"]
    assert a["rows"] == b["rows"]  # the loaded source is the pretrained model: every arm repeats exactly
    assert b["args"]["schedule"] == "geometric" and b["rows"][0]["parameters"] == 1_997_312
    assert b["rows"][-1]["steps"] == 4 and b["rows"][1]["steps"] == 7
    with pytest.raises(SystemExit, match="pretrain.json is missing; write the folder with --save-source"):
        demo.main(["--source", str(tmp_path / "a"), "--out", str(tmp_path / "c")])
