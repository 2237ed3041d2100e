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


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_fast_path_equals_the_ops_and_leaves_unclipped_grads_alone(norm_type, dtype):
    """cpu gradients of one float dtype take the numpy path (clip_grad.py): the same norm as the ops path, and
    under max_norm the gradients keep their bits (multiplying by 1 would not change them either)."""
    from tinyml.nn.utils import clip_grad

    rng = np.random.default_rng(3)
    shapes = [(3, 4), (5,), (70, 33), (2, 2, 2)] + ([(0,)] if norm_type == 2.0 else [])
    grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
    params = [nn.Parameter(tinyml.zeros(*s, dtype=getattr(tinyml, dtype))) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = tinyml.tensor(g.copy())
    by_ops = clip_grad._total_norm_by_ops([tinyml.tensor(g) for g in grads], norm_type)
    total = nn.utils.clip_grad_norm_(params, 1e9, norm_type=norm_type)
    assert total.dtype == by_ops.dtype and total.item() == pytest.approx(by_ops.item(), rel=1e-6)
    assert all(np.array_equal(p.grad.numpy(), g) for p, g in zip(params, grads))
    mixed = [nn.Parameter(tinyml.zeros(2)), nn.Parameter(tinyml.zeros(2, dtype=tinyml.float64))]
    mixed[0].grad, mixed[1].grad = tinyml.tensor([3.0, 0.0]), tinyml.tensor([4.0, 0.0], dtype=tinyml.float64)
    assert clip_grad._cpu_float_arrays([p.grad for p in mixed]) is None  # two dtypes: the ops path
    assert nn.utils.clip_grad_norm_(mixed, 1.0, norm_type=norm_type).item() == pytest.approx(
        5.0 if norm_type == 2.0 else 4.0)
