"""add_layer_norm (residual add + layer_norm in one kernel): against torch's add + layer_norm, the
C++ kernels against the numpy reference, float64 gradcheck, and the same bits as the separate ops
(which the GPT's fused blocks rely on: tests/models/transformer/test_gpt_fused.py)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, DTYPES, close, impls, needs_C
from helpers import check_op

import tinyml
from tinyml.ops.norm import add_layer_norm
from tinyml.testing import gradcheck

RED = {"kind": "reduction"}


def _torch_add_layer_norm(x, r, w, b):
    s = x + r
    return TF.layer_norm(s, (s.shape[-1],), w, b), s


@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 5), (6,), (3, 1)])
def test_forward_backward_against_torch(kernels, shape):
    n = shape[-1]
    check_op([shape, shape, (n,), (n,)], lambda x, r, w, b: add_layer_norm(x, r, n, w, b),
             _torch_add_layer_norm, rtol=1e-4, atol=1e-4)


def test_without_affine_float64_and_noncontiguous(kernels):
    check_op([(3, 6), (3, 6)], lambda x, r: add_layer_norm(x, r, 6),
             lambda x, r: _torch_add_layer_norm(x, r, None, None), dtype="float64", **RED)
    check_op([(4, 5), (4, 5), (5,), (5,)], lambda x, r, w, b: add_layer_norm(x, r, (5,), w, b, 1e-3),
             lambda x, r, w, b: (TF.layer_norm(x + r, (5,), w, b, 1e-3), x + r), noncontiguous=True, **RED)


def test_only_one_output_used(kernels):
    rng = np.random.default_rng(0)
    x, r = (tinyml.tensor(rng.standard_normal((3, 4)), requires_grad=True) for _ in range(2))
    y, s = add_layer_norm(x, r, 4)
    s.sum().backward()  # y unused: the add's gradient only
    assert np.array_equal(x.grad.numpy(), np.ones((3, 4))) and np.array_equal(r.grad.numpy(), np.ones((3, 4)))
    x.grad = r.grad = None
    y, s = add_layer_norm(x, r, 4)
    (y * y).sum().backward()  # s unused
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    (TF.layer_norm(xt + torch.tensor(r.detach().numpy()), (4,)) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_gradcheck_float64_and_second_order():
    rng = np.random.default_rng(1)
    x, r = (tinyml.tensor(rng.standard_normal((3, 5)), requires_grad=True) for _ in range(2))
    w, b = (tinyml.tensor(rng.standard_normal(5), requires_grad=True) for _ in range(2))

    def fn(x, r, w, b):
        y, s = add_layer_norm(x, r, 5, w, b)
        return y * 1.5 + s * s

    assert gradcheck(fn, (x, r, w, b))
    y, _ = add_layer_norm(x, r, 5, w, b)
    (gx,) = tinyml.autograd.grad((y * y).sum(), (x,), create_graph=True)
    gx.sum().backward()  # differentiable under create_graph
    assert w.grad is not None and np.isfinite(w.grad.numpy()).all()


def test_same_bits_as_add_then_layer_norm():
    """The fused kernel's sum, output and gradients are the separate add + layer_norm's bits."""
    rng = np.random.default_rng(2)
    shape, n = (4, 96, 128), 128
    def leaf(*shape):
        return tinyml.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)

    x, r, w, b = leaf(*shape), leaf(*shape), leaf(n), leaf(n)
    g1, g2 = (tinyml.tensor(rng.standard_normal(shape).astype(np.float32)) for _ in range(2))
    results = []
    for fused in (True, False):
        for t in (x, r, w, b):
            t.grad = None
        if fused:
            y, s = add_layer_norm(x, r, n, w, b)
        else:
            s = x + r
            y = tinyml.layer_norm(s, (n,), w, b)
        ((y * g1).sum() + (s * g2).sum()).backward()
        results.append([y.detach().numpy(), s.detach().numpy()] + [t.grad.numpy() for t in (x, r, w, b)])
    for a, e in zip(*results):
        assert np.array_equal(a, e)


def test_falls_back_to_the_separate_ops():
    rng = np.random.default_rng(3)
    x = tinyml.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    r = tinyml.tensor(rng.standard_normal((3, 4)))  # broadcast: the add op, then layer_norm
    y, s = add_layer_norm(x, r, (4,))
    assert s.grad_fn is not None and "AddLayerNorm" not in type(y.grad_fn).__name__
    np.testing.assert_allclose(y.detach().numpy(), tinyml.layer_norm(x + r, (4,)).detach().numpy())
    w = tinyml.ones(4)
    y2, _ = add_layer_norm(x, x, 4, w, None)  # weight without bias: the separate ops too
    np.testing.assert_allclose(y2.detach().numpy(), tinyml.layer_norm(x + x, (4,), w).detach().numpy())


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 5), (40, 300), (3, 7, 33), (2048, 24)])
def test_cpu_kernels_against_reference(dtype, shape):
    rng = np.random.default_rng(4)
    x, r, dy, ds = (rng.standard_normal(shape).astype(dtype) for _ in range(4))
    w, b = (rng.standard_normal(shape[-1]).astype(dtype) for _ in range(2))
    fwd_cpu, fwd_ref = impls("add_layer_norm_forward")
    out = fwd_cpu(x, r, w, b, 1e-5)
    ref = fwd_ref(x, r, w, b, 1e-5)
    close(out, ref, dtype, "forward")
    assert np.array_equal(out[0], x + r)
    bwd_cpu, bwd_ref = impls("add_layer_norm_backward")
    s, _, mean, rstd = out
    for grad_sum in (ds, None):
        args = (dy, grad_sum, s, w, mean, rstd)
        close(bwd_cpu(*args), bwd_ref(*args), dtype, "backward")


@needs_C
def test_cpu_kernel_checks_and_nan():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"input has shape \(3, 4\) but residual has shape \(4, 3\)"):
        _C.add_layer_norm_forward(x, np.ones((4, 3), np.float32), None, None, 1e-5)
    with pytest.raises(ValueError, match=r"weight has shape \(3,\)"):
        _C.add_layer_norm_forward(x, x, np.ones(3, np.float32), None, 1e-5)
    with pytest.raises(ValueError, match=r"grad_sum has shape \(2, 4\)"):
        _C.add_layer_norm_backward(x, np.ones((2, 4), np.float32), x, None, np.zeros(3, np.float32),
                                   np.ones(3, np.float32))
    with pytest.raises(TypeError, match="int64"):
        _C.add_layer_norm_forward(x.astype(np.int64), x.astype(np.int64), None, None, 1e-5)
    r = x.copy()
    r[1, 2] = np.nan
    s, y, _, _ = _C.add_layer_norm_forward(x, r, None, None, 1e-5)
    assert np.isnan(s[1, 2]) and np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()
