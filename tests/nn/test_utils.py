"""clip_grad_norm_ / clip_grad_value_ / parameters_to_vector against torch.nn.utils."""
import math

import numpy as np
import pytest
import torch

import tinyml
from tinyml import nn
from tinyml.testing import assert_close

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def _params(scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    grads = [(rng.standard_normal(s) * scale).astype(np.float32) for s in SHAPES]
    tm = [nn.Parameter(tinyml.zeros(s)) for s in SHAPES]
    th = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
    for a, b, g in zip(tm, th, grads):
        a.grad, b.grad = tinyml.tensor(g), torch.tensor(g)
    return tm, th


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    tm, th = _params()
    total_tm = nn.utils.clip_grad_norm_(tm, max_norm, norm_type=norm_type)
    total_th = torch.nn.utils.clip_grad_norm_(th, max_norm, norm_type=norm_type)
    assert total_tm.shape == () and total_tm.item() == pytest.approx(total_th.item(), rel=1e-5)
    for a, b in zip(tm, th):
        assert_close(a.grad, b.grad, kind="reduction")


def test_clip_grad_norm_single_tensor_skips_missing_grads_and_errors_on_nonfinite():
    p, q = nn.Parameter(tinyml.zeros(2)), nn.Parameter(tinyml.zeros(2))
    p.grad = tinyml.tensor([3.0, 4.0])
    assert nn.utils.clip_grad_norm_([p, q], 1.0).item() == pytest.approx(5.0)
    assert p.grad.tolist() == pytest.approx([0.6, 0.8], rel=1e-5)
    assert nn.utils.clip_grad_norm_(q, 1.0).item() == 0.0
    p.grad = tinyml.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)


def test_clip_grad_value_matches_torch():
    tm, th = _params(scale=3.0)
    nn.utils.clip_grad_value_(tm, 1.5)
    torch.nn.utils.clip_grad_value_(th, 1.5)
    for a, b in zip(tm, th):
        assert_close(a.grad, b.grad)


def test_parameters_to_vector_and_back():
    tm, th = _params()
    with tinyml.no_grad():
        for i, p in enumerate(tm):
            p.fill_(float(i))
    vec = nn.utils.parameters_to_vector(tm)
    assert vec.shape == (12 + 5 + 8,) and vec.tolist()[:12] == [0.0] * 12
    nn.utils.vector_to_parameters(vec * 2, tm)
    assert tm[2].tolist()[0][0][0] == 4.0
    with pytest.raises(RuntimeError, match="expected a 1-d vector of 25 elements, got shape"):
        nn.utils.vector_to_parameters(tinyml.zeros(3), tm)



@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unclipped_gradients_keep_their_bits_and_clipped_ones_match_torch(dtype):
    """Under max_norm the coefficient is exactly 1 and the gradients are left alone (clip_grad.py): the bits
    are the inputs', NaN included; over it every gradient is scaled as torch scales it."""
    rng = np.random.default_rng(3)
    shapes = [(3, 4), (5,), (70, 33), (0,)]
    grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads[0][1, 2] = -0.0
    params = [nn.Parameter(tinyml.zeros(*s, dtype=getattr(tinyml, dtype))) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = tinyml.tensor(g.copy())
    total = nn.utils.clip_grad_norm_(params, 1e9)
    want = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    assert total.item() == pytest.approx(float(want), rel=1e-5)
    for p, g in zip(params, grads):
        assert np.array_equal(p.grad.numpy(), g) and p.grad.numpy().dtype == g.dtype
    assert np.signbit(params[0].grad.numpy()[1, 2])
    th = [torch.nn.Parameter(torch.zeros(s, dtype=getattr(torch, dtype))) for s in shapes]
    for q, g in zip(th, grads):
        q.grad = torch.tensor(g.copy())
    nn.utils.clip_grad_norm_(params, 2.0)
    torch.nn.utils.clip_grad_norm_(th, 2.0)
    for p, q in zip(params, th):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-7)
