"""examples/ssm/synthetic.py beyond its data defaults (tests/models/ssm/test_ssm_examples.py): the paper's
sizes, the multi-trigger induction sequences used for training, the stage parser, the training loop
and the accuracy curves' plot."""
import json

import numpy as np
import pytest
from helpers import load_script


def _load(name: str):
    return load_script(f"examples/ssm/{name}.py")


syn = _load("synthetic")


def test_selective_copy_paper_sizes():
    x, y = syn.selective_copy(np.random.default_rng(0), 64)  # vocab 16, 16 data tokens, 256 positions
    assert x.shape == y.shape == (64, 272)
    body = x[:, :256]
    assert ((body != syn.BLANK).sum(1) == 16).all()
    data = body[body != syn.BLANK].reshape(64, 16)
    assert data.min() == 2 and data.max() == 15  # every symbol 2..15 turns up in 1024 draws
    assert (y[:, 256:] == data).all() and (y[:, :256] == -100).all()
    starts = np.argmax(body != syn.BLANK, axis=1)
    assert len(set(starts.tolist())) > 10  # the places change from sequence to sequence


@pytest.mark.parametrize("n_triggers", [1, 3, 7])
def test_induction_multi_trigger(n_triggers):
    length = 20
    rng = np.random.default_rng(n_triggers)
    x, y = syn.induction(rng, 200, length=length, vocab=16, n_triggers=n_triggers)
    assert x.shape == y.shape == (200, length)
    for row_x, row_y in zip(x, y):
        trig = np.flatnonzero(row_x == syn.MARKER)
        assert len(trig) == n_triggers + 1 and trig[-1] == length - 1
        assert np.all(np.diff(trig[:-1]) >= 2)  # pairs do not overlap
        answer = row_x[trig[0] + 1]
        assert 2 <= answer < 16 and (row_x[trig[:-1] + 1] == answer).all()
        assert (np.flatnonzero(row_y != -100) == trig[1:]).all() and (row_y[trig[1:]] == answer).all()
    first = [int(np.flatnonzero(r == syn.MARKER)[0]) for r in x]
    assert min(first) == 0 or n_triggers > 1  # a pair can start the sequence
    last_pairs = [int(np.flatnonzero(r == syn.MARKER)[-2]) for r in x]
    assert max(last_pairs) <= length - 3  # the answer is never the final trigger's place


def test_task_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_triggers=10, length=20"):
        syn.induction(rng, 2, length=20, n_triggers=10)
    with pytest.raises(ValueError, match="n_data=20, length=10"):
        syn.selective_copy(rng, 2, length=10, n_data=20)


def test_parse_stages():
    assert syn.parse_stages("64:2000,256:500") == [(64, 2000), (256, 500)]
    for bad in ["64", "64:0", "x:3", "64:10,", "2:10"]:
        with pytest.raises(ValueError, match="--stages"):
            syn.parse_stages(bad)


def test_accuracy_counts_only_queried_positions():
    class Oracle:  # predicts token 3 everywhere
        def __call__(self, idx):
            logits = np.zeros(tuple(idx.shape) + (16,), dtype=np.float32)
            logits[..., 3] = 1
            return (syn.tinyml.tensor(logits),)

    x = np.zeros((4, 5), dtype=np.int64)
    y = np.full((4, 5), -100)
    y[:, -1] = [3, 3, 3, 7]
    y[0, 0] = 3
    assert syn.accuracy(Oracle(), x, y, batch=3) == pytest.approx(4 / 5)


def test_train_learns_short_induction_and_plots(tmp_path):
    """A few hundred steps at length 12 with 4 queries per sequence move Mamba well off chance (1/14)."""
    run = syn.train("induction", "mamba", [(12, 150)], batch=16, lr=1e-2, warmup=10, n_triggers=4,
                    eval_length=12, eval_every=75, n_eval=128, extrapolate=[24], log=lambda *a: None)
    assert [p[0] for p in run["curve"]] == [75, 150]
    assert set(run["extrapolation"]) == {"24"} and 0 <= run["extrapolation"]["24"] <= 1
    assert run["accuracy"] > 0.3 and run["curve"][-1][2] < run["curve"][0][2]
    plot = _load("synthetic_plot")
    with open(tmp_path / "synthetic_induction_mamba.json", "w") as f:
        json.dump(run, f)
    plot.main(["--folder", str(tmp_path), "--out", str(tmp_path / "curves.png")])
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_main_fills_the_task_recipe(tmp_path, capsys):
    out = tmp_path / "run.json"
    syn.main(["--task", "induction", "--model", "s4d", "--stages", "12:4", "--eval-length", "16",
              "--log", str(out)])
    with open(out) as f:
        run = json.load(f)
    assert run["n_triggers"] == syn.RECIPES["induction"]["n_triggers"] == 4  # from the recipe
    assert run["stages"] == [[12, 4]] and run["eval_length"] == 16 and len(run["curve"]) == 1
    assert "held-out accuracy" in capsys.readouterr().out
