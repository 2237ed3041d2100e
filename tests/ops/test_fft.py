"""tinyml.fft (fft, ifft, rfft, irfft) vs torch.fft on complex tensors: forward and backward over n
(crop and zero-pad), dim and norm, dtypes (float32 -> complex64, float64 -> complex128, real inputs
of fft promoting), gradcheck through view_as_real and second derivatives in float64, errors."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml.testing import assert_close, gradcheck

NORMS = [None, "backward", "ortho", "forward"]
COMPLEX_OF = {np.float32: np.complex64, np.float64: np.complex128}


def _input(name, shape, dtype, seed=0):
    """A real signal for rfft, a complex one for the others."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if name != "rfft":
        x = x + 1j * rng.standard_normal(shape)
        return x.astype(COMPLEX_OF[dtype])
    return x.astype(dtype)


def _real_view(lib, y):
    return lib.view_as_real(y.resolve_conj()) if y.is_complex() else y


def _compare(name, shape, kw, dtype=np.float64, x=None):
    x = _input(name, shape, dtype) if x is None else x
    tx, px = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ty, py = getattr(tinyml.fft, name)(tx, **kw), getattr(torch.fft, name)(px, **kw)
    assert str(ty.dtype).split(".")[1] == str(py.dtype).split(".")[1]
    assert_close(_real_view(tinyml, ty), _real_view(torch, py), kind="reduction", msg=f"{name} forward {kw}")
    g = np.random.default_rng(1).standard_normal(tuple(_real_view(torch, py).shape)).astype(dtype)
    (_real_view(tinyml, ty) * tinyml.tensor(g)).sum().backward()
    (_real_view(torch, py) * torch.tensor(g)).sum().backward()
    assert tx.grad.dtype is tx.dtype
    assert_close(_real_view(tinyml, tx.grad), _real_view(torch, px.grad), kind="reduction",
                 msg=f"{name} backward {kw}")
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
    assert y.dtype is (tinyml.float32 if name == "irfft" else tinyml.complex64)
    _compare(name, (4, 5, 3), {"dim": -3, "n": 9})


@pytest.mark.parametrize("name", ["fft", "ifft"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_real_inputs_of_fft_promote_to_complex(name, dtype):
    x = np.random.default_rng(3).standard_normal((3, 6)).astype(dtype)
    y = _compare(name, None, {"n": 8}, dtype=dtype, x=x)
    assert y.dtype is (tinyml.complex64 if dtype is np.float32 else tinyml.complex128)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_lengths(n):
    _compare("rfft", (2, n), {})
    _compare("irfft", (2, n // 2 + 1), {"n": n})


def test_roundtrips_and_parseval():
    x = tinyml.randn(3, 10, dtype=tinyml.float64)
    assert_close(tinyml.fft.irfft(tinyml.fft.rfft(x), n=10), x)
    c = tinyml.randn(3, 10, dtype=tinyml.complex128)
    assert_close(tinyml.view_as_real(tinyml.fft.ifft(tinyml.fft.fft(c))), tinyml.view_as_real(c))
    energy = (tinyml.fft.fft(c, norm="ortho").abs() ** 2).sum()
    assert_close(energy, (c.abs() ** 2).sum())


def test_fft_convolution_is_the_causal_convolution():
    """What S4D uses: irfft(rfft(u, 2L) * rfft(k, 2L))[:L] = sum_j k_j u_{t-j}, gradients included."""
    rng = np.random.default_rng(0)
    u, k = rng.standard_normal((2, 9)), rng.standard_normal(9)
    tu, tk = tinyml.tensor(u, requires_grad=True), tinyml.tensor(k, requires_grad=True)

    def conv(a, b):
        return tinyml.fft.irfft(tinyml.fft.rfft(a, n=18) * tinyml.fft.rfft(b, n=18), n=18)[..., :9]

    want = np.array([[sum(k[j] * u[b, t - j] for j in range(t + 1)) for t in range(9)] for b in range(2)])
    assert_close(conv(tu, tk), want, kind="reduction")
    assert gradcheck(conv, [tu, tk])


def _through_real_layout(name, n, norm):
    """The op as a real function of real tensors (view_as_real around it), for gradcheck."""
    op = getattr(tinyml.fft, name)

    def f(t):
        y = op(t if name == "rfft" else tinyml.view_as_complex(t), n=n, norm=norm)
        return tinyml.view_as_real(y) if y.is_complex() else y
    return f


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft"])
@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_gradcheck(name, norm):
    shape = (2, 5) if name == "rfft" else (2, 5, 2)
    x = tinyml.tensor(np.random.default_rng(0).standard_normal(shape), requires_grad=True)
    assert gradcheck(_through_real_layout(name, 6, norm), [x])


@pytest.mark.parametrize("name", ["fft", "rfft", "irfft"])
def test_second_derivative_matches_torch(name):
    x = _input(name, (2, 6), np.float64)
    y0 = getattr(torch.fft, name)(torch.tensor(x), n=7)
    w = np.random.default_rng(2).standard_normal(tuple(_real_view(torch, y0).shape))
    grads = []
    for lib in (tinyml, torch):
        t = lib.tensor(x, requires_grad=True)
        y = (_real_view(lib, getattr(lib.fft, name)(t, n=7)) * lib.tensor(w)).pow(2).sum()
        (g,) = lib.autograd.grad(y, [t], create_graph=True)
        (_real_view(lib, g) ** 2).sum().backward()
        grads.append(t.grad)
    assert_close(_real_view(tinyml, grads[0]), _real_view(torch, grads[1]), kind="reduction")


def test_integers_promote_and_half_is_refused():
    y = tinyml.fft.rfft(tinyml.arange(8))
    assert y.dtype is tinyml.complex64 and y.shape == (5,)
    assert tinyml.fft.fft(tinyml.arange(4)).dtype is tinyml.complex64
    with pytest.raises(TypeError, match="float16"):
        tinyml.fft.rfft(tinyml.ones(8, dtype=tinyml.float16))


def test_errors_name_the_values():
    x = tinyml.randn(4, 3)
    with pytest.raises(RuntimeError, match="rfft expects a real input tensor, but got tinyml.complex64"):
        tinyml.fft.rfft(x.to(tinyml.complex64))
    with pytest.raises(IndexError, match="dim 2"):
        tinyml.fft.rfft(x, dim=2)
    with pytest.raises(ValueError, match=r"data points \(0\)"):
        tinyml.fft.rfft(x, n=0)
    with pytest.raises(ValueError, match=r"data points \(0\)"):
        tinyml.fft.irfft(tinyml.randn(3, 1, dtype=tinyml.complex64))
    with pytest.raises(ValueError, match="'sideways'"):
        tinyml.fft.ifft(tinyml.randn(3, 2), norm="sideways")
    with pytest.raises(TypeError, match="list"):
        tinyml.fft.rfft([1.0, 2.0])
    with pytest.raises(ValueError, match="0-d"):
        tinyml.fft.fft(tinyml.tensor(1.0))
