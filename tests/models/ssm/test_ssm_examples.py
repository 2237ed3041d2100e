"""The data of examples/ssm/synthetic.py is what its docstring says (the tasks the models are judged on),
and delayed_copy.py's LegS model starts learning in a few steps where the random init does not."""

import numpy as np
from helpers import load_script


def _load(name: str):
    return load_script(f"examples/ssm/{name}.py")


def test_selective_copy_data():
    syn = _load("synthetic")
    x, y = syn.selective_copy(np.random.default_rng(0), 4, length=40, n_data=5, vocab=9)
    assert x.shape == y.shape == (4, 45)
    for row_x, row_y in zip(x, y):
        data = row_x[:40][row_x[:40] != syn.BLANK]
        assert len(data) == 5 and data.min() >= 2 and data.max() < 9
        assert (row_x[40:] == syn.MARKER).all()
        assert (row_y[40:] == data).all() and (row_y[:40] == -100).all()  # in order, only at the markers


def test_induction_data():
    syn = _load("synthetic")
    x, y = syn.induction(np.random.default_rng(1), 6, length=30, vocab=12)
    for row_x, row_y in zip(x, y):
        trig = np.flatnonzero(row_x == syn.MARKER)
        assert len(trig) == 2 and trig[-1] == 29  # once inside, once at the end
        assert row_y[-1] == row_x[trig[0] + 1] and (row_y[:-1] == -100).all()


def test_delayed_copy_legs_beats_random_in_a_few_steps():
    dc = _load("delayed_copy")
    legs = dc.train("legs", delay=16, steps=25, batch=8, width=16, d_state=16, seed=0)
    rand = dc.train("random", delay=16, steps=25, batch=8, width=16, d_state=16, seed=0)
    assert np.mean(legs[-5:]) < 0.8 * np.mean(rand[-5:])


def test_vs_transformers_losses_agree(tmp_path):
    """examples/ssm/vs_transformers.py: the same weights trained on the same selective-copy batches
    give the same losses in tinyml and in transformers' MambaForCausalLM."""
    vs = _load("vs_transformers")
    folder = str(tmp_path / "mamba")
    mine = vs.tinyml_losses(folder, "selective_copy", 3, 2, 1e-3)
    theirs = vs.torch_losses(folder, "selective_copy", 3, 2, 1e-3)
    np.testing.assert_allclose(mine, theirs, rtol=1e-4)
    assert mine[0] != mine[2]  # the weights moved
