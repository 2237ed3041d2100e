"""tinyml.linalg (ops/linalg.py, ops/linalg_derived.py) against torch.linalg, forward and backward,
batched; gradcheck in float64; LinAlgError for singular and non-positive-definite inputs; shape
errors. Decomposition outputs are compared through gauge-invariant functions (squares of the
singular / eigen vectors), since the sign of each vector is LAPACK's choice."""
import math

import numpy as np
import pytest
import torch
from helpers import check_op

import tinyml
import tinyml.linalg as LA
from tinyml.testing import gradcheck

TL = torch.linalg


def _spd(n, batch=(), seed=0):
    a = np.random.default_rng(seed).standard_normal(batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def _well(n, batch=(), seed=0):
    return np.random.default_rng(seed).standard_normal(batch + (n, n)) + 3 * np.eye(n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_solve_inv_det_slogdet_match_torch(dtype):
    a, b = _well(4, (2,)), np.random.default_rng(1).standard_normal((2, 4, 3))
    check_op([], lambda x, y: LA.solve(x, y), lambda x, y: TL.solve(x, y), inputs=[a, b], dtype=dtype,
             kind="reduction")
    check_op([], lambda x: LA.inv(x), lambda x: TL.inv(x), inputs=[a], dtype=dtype, kind="reduction")
    check_op([], lambda x: LA.det(x), lambda x: TL.det(x), inputs=[a], dtype=dtype, kind="reduction")
    check_op([], lambda x: LA.slogdet(x)[1], lambda x: TL.slogdet(x)[1], inputs=[a], dtype=dtype,
             kind="reduction")
    check_op([], lambda x: tinyml.det(x), lambda x: torch.det(x), inputs=[a[0]], dtype=dtype,
             kind="reduction")


def test_solve_vector_broadcast_and_left_false():
    a = _well(3, (2,))
    rng = np.random.default_rng(2)
    # a batch of vectors, one vector, a B broadcast over A's batch
    check_op([], LA.solve, TL.solve, inputs=[a, rng.standard_normal((2, 3))], kind="reduction")
    check_op([], LA.solve, TL.solve, inputs=[a[0], rng.standard_normal(3)], kind="reduction")
    check_op([], LA.solve, TL.solve, inputs=[a, rng.standard_normal((3, 4))], kind="reduction")
    check_op([], lambda x, y: LA.solve(x, y, left=False), lambda x, y: TL.solve(x, y, left=False),
             inputs=[a, rng.standard_normal((2, 5, 3))], kind="reduction")


@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 5), (4, 4)])
@pytest.mark.parametrize("full", [False, True])
def test_svd_matches_torch(shape, full):
    k = min(shape[-2:])

    def f(lib):
        def run(x):
            u, s, vh = lib.svd(x, full_matrices=full)
            return u[..., :k] ** 2, s, vh[..., :k, :] ** 2
        return run
    check_op([], f(LA), f(TL), inputs=[np.random.default_rng(3).standard_normal(shape)], dtype="float64",
             kind="reduction")
    check_op([shape], LA.svdvals, TL.svdvals, kind="reduction")
    u, s, vh = LA.svd(tinyml.randn(*shape), full_matrices=full)
    assert tuple(u.shape[-2:]) == ((shape[-2], shape[-2]) if full else (shape[-2], k))
    assert tuple(vh.shape[-2:]) == ((shape[-1], shape[-1]) if full else (k, shape[-1]))


@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 5), (4, 4)])
def test_qr_matches_torch(shape):
    check_op([shape], LA.qr, TL.qr, dtype="float64", kind="reduction")
    if shape[-2] <= shape[-1]:
        check_op([shape], lambda x: LA.qr(x, "complete"), lambda x: TL.qr(x, "complete"), dtype="float64",
                 kind="reduction")
    q, r = LA.qr(tinyml.randn(*shape), mode="r")
    assert q.numel() == 0 and tuple(r.shape) == tuple(TL.qr(torch.randn(*shape), mode="r")[1].shape)


def test_qr_gradient_errors_follow_torch():
    x = tinyml.randn(5, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable when mode='complete' and nrows > ncols"):
        LA.qr(x, "complete")[0].sum().backward()
    with pytest.raises(RuntimeError, match="depends on Q, which is not computed when mode='r'"):
        LA.qr(x, "r")[1].sum().backward()


@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_matches_torch(uplo):
    a = np.random.default_rng(4).standard_normal((2, 4, 4))  # not symmetric: only the UPLO triangle is read
    check_op([], lambda x: (LA.eigh(x, uplo)[0], LA.eigh(x, UPLO=uplo)[1] ** 2),
             lambda x: (TL.eigh(x, uplo)[0], TL.eigh(x, UPLO=uplo)[1] ** 2), inputs=[a], dtype="float64",
             kind="reduction")
    check_op([], lambda x: LA.eigvalsh(x, uplo), lambda x: TL.eigvalsh(x, uplo), inputs=[a], kind="reduction")


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_matches_torch(upper):
    check_op([], lambda x: LA.cholesky(x, upper=upper), lambda x: TL.cholesky(x, upper=upper),
             inputs=[_spd(4, (2,))], kind="reduction")


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5)])
def test_pinv_matches_torch(shape):
    check_op([shape], LA.pinv, TL.pinv, dtype="float64", kind="reduction")
    low_rank = np.ones((4, 3))  # rank 1: the small singular values are cut by rtol
    check_op([], LA.pinv, TL.pinv, inputs=[low_rank], dtype="float64", grad=False, kind="reduction")


@pytest.mark.parametrize("ord", ["fro", "nuc", 2, -2, 1, -1, math.inf, -math.inf])
def test_matrix_norm_matches_torch(ord):
    check_op([(2, 3, 5)], lambda x: LA.matrix_norm(x, ord), lambda x: TL.matrix_norm(x, ord),
             kind="reduction")
    check_op([(3, 4, 2)], lambda x: LA.matrix_norm(x, ord, dim=(0, 2), keepdim=True),
             lambda x: TL.matrix_norm(x, ord, dim=(0, 2), keepdim=True), kind="reduction")


def test_norm_and_vector_norm_match_torch():
    for args in [(), (2, 1), (3, (0, 2)), (math.inf, -1), (1, None)]:
        check_op([(2, 3, 4)], lambda x: LA.vector_norm(x, *args), lambda x: TL.vector_norm(x, *args),
                 kind="reduction")
    for ord, dim in [(None, None), (None, 1), (None, (0, 1)), (2, None), ("nuc", None), (math.inf, None)]:
        check_op([(3, 4)], lambda x: LA.norm(x, ord, dim), lambda x: TL.norm(x, ord, dim), kind="reduction")
    check_op([(5,)], lambda x: LA.norm(x, 3), lambda x: TL.norm(x, 3), kind="reduction")
    z = tinyml.zeros(3, requires_grad=True)
    LA.vector_norm(z).backward()
    assert np.all(z.grad.numpy() == 0)  # torch's subgradient at 0


def test_gradcheck_float64():
    rng = np.random.default_rng(5)

    def leaf(a):
        return tinyml.tensor(a, dtype=tinyml.float64, requires_grad=True)
    a, b = leaf(_well(3, (2,))), leaf(rng.standard_normal((2, 3, 2)))
    assert gradcheck(LA.solve, [a, b])
    assert gradcheck(LA.inv, [a])
    assert gradcheck(LA.det, [a])
    assert gradcheck(lambda x: LA.slogdet(x)[1], [a])
    m = leaf(rng.standard_normal((4, 3)))
    assert gradcheck(lambda x: [t ** 2 for t in LA.svd(x, full_matrices=False)], [m])
    assert gradcheck(lambda x: LA.qr(x)[0] ** 2 + 0, [m])
    assert gradcheck(LA.pinv, [m])
    assert gradcheck(lambda x: LA.matrix_norm(x, "nuc"), [m])
    s = leaf(rng.standard_normal((3, 3)))
    assert gradcheck(lambda x: LA.eigh(x + x.mT)[1] ** 2, [s])
    assert gradcheck(lambda x: LA.cholesky(x @ x.mT + 3 * tinyml.eye(3, dtype=tinyml.float64)), [s])


def test_det_gradient_of_a_singular_matrix_is_the_cofactor_matrix():
    a = np.array([[1.0, 2, 3], [2, 4, 6], [1, 0, 1]])  # rank 2
    x = tinyml.tensor(a, requires_grad=True)
    LA.det(x).backward()
    cof = np.array([[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1)) for j in range(3)]
                    for i in range(3)])
    np.testing.assert_allclose(x.grad.numpy(), cof, atol=1e-12)


def test_singular_and_not_positive_definite_raise_linalg_error():
    sing = tinyml.tensor(np.stack([np.eye(3), np.zeros((3, 3))]), dtype=tinyml.float32)
    with pytest.raises(LA.LinAlgError, match=r"\(Batch element 1\): The solver failed because the input "
                                             r"matrix is singular.*\(2, 3, 3\)"):
        LA.solve(sing, tinyml.ones(2, 3))
    with pytest.raises(RuntimeError, match="singular"):
        LA.inv(tinyml.zeros(3, 3))
    with pytest.raises(LA.LinAlgError, match="not positive-definite"):
        LA.cholesky(-tinyml.eye(3))
    s, logabs = LA.slogdet(tinyml.zeros(2, 2))
    assert s.item() == 0 and logabs.item() == -math.inf


def test_shape_and_dtype_errors_name_the_values():
    with pytest.raises(RuntimeError, match="must be batches of square matrices, but they are 3 by 4"):
        LA.inv(tinyml.zeros(3, 4))
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        LA.det(tinyml.zeros(3))
    with pytest.raises(RuntimeError, match=r"Incompatible shapes of A and B .*\(3x3 and 4x2\)"):
        LA.solve(tinyml.eye(3), tinyml.zeros(4, 2))
    with pytest.raises(RuntimeError, match="int64"):
        LA.inv(tinyml.zeros(2, 2, dtype=tinyml.int64))
    with pytest.raises(RuntimeError, match="UPLO"):
        LA.eigh(tinyml.eye(2), "X")
    with pytest.raises(RuntimeError, match="Order 3 not supported"):
        LA.matrix_norm(tinyml.eye(2), 3)
