"""matmul, mm, bmm, dot, outer, linear: forward and backward against PyTorch, shape errors, on
reference and cpu kernels, and on every backend of the family (backend_device: the numpy
reference, numpy's BLAS split over tinyml's threads, the Triton kernels)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import needs_C
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import gradcheck

backend_device = backend_device_fixture()
MATMUL_SHAPES = [
    [(3, 4), (4, 5)],  # mm
    [(4,), (4,)],  # dot -> 0-d
    [(3, 4), (4,)],  # matrix-vector
    [(4,), (4, 5)],  # vector-matrix
    [(2, 3, 4), (2, 4, 5)],  # bmm
    [(2, 3, 4), (4, 5)],  # a weight shared over a batch
    [(3, 4), (2, 4, 5)],  # a matrix against a batch
    [(2, 1, 3, 4), (5, 4, 2)],  # broadcast batch dims
    [(1, 4), (3, 4, 1)],  # size-1 dims everywhere
    [(2, 3, 4), (4,)],  # batched matrix-vector
    [(4,), (2, 4, 3)],  # vector against a batch
    [(1, 1), (1, 1)],
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_matches_torch(kernels, shapes):
    check_op(shapes, lambda a, b: a @ b, kind="reduction")


@pytest.mark.parametrize("shapes", [[(5, 4), (4, 3)], [(2, 3, 4), (2, 4, 5)], [(3, 2, 4), (4, 6)]], ids=str)
def test_matmul_noncontiguous_and_float64(kernels, shapes):
    check_op(shapes, lambda a, b: a.matmul(b), kind="reduction", noncontiguous=True)
    check_op(shapes, lambda a, b: torch.matmul(a, b) if isinstance(a, torch.Tensor) else tinyml.matmul(a, b),
             dtype="float64", kind="reduction")


def test_transposed_views(kernels):
    check_op([(4, 3), (5, 4)], lambda a, b: a.t() @ b.t(), kind="reduction")
    check_op([(2, 4, 3), (2, 5, 4)], lambda a, b: a.mT @ b.mT, kind="reduction")


def test_mm_bmm_dot_outer(kernels):
    check_op([(3, 4), (4, 2)], lambda a, b: a.mm(b), kind="reduction")
    check_op([(2, 3, 4), (2, 4, 2)], lambda a, b: a.bmm(b), kind="reduction")
    check_op([(7,), (7,)], lambda a, b: a.dot(b), kind="reduction")
    check_op([(3,), (4,)], lambda a, b: a.outer(b))
    check_op([(3,), (4,)], lambda a, b: a.outer(b), dtype="int64", low=-3, high=3)


def test_half_and_integer_dtypes(kernels):
    check_op([(3, 8), (8, 5)], lambda a, b: a @ b, dtype="float16", kind="reduction")
    check_op([(2, 3, 8), (8, 5)], lambda a, b: a @ b, dtype="bfloat16", kind="reduction")
    check_op([(3, 4), (4, 2)], lambda a, b: a @ b, dtype="int64", low=-5, high=5)
    check_op([(2, 3, 4), (4,)], lambda a, b: a @ b, dtype="int32", low=-5, high=5)


def test_zero_sized_dims(kernels):
    check_op([(3, 0), (0, 4)], lambda a, b: a @ b)
    check_op([(0, 3), (3, 4)], lambda a, b: a @ b)


def test_gradcheck_float64():
    rng = np.random.default_rng(2)
    a = tinyml.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w = tinyml.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    v = tinyml.tensor(rng.standard_normal((2,)), requires_grad=True)
    assert gradcheck(lambda x, y, z: ((x @ y).tanh() @ z), [a, w, v])
    b = tinyml.tensor(rng.standard_normal((1, 4, 3)), requires_grad=True)
    assert gradcheck(lambda x, y: x @ y, [a, b])


@pytest.mark.parametrize("a,b,pattern", [
    ((3, 4), (5, 6), r"mat1 and mat2 shapes cannot be multiplied \(3x4 and 5x6\)"),
    ((2, 3, 4), (5, 6), r"mat1 and mat2 shapes cannot be multiplied \(6x4 and 5x6\)"),
    ((4,), (5, 6), r"mat1 and mat2 shapes cannot be multiplied \(1x4 and 5x6\)"),
    ((2, 3, 4), (2, 5, 6), r"cannot be multiplied \(3x4 and 5x6\).*\(2, 3, 4\) and \(2, 5, 6\)"),
    ((3, 4), (5,), r"size mismatch, got input \(3\), mat \(3x4\), vec \(5\)"),
    ((4,), (5,), r"inconsistent tensor size, expected tensor \[4\] and src \[5\]"),
    ((2, 3, 4), (3, 4, 5), r"batch dimensions \(2,\) and \(3,\) are not broadcastable"),
    ((), (3,), r"at least 1D, but they are 0D and 1D"),
])
def test_matmul_shape_errors(a, b, pattern):
    with pytest.raises(RuntimeError, match=pattern):
        tinyml.randn(*a) @ tinyml.randn(*b)


def test_other_errors():
    with pytest.raises(RuntimeError, match="same dtype.*float32 != tinyml.float64"):
        tinyml.randn(2, 3) @ tinyml.randn(3, 2, dtype=tinyml.float64)
    with pytest.raises(RuntimeError, match="self must be a matrix"):
        tinyml.mm(tinyml.randn(3), tinyml.randn(3, 2))
    with pytest.raises(RuntimeError, match=r"cannot be multiplied \(2x3 and 2x3\)"):
        tinyml.mm(tinyml.randn(2, 3), tinyml.randn(2, 3))
    with pytest.raises(RuntimeError, match="batch1 must be a 3D tensor"):
        tinyml.bmm(tinyml.randn(3, 4), tinyml.randn(3, 4, 5))
    with pytest.raises(RuntimeError, match=r"batch2 tensor to be: \[2, 4\] but got: \[3, 4\]"):
        tinyml.bmm(tinyml.randn(2, 3, 4), tinyml.randn(3, 4, 5))
    with pytest.raises(RuntimeError, match="1D tensors expected, but got 2D and 1D"):
        tinyml.dot(tinyml.randn(3, 4), tinyml.randn(3))
    with pytest.raises(TypeError, match="two Tensors"):
        tinyml.matmul(tinyml.randn(3), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("shapes", [[(5, 3), (3, 4)], [(2, 5, 3), (3, 4)], [(2, 5, 3), (2, 3, 4)]], ids=str)
def test_gradient_to_one_side_only(kernels, shapes):
    # an input (or a weight) that needs no gradient: only the other side is saved and computed
    check_op(shapes, lambda a, b: a.detach() @ b, kind="reduction")
    check_op(shapes, lambda a, b: a @ b.detach(), kind="reduction")


def test_shared_weight_gradient_is_one_gemm_and_exact():
    # the folded (K, B*M) @ (B*M, N) weight gradient equals the per-batch sum
    rng = np.random.default_rng(0)
    x = tinyml.tensor(rng.standard_normal((3, 5, 4)), requires_grad=True)
    w = tinyml.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    g = rng.standard_normal((3, 5, 2))
    (x @ w).backward(tinyml.tensor(g))
    want = sum(x.detach().numpy()[i].T @ g[i] for i in range(3))
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-12)


RED = {"kind": "reduction"}


@pytest.mark.parametrize("x_shape", [(3, 4), (2, 5, 4), (4,)])
def test_linear(kernels, x_shape):
    check_op([x_shape, (6, 4), (6,)], lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
             **RED)
    check_op([x_shape, (6, 4)], lambda x, w: F.linear(x, w), lambda x, w: TF.linear(x, w), **RED)


def test_linear_noncontiguous_and_gradcheck(kernels):
    check_op([(5, 4), (3, 4), (3,)], lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
             noncontiguous=True, **RED)
    rng = np.random.default_rng(0)
    x, w, b = (tinyml.tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3), (4, 3), (4,)])
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), [x, w, b])


def test_linear_first_layer_gradients(kernels):
    # the usual first layer: the input is data (no grad), only the weight and bias learn
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    ours_w, ours_b = tinyml.tensor(w, requires_grad=True), tinyml.tensor(b, requires_grad=True)
    theirs_w, theirs_b = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    F.linear(tinyml.tensor(x), ours_w, ours_b).sum().backward()
    TF.linear(torch.tensor(x), theirs_w, theirs_b).sum().backward()
    np.testing.assert_allclose(ours_w.grad.numpy(), theirs_w.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours_b.grad.numpy(), theirs_b.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("bias", [False, True])
def test_linear_with_a_frozen_weight_keeps_no_input(kernels, bias):
    # a frozen layer under a trained one (LoRA's base): backward needs W for dx, never x or b
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    ours_x = tinyml.tensor(x, requires_grad=True)
    ours_w, ours_b = tinyml.tensor(w), tinyml.tensor(b) if bias else None
    y = F.linear(ours_x, ours_w, ours_b)
    saved = [e[0] for e in y.grad_fn._saved if e is not None]
    assert len(saved) == 1 and saved[0] is ours_w
    theirs_x = torch.tensor(x, requires_grad=True)
    g = rng.standard_normal((2, 5, 4))
    y.backward(tinyml.tensor(g))
    TF.linear(theirs_x, torch.tensor(w), torch.tensor(b) if bias else None).backward(torch.tensor(g))
    np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-10)
    assert ours_w.grad is None and (ours_b is None or ours_b.grad is None)


def test_linear_shape_error_names_both_shapes():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 5x4\)"):
        F.linear(tinyml.randn(2, 3), tinyml.randn(4, 5))


# -- every backend of the family ------------------------------------------------------------------
@pytest.mark.parametrize("shapes", [[(5, 7), (7, 3)], [(2, 1, 5, 7), (3, 7, 4)], [(7,), (7, 3)],
                                    [(33, 40), (40, 35)]])
def test_matmul_on_every_backend(backend_device, shapes):
    check_op(shapes, lambda a, b: a @ b, device=backend_device, kind="reduction", rtol=2e-3, atol=2e-3)


def test_matmul_bf16_accumulates_in_float32(backend_device):
    a = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
    x = tinyml.tensor(a, dtype=tinyml.bfloat16, device=backend_device)
    out = (x @ x.T).float().cpu().numpy()
    ref = a.astype(np.float64) @ a.T.astype(np.float64)
    assert np.max(np.abs(out - ref)) < 0.1 * np.max(np.abs(ref))


@needs_C  # set_num_threads sets the C++ kernels' OpenMP pool and numpy's BLAS together
def test_blas_follows_set_num_threads():
    """numpy's BLAS (the cpu matmul) runs on the thread count set_num_threads gives."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = tinyml.get_num_threads()
    try:
        tinyml.set_num_threads(1)
        assert tinyml.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
    finally:
        tinyml.set_num_threads(before)
    assert tinyml.get_num_threads() == before


@needs_C
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,n,k", [(5, 3, 4), (300, 96, 160)])  # below and above the threading threshold
def test_cpu_linear_kernels_equal_the_reference_bit_for_bit(threads, m, n, k):
    """The bias added per row slice, and the two backward GEMMs side by side on 2 threads, give the
    reference's numbers exactly (each product is the same whole BLAS call or a row slice of it)."""
    from tinyml.backends.cpu import matmul as cpu
    from tinyml.backends.reference import matmul as ref

    rng = np.random.default_rng(m)
    g, x = rng.standard_normal((m, n), np.float32), rng.standard_normal((m, k), np.float32)
    w, b = rng.standard_normal((n, k), np.float32), rng.standard_normal(n, np.float32)
    before = tinyml.get_num_threads()
    try:
        tinyml.set_num_threads(threads)
        np.testing.assert_array_equal(cpu.linear(x, w, b), ref.linear(x, w, b))
        for need_input, need_weight in [(True, True), (True, False), (False, True)]:
            args = (g, x if need_weight else None, w if need_input else None, need_input, need_weight)
            for got, want in zip(cpu.linear_backward(*args), ref.linear_backward(*args)):
                assert (got is None) == (want is None)
                if want is not None:
                    np.testing.assert_array_equal(got, want)
    finally:
        tinyml.set_num_threads(before)


def test_linear_on_every_backend(backend_device):
    check_op([(2, 5, 8), (6, 8), (6,)], lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
             device=backend_device, kind="reduction", rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("shapes", [[(5, 7), (7, 3)], [(2, 3, 33), (33, 35)]], ids=str)
def test_matmul_float64_on_every_backend(backend_device, shapes):
    """float64 runs on every backend (on cuda: float64 tiles accumulated in float64, not float32)."""
    check_op(shapes, lambda a, b: a @ b, device=backend_device, dtype="float64", kind="reduction",
             rtol=1e-12, atol=1e-12)
    check_op([(4, 9), (6, 9), (6,)], lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
             device=backend_device, dtype="float64", kind="reduction", rtol=1e-12, atol=1e-12)


def test_cuda_matmul_refuses_mixed_dtypes_by_name():
    if not tinyml.cuda.is_available():
        pytest.skip("no cuda device and Triton's interpreter is not enabled")
    from tinyml.backends.triton.matmul import matmul as cuda_matmul

    a = tinyml.randn(2, 3, device="cuda")._data
    b = tinyml.ones(3, 2, device="cuda", dtype=tinyml.int64)._data
    with pytest.raises(TypeError, match="float32 and int64"):
        cuda_matmul(a, b)
