"""The Adapt-Pruner demo's axis flags, compute column and learning-curve mode (examples/pruning/demo.py)
on toy sizes: both pruning arms land on the requested blocks, width and head dim; each round records
the calibration loss around its cut; training compute adds up from the per-round sizes; --baby-curve
with --curve-shape trains the pruned architecture from a fresh init, at its own head dim's scale."""
import json

import pytest
from helpers import load_script
from tinyml.train.pruning import load_pruned


def test_pruning_demo_axes_compute_and_curve(tmp_path, capsys):
    demo = load_script("examples/pruning/demo.py")
    out, src = tmp_path / "a", tmp_path / "src"
    common = ["--steps", "2", "--rounds", "2", "--eval-iters", "1", "--no-total-baby", "--schedule",
              "geometric"]
    assert demo.main(["--arch", "narrow", "--pretrain", "2", "--save-source", str(src), *common,
                      "--target-layers", "5", "--target-embd", "96", "--target-head-dim", "16",
                      "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    pruned = load_pruned(str(out / "pruned"))
    c = pruned.config
    assert (c.n_layer, c.n_embd, set(c.layer_head_dim), c.head_size) == (5, 96, {16}, 32)
    rows = {r["model"]: r for r in result["rows"]}
    assert rows["Adapt-Pruner (interleaved)"]["parameters"] == pruned.num_parameters() <= 811_264
    assert rows["one-shot magnitude + training"]["parameters"] <= 811_264
    rounds = result["rounds"]
    assert [r["n_embd"] for r in rounds] == [111, 96] and len(rounds[0]["importance"]) == 6
    assert [r["step"] for r in rounds] == [0, 1] and all(r["loss_after"] > 0 for r in rounds)
    # 6 N per token: the source's 2 steps, then each size for the steps it trained
    tokens, source = demo.TOKENS, rows["6-layer GPT, pretrained"]["parameters"]
    want = 6 * tokens * (2 * source + rounds[0]["params"] * 1 + rounds[1]["params"] * 1)
    assert rows["Adapt-Pruner (interleaved)"]["flops"] == want
    assert rows["baby from scratch, post-pruning budget"]["flops"] == 6 * tokens * 811_264 * 2
    assert demo.main(["--baby-curve", "1,2", "--curve-shape", str(out / "pruned"), "--eval-iters", "1",
                      "--out", str(tmp_path / "c")]) == 0
    curve = json.loads((tmp_path / "c" / "baby_curve.json").read_text())["rows"]
    assert [r["steps"] for r in curve] == [1, 2]
    assert curve[1]["flops"] == 6 * tokens * pruned.num_parameters() * 2
    shape = demo.scratch_shape(str(out / "pruned"))
    assert shape.head_size == 16 and shape.layer_head_dim == c.layer_head_dim and shape.n_embd == 96
    capsys.readouterr()
    with pytest.raises(ValueError, match="target_embd=999 is larger than the model's 128"):
        demo.main(["--source", str(src), *common, "--target-embd", "999", "--out", str(tmp_path / "e")])
