"""ops/matrix_ops.py against torch, forward and backward (gradcheck in float64 for a few): diag,
diag_embed, diagflat, trace, kron, cross, cdist, addmm, baddbmm, addbmm, block_diag,
cartesian_prod, rot90, isclose, allclose, and their errors."""
import math

import numpy as np
import pytest
import torch
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("offset", [0, 1, -2])
def test_diag_family_matches_torch(offset):
    check_op([(4,)], lambda x: x.diag(offset), lambda x: torch.diag(x, offset))
    check_op([(3, 5)], lambda x: tinyml.diag(x, offset), lambda x: torch.diag(x, offset))
    check_op([(2, 3)], lambda x: tinyml.diagflat(x, offset), lambda x: torch.diagflat(x, offset))
    check_op([(2, 3)], lambda x: tinyml.diag_embed(x, offset), lambda x: torch.diag_embed(x, offset))
    check_op([(2, 3)], lambda x: x.diag_embed(offset, 0, 2), lambda x: x.diag_embed(offset, 0, 2))
    check_op([(2, 3, 4)], lambda x: tinyml.diag_embed(x, offset, -1, 1),
             lambda x: torch.diag_embed(x, offset, -1, 1))


def test_trace_kron_cross_match_torch():
    check_op([(3, 4)], lambda x: x.trace(), lambda x: x.trace())
    check_op([(2, 3), (4, 5)], tinyml.kron, torch.kron)
    check_op([(3,), (2, 2)], tinyml.kron, torch.kron)
    check_op([(2, 1, 3), (3, 2)], lambda a, b: a.kron(b), lambda a, b: a.kron(b))
    check_op([(4, 3), (4, 3)], lambda a, b: tinyml.cross(a, b, dim=-1), lambda a, b: torch.linalg.cross(a, b))
    check_op([(3, 5), (3, 1)], lambda a, b: a.cross(b, 0), lambda a, b: a.cross(b, 0))
    check_op([(2, 3, 4), (2, 3, 4)], tinyml.cross, lambda a, b: torch.cross(a, b, dim=1))  # first dim of 3


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.0, math.inf])
def test_cdist_matches_torch(p):
    check_op([(5, 3), (4, 3)], lambda a, b: tinyml.cdist(a, b, p), lambda a, b: torch.cdist(a, b, p),
             kind="reduction", grad=p != 0.0)
    check_op([(2, 3, 4), (1, 6, 4)],
             lambda a, b: tinyml.cdist(a, b, p, compute_mode="use_mm_for_euclid_dist"),
             lambda a, b: torch.cdist(a, b, p), kind="reduction", grad=p != 0.0)


def test_cdist_zero_distance_has_zero_gradient():
    x = np.random.default_rng(0).standard_normal((3, 2))
    check_op([], lambda a, b: tinyml.cdist(a, b), lambda a, b: torch.cdist(a, b), inputs=[x, x.copy()],
             kind="reduction")


@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 2.0)])
def test_addmm_baddbmm_addbmm_match_torch(beta, alpha):
    check_op([(3, 5), (3, 4), (4, 5)], lambda c, a, b: tinyml.addmm(c, a, b, beta=beta, alpha=alpha),
             lambda c, a, b: torch.addmm(c, a, b, beta=beta, alpha=alpha), kind="reduction")
    check_op([(5,), (3, 4), (4, 5)], lambda c, a, b: c.addmm(a, b, beta=beta, alpha=alpha),
             lambda c, a, b: c.addmm(a, b, beta=beta, alpha=alpha), kind="reduction")
    check_op([(2, 3, 5), (2, 3, 4), (2, 4, 5)],
             lambda c, a, b: tinyml.baddbmm(c, a, b, beta=beta, alpha=alpha),
             lambda c, a, b: torch.baddbmm(c, a, b, beta=beta, alpha=alpha), kind="reduction")
    check_op([(3, 5), (2, 3, 4), (2, 4, 5)], lambda c, a, b: c.addbmm(a, b, beta=beta, alpha=alpha),
             lambda c, a, b: c.addbmm(a, b, beta=beta, alpha=alpha), kind="reduction")


def test_beta_zero_ignores_nan_in_input():
    c = tinyml.full((2, 2), NAN)
    out = tinyml.addmm(c, tinyml.eye(2), tinyml.ones(2, 2), beta=0)
    np.testing.assert_array_equal(out.numpy(), np.ones((2, 2)))
    out = tinyml.baddbmm(tinyml.full((1, 2, 2), NAN), tinyml.ones(3, 2, 1), tinyml.ones(3, 1, 2), beta=0)
    assert tuple(out.shape) == (3, 2, 2) and not np.isnan(out.numpy()).any()


def test_block_diag_and_cartesian_prod_match_torch():
    check_op([(2, 3), (1,), ()], tinyml.block_diag, torch.block_diag)
    check_op([(2, 2), (3, 1)], lambda a, b: tinyml.block_diag(a, b), lambda a, b: torch.block_diag(a, b))
    mixed = tinyml.block_diag(tinyml.ones(1, 1, dtype=tinyml.int64), tinyml.ones(1, 2))
    assert mixed.dtype is tinyml.float32 and tuple(mixed.shape) == (2, 3)
    check_op([(2,), (3,), (2,)], tinyml.cartesian_prod, torch.cartesian_prod)
    check_op([(3,)], tinyml.cartesian_prod, torch.cartesian_prod)


@pytest.mark.parametrize("k", [0, 1, 2, 3, -1, 5])
def test_rot90_matches_torch(k):
    check_op([(2, 3, 4)], lambda x: x.rot90(k, (0, 2)), lambda x: x.rot90(k, (0, 2)))
    check_op([(3, 4)], lambda x: tinyml.rot90(x, k), lambda x: torch.rot90(x, k))


def test_gradcheck_float64():
    rng = np.random.default_rng(1)

    def leaf(*shape):
        return tinyml.tensor(rng.standard_normal(shape), dtype=tinyml.float64, requires_grad=True)
    assert gradcheck(lambda a, b: tinyml.kron(a, b), [leaf(2, 3), leaf(2, 2)])
    assert gradcheck(lambda a, b: tinyml.cross(a, b, dim=-1), [leaf(2, 3), leaf(2, 3)])
    assert gradcheck(lambda a, b: tinyml.cdist(a, b), [leaf(3, 2), leaf(4, 2)])
    assert gradcheck(lambda c, a, b: tinyml.baddbmm(c, a, b, beta=0.5, alpha=2),
                     [leaf(2, 2, 3), leaf(2, 2, 4), leaf(2, 4, 3)])
    assert gradcheck(lambda x: tinyml.diag_embed(x, 1), [leaf(2, 3)])


def test_isclose_allclose_match_torch():
    a = np.array([1.0, 1.0 + 1e-6, NAN, NAN, INF, INF, -INF, 0.0, 1e-9, 2.0], np.float32)
    b = np.array([1.0, 1.0, NAN, 1.0, INF, -INF, -INF, 1e-9, 0.0, 2.1], np.float32)
    for kw in ({}, {"equal_nan": True}, {"rtol": 0.1}, {"atol": 0.0, "rtol": 0.0}):
        ours = tinyml.isclose(tinyml.tensor(a), tinyml.tensor(b), **kw)
        theirs = torch.isclose(torch.tensor(a), torch.tensor(b), **kw)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        assert ours.dtype is tinyml.bool
        assert tinyml.allclose(tinyml.tensor(a[:2]), tinyml.tensor(b[:2]), **kw) == \
            torch.allclose(torch.tensor(a[:2]), torch.tensor(b[:2]), **kw)
    ints = tinyml.tensor([1, 2, 3]).isclose(tinyml.tensor([1, 2, 4]))
    np.testing.assert_array_equal(ints.numpy(), [True, True, False])
    assert tinyml.ones(2, 3).allclose(tinyml.ones(3))  # broadcasts
    assert not tinyml.allclose(tinyml.tensor([NAN]), tinyml.tensor([NAN]))


def test_errors_name_the_values():
    with pytest.raises(RuntimeError, match="Supports 1D or 2D tensors. Got 3D"):
        tinyml.diag(tinyml.zeros(2, 2, 2))
    with pytest.raises(RuntimeError, match="trace: expected a matrix, but got tensor with dim 1"):
        tinyml.trace(tinyml.zeros(3))
    with pytest.raises(RuntimeError, match=r"dimension -1 must have length 3. Got 4 and 4"):
        tinyml.cross(tinyml.zeros(2, 4), tinyml.zeros(2, 4), dim=-1)
    with pytest.raises(RuntimeError, match=r"same number of columns. X1: 3 X2: 2"):
        tinyml.cdist(tinyml.zeros(4, 3), tinyml.zeros(5, 2))
    with pytest.raises(RuntimeError, match="2 or fewer dimensions. Input 1 has 3"):
        tinyml.block_diag(tinyml.zeros(2), tinyml.zeros(1, 1, 1))
    with pytest.raises(RuntimeError, match="Expect a 1D vector, but got shape \\[2, 2\\]"):
        tinyml.cartesian_prod(tinyml.zeros(2, 2))
    with pytest.raises(RuntimeError, match="rotation dims to be different"):
        tinyml.rot90(tinyml.zeros(2, 2), 1, (1, -1))
    with pytest.raises(RuntimeError, match="did not match"):
        tinyml.isclose(tinyml.zeros(2), tinyml.zeros(2, dtype=tinyml.float64))
