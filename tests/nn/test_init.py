"""nn.init: gains and fans as torch's, sample statistics, seeding, in-place writes under no_grad."""
import math

import numpy as np
import pytest
import torch

import tinyml
from tinyml import nn
from tinyml.nn import init


@pytest.mark.parametrize("nl,param", [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                                      ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)])
def test_calculate_gain_matches_torch(nl, param):
    assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))


def test_fans_match_torch():
    for shape in [(3, 4), (8, 3, 5, 5), (2, 6, 7)]:
        assert init._calculate_fan_in_and_fan_out(tinyml.empty(shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions \(shape \(5,\)\)"):
        init.xavier_uniform_(tinyml.empty(5))
    with pytest.raises(ValueError, match="Unsupported nonlinearity softsign"):
        init.calculate_gain("softsign")
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(tinyml.empty(3, 3), mode="fan_avg")


def _stats(t):
    a = t.detach().numpy().astype(np.float64)
    return a.mean(), a.std(), a.min(), a.max()


def test_uniform_and_normal_statistics():
    mean, std, lo, hi = _stats(init.uniform_(tinyml.empty(200, 100), -2.0, 3.0))
    assert -2.0 <= lo and hi < 3.0 and abs(mean - 0.5) < 0.05 and abs(std - 5 / math.sqrt(12)) < 0.03
    mean, std, _, _ = _stats(init.normal_(tinyml.empty(200, 100), 1.5, 0.5))
    assert abs(mean - 1.5) < 0.01 and abs(std - 0.5) < 0.01


def test_trunc_normal_stays_in_bounds():
    mean, std, lo, hi = _stats(init.trunc_normal_(tinyml.empty(100, 100), mean=0.0, std=1.0, a=-1.0, b=2.0))
    assert -1.0 <= lo and hi <= 2.0
    ref = torch.nn.init.trunc_normal_(torch.empty(100, 100, dtype=torch.float64), 0.0, 1.0, -1.0, 2.0)
    assert abs(mean - ref.mean().item()) < 0.03 and abs(std - ref.std().item()) < 0.03


@pytest.mark.parametrize("fn,kwargs", [("xavier_uniform_", {}), ("xavier_normal_", {"gain": 2.0}),
                                       ("kaiming_uniform_", {"a": math.sqrt(5)}),
                                       ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}),
                                       ("kaiming_uniform_", {"nonlinearity": "tanh"})])
def test_scaled_inits_have_torchs_spread(fn, kwargs):
    shape = (64, 32, 3, 3)
    ours = getattr(init, fn)(tinyml.empty(shape), **kwargs).detach().numpy()
    theirs = getattr(torch.nn.init, fn)(torch.empty(shape), **kwargs).numpy()
    assert abs(ours.std() - theirs.std()) < 0.03 * theirs.std()
    if "uniform" in fn:
        assert np.abs(ours).max() <= np.abs(theirs).max() * 1.001 + 1e-7
        assert np.abs(ours).max() > 0.99 * np.abs(theirs).max()


def test_orthogonal_and_constants():
    q = init.orthogonal_(tinyml.empty(4, 7)).numpy().astype(np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-5)
    q = init.orthogonal_(tinyml.empty(6, 3), gain=2.0).numpy().astype(np.float64)
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(3), atol=1e-5)
    t = tinyml.empty(2, 3)
    assert init.zeros_(t).tolist() == [[0.0] * 3] * 2 and init.ones_(t) is t and t.tolist() == [[1.0] * 3] * 2
    assert init.constant_(t, 0.5).tolist() == [[0.5] * 3] * 2
    assert init.eye_(tinyml.empty(2, 3)).tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_seeded_reproducible_and_dtype_preserving():
    tinyml.manual_seed(123)
    a = init.normal_(tinyml.empty(5, dtype=tinyml.bfloat16)).numpy()
    tinyml.manual_seed(123)
    b = init.normal_(tinyml.empty(5, dtype=tinyml.bfloat16)).numpy()
    assert a.dtype.name == "bfloat16" and np.array_equal(a.astype(np.float32), b.astype(np.float32))
    tinyml.manual_seed(0)
    l1 = nn.Linear(4, 4)
    tinyml.manual_seed(0)
    l2 = nn.Linear(4, 4)
    assert l1.weight.tolist() == l2.weight.tolist()


def test_init_on_a_parameter_is_not_recorded_and_bumps_version():
    p = nn.Parameter(tinyml.zeros(3, 3))
    v = p._version[0]
    out = init.kaiming_uniform_(p)
    assert out is p and p.is_leaf and p.requires_grad and p.grad_fn is None
    assert p._version[0] > v and np.abs(p.detach().numpy()).sum() > 0
