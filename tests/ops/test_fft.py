"""tinyml.fft (fft, ifft, rfft, irfft) vs torch.fft through torch.view_as_real: forward and backward
over n (crop and zero-pad), dim and norm, gradcheck and second derivatives in float64, errors."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml.testing import assert_close, gradcheck

NORMS = [None, "backward", "ortho", "forward"]


def _torch_op(name):
    """torch's transform on the (..., 2) layout: complex in (except rfft), complex out (except irfft)."""
    fn = getattr(torch.fft, name)

    def run(x, **kw):
        y = fn(x if name == "rfft" else torch.view_as_complex(x), **kw)
        return y if name == "irfft" else torch.view_as_real(y)
    return run


def _input(name, shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape if name == "rfft" else shape + (2,)).astype(dtype)


def _compare(name, shape, kw, dtype=np.float64):
    x = _input(name, shape, dtype)
    tx = tinyml.tensor(x, requires_grad=True)
    px = torch.tensor(x, requires_grad=True)
    ty = getattr(tinyml.fft, name)(tx, **kw)
    py = _torch_op(name)(px, **kw)
    kind = "reduction"
    assert_close(ty, py, kind=kind, msg=f"{name} forward {kw}")
    g = np.random.default_rng(1).standard_normal(tuple(py.shape)).astype(dtype)
    (ty * tinyml.tensor(g)).sum().backward()
    (py * torch.tensor(g)).sum().backward()
    assert_close(tx.grad, px.grad, kind=kind, msg=f"{name} backward {kw}")
    return ty


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft"])
@pytest.mark.parametrize("norm", NORMS)
def test_matches_torch_forward_backward(name, norm):
    _compare(name, (3, 8), {"norm": norm})


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft"])
@pytest.mark.parametrize("n", [5, 6, 11, 16])
def test_n_crops_and_pads(name, n):
    _compare(name, (2, 7), {"n": n, "norm": "ortho"})


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft"])
def test_other_dims_and_float32(name):
    y = _compare(name, (4, 5, 3), {"dim": 1}, dtype=np.float32)
    assert y.dtype is tinyml.float32
    _compare(name, (4, 5, 3), {"dim": -3, "n": 9})


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_lengths(n):
    _compare("rfft", (2, n), {})
    _compare("irfft", (2, n // 2 + 1), {"n": n})


def test_roundtrips_and_parseval():
    x = tinyml.randn(3, 10, dtype=tinyml.float64)
    assert_close(tinyml.fft.irfft(tinyml.fft.rfft(x), n=10), x)
    c = tinyml.randn(3, 10, 2, dtype=tinyml.float64)
    assert_close(tinyml.fft.ifft(tinyml.fft.fft(c)), c)
    energy = (tinyml.fft.fft(c, norm="ortho") ** 2).sum()
    assert_close(energy, (c ** 2).sum())


def test_fft_convolution_is_the_causal_convolution():
    """What S4D uses: irfft(rfft(u, 2L) * rfft(k, 2L))[:L] = sum_j k_j u_{t-j}, gradients included."""
    rng = np.random.default_rng(0)
    u, k = rng.standard_normal((2, 9)), rng.standard_normal(9)
    tu, tk = tinyml.tensor(u, requires_grad=True), tinyml.tensor(k, requires_grad=True)

    def conv(a, b):
        fa, fb = tinyml.fft.rfft(a, n=18), tinyml.fft.rfft(b, n=18)
        re = fa[..., 0] * fb[..., 0] - fa[..., 1] * fb[..., 1]
        im = fa[..., 0] * fb[..., 1] + fa[..., 1] * fb[..., 0]
        return tinyml.fft.irfft(tinyml.stack([re, im], -1), n=18)[..., :9]

    want = np.array([[sum(k[j] * u[b, t - j] for j in range(t + 1)) for t in range(9)] for b in range(2)])
    assert_close(conv(tu, tk), want, kind="reduction")
    assert gradcheck(conv, [tu, tk])


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft"])
@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_gradcheck(name, norm):
    x = tinyml.tensor(_input(name, (2, 5), np.float64), requires_grad=True)
    assert gradcheck(lambda t: getattr(tinyml.fft, name)(t, n=6, norm=norm), [x])


@pytest.mark.parametrize("name", ["fft", "rfft", "irfft"])
def test_second_derivative_matches_torch(name):
    x = _input(name, (2, 6), np.float64)
    w = np.random.default_rng(2).standard_normal(_torch_op(name)(torch.tensor(x), n=7).shape)
    grads = []
    for lib, op in ((tinyml, getattr(tinyml.fft, name)), (torch, _torch_op(name))):
        t = lib.tensor(x, requires_grad=True)
        y = (op(t, n=7) * lib.tensor(w)).pow(2).sum()
        (g,) = (tinyml.autograd.grad if lib is tinyml else torch.autograd.grad)(y, [t], create_graph=True)
        (g * g).sum().backward()
        grads.append(t.grad)
    assert_close(grads[0], grads[1], kind="reduction")


def test_integers_promote_and_half_is_refused():
    y = tinyml.fft.rfft(tinyml.arange(8))
    assert y.dtype is tinyml.float32 and y.shape == (5, 2)
    with pytest.raises(TypeError, match="float16"):
        tinyml.fft.rfft(tinyml.ones(8, dtype=tinyml.float16))


def test_errors_name_the_values():
    x = tinyml.randn(4, 3)
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        tinyml.fft.fft(x)
    with pytest.raises(IndexError, match="dim 2"):
        tinyml.fft.rfft(x, dim=2)
    with pytest.raises(ValueError, match=r"data points \(0\)"):
        tinyml.fft.rfft(x, n=0)
    with pytest.raises(ValueError, match=r"data points \(0\)"):
        tinyml.fft.irfft(tinyml.randn(3, 1, 2))
    with pytest.raises(ValueError, match="'sideways'"):
        tinyml.fft.ifft(tinyml.randn(3, 2), norm="sideways")
    with pytest.raises(TypeError, match="list"):
        tinyml.fft.rfft([1.0, 2.0])
