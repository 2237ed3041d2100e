"""Discrete Fourier transforms with gradients: fft, ifft, rfft, irfft (torch.fft's n/dim/norm), the
ops behind `tinyml.fft`, on complex64 / complex128 tensors as torch.fft: rfft takes a real signal
and returns a complex spectrum, irfft the reverse, fft and ifft take complex (a real input
promotes: float32 -> complex64, float64 -> complex128; integers through the default float).

With F the n-point DFT matrix (F_kj = exp(-2 pi i jk / n)), s the norm's scale (backward: 1
forward and s' = 1/n inverse; ortho: 1/sqrt(n) both ways; forward: 1/n forward and 1 inverse), and
R_n the zero-pad or crop of the input to length n, every transform is linear, so its gradient
(PyTorch's convention, z.grad = dL/dx + i dL/dy) is its adjoint:

    fft:   y = s F R_n x              dx = R_n^T (s F^H g)  = R_n^T ifft(g, dual norm)
    ifft:  y = s' F^H R_n x           dx = R_n^T (s' F g)   = R_n^T fft(g, dual norm)
    rfft:  y = (s F R_n x)[:n//2+1]   dx = R_n^T Re(ifft(zero-pad(g, n), dual norm))
    irfft: y = s sum_k c_k Re(X_k e^{2 pi i jk/n})  (c_k = 1 at k = 0 and the Nyquist term, else 2)
                                      dX = R_m^T (c * rfft(g, dual norm))

where the dual of "backward" is "forward" and the reverse ("ortho" is its own). The backwards
are these transforms again, so second derivatives come out of the same ops. The kernels are
numpy's pocketfft (backends/reference/fft.py) on the cpu device; there is no C++ or Triton
version, and complex tensors live on the cpu device only.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..autograd import Function
from ..backends import run
from ..tensor import Tensor
from ._complex_grad import join_graph
from .complex import real
from .movement_copy import cat
from .slicing import narrow

__all__ = ["fft", "ifft", "irfft", "rfft"]

_NORMS = ("backward", "ortho", "forward")
_DUAL = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _resize(x: Tensor, length: int, dim: int) -> Tensor:
    """x zero-padded or cropped at the end of `dim` to `length` (R_n above; its adjoint is the reverse)."""
    cur = x.shape[dim]
    if cur >= length:
        return x if cur == length else narrow(x, dim, 0, length)
    zeros = x.new_zeros(x.shape[:dim] + (length - cur,) + x.shape[dim + 1:])
    return cat([x, zeros], dim)


def _remember(ctx, x: Tensor, n: int, dim: int, norm: str) -> None:
    """What every transform's backward needs: x's length along dim (to undo R_n), n, dim, norm."""
    ctx.len_in, ctx.n, ctx.dim, ctx.norm = x.shape[dim], n, dim, norm


class FFTC2C(Function):
    """Complex DFT (or inverse) along dim; dx = the dual-norm opposite transform."""

    @staticmethod
    def forward(ctx, x, n, dim, norm, inverse):
        _remember(ctx, x, n, dim, norm)
        ctx.inverse = inverse
        return join_graph(ctx, run("fft_c2c", x, n, dim, norm, inverse))

    @staticmethod
    def backward(ctx, g):
        gx = FFTC2C.apply(g, ctx.n, ctx.dim, _DUAL[ctx.norm], not ctx.inverse)
        return _resize(gx, ctx.len_in, ctx.dim), None, None, None, None


class FFTR2C(Function):
    """The n//2 + 1 non-negative frequencies of a real signal; dx = Re(ifft of g zero-padded to n)."""

    @staticmethod
    def forward(ctx, x, n, dim, norm):
        _remember(ctx, x, n, dim, norm)
        return join_graph(ctx, run("fft_r2c", x, n, dim, norm))

    @staticmethod
    def backward(ctx, g):
        full = FFTC2C.apply(_resize(g, ctx.n, ctx.dim), ctx.n, ctx.dim, _DUAL[ctx.norm], True)
        return _resize(real(full), ctx.len_in, ctx.dim), None, None, None


class FFTC2R(Function):
    """The real signal of a one-sided spectrum; dX = c_k rfft(g) (c_k = 2 for the mirrored terms)."""

    @staticmethod
    def forward(ctx, x, n, dim, norm):
        _remember(ctx, x, n, dim, norm)
        return run("fft_c2r", x, n, dim, norm)

    @staticmethod
    def backward(ctx, g):
        n, dim = ctx.n, ctx.dim
        half = FFTR2C.apply(g, n, dim, _DUAL[ctx.norm])  # (..., n//2 + 1, ...), complex
        weight = np.full(n // 2 + 1, 2.0)
        weight[0] = 1.0
        if n % 2 == 0:
            weight[-1] = 1.0  # the Nyquist term appears once in the Hermitian signal
        shape = (n // 2 + 1,) + (1,) * (half.ndim - 1 - dim)
        w = Tensor(weight.reshape(shape), dtype=g.dtype, device=half.device)
        return _resize(half * w, ctx.len_in, dim), None, None, None


def _norm(name: str, norm) -> str:
    if norm is None:
        return "backward"
    if norm not in _NORMS:
        raise ValueError(f"{name}: invalid normalization mode {norm!r}; expected None, 'backward', 'ortho' "
                         f"or 'forward'")
    return norm


def _dim(name: str, dim: int, ndim: int, shape) -> int:
    if not isinstance(dim, int) or not -ndim <= dim < ndim:
        raise IndexError(f"{name}: dim {dim!r} is out of range for a signal of {ndim} dims (shape "
                         f"{tuple(shape)}); expected an int in [{-ndim}, {ndim - 1}]")
    return dim % ndim


def _length(name: str, n, default: int) -> int:
    n = default if n is None else n
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}: invalid number of data points ({n}) specified; n must be a positive int")
    return int(n)


def _real_input(name: str, x: Tensor) -> Tensor:
    """x as float32 / float64: integers and bool through the default float, as torch.fft; complex
    and half inputs raise."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype in (_dt.float32, _dt.float64):
        return x
    if x.dtype.is_complex:
        raise RuntimeError(f"{name} expects a real input tensor, but got {x.dtype}")
    if x.dtype.is_floating_point:  # numpy's pocketfft (and torch's cpu fft) have no half types
        raise TypeError(f"{name}: unsupported dtype {x.dtype}; the transforms take float32 or float64 (or "
                        f"complex64 / complex128)")
    return x.to(_dt.get_default_dtype())


def _complex_input(name: str, x: Tensor) -> Tensor:
    """x as complex64 / complex128: a real input promotes (float32 -> complex64, float64 -> complex128)."""
    if isinstance(x, Tensor) and x.dtype.is_complex:
        return x
    x = _real_input(name, x)
    return x.to(x.dtype.to_complex())


def _signal_dim(name: str, x: Tensor, dim) -> int:
    if x.ndim == 0:
        raise ValueError(f"{name}: expected a tensor with at least one dim, got a 0-d tensor")
    return _dim(name, dim, x.ndim, x.shape)


def fft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """torch.fft.fft: X_k = s sum_j x_j exp(-2 pi i jk / n), complex (a real input promotes)."""
    x = _complex_input("fft", input)
    d = _signal_dim("fft", x, dim)
    return FFTC2C.apply(x, _length("fft", n, x.shape[d]), d, _norm("fft", norm), False)


def ifft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """torch.fft.ifft: x_j = s sum_k X_k exp(2 pi i jk / n), complex (a real input promotes)."""
    x = _complex_input("ifft", input)
    d = _signal_dim("ifft", x, dim)
    return FFTC2C.apply(x, _length("ifft", n, x.shape[d]), d, _norm("ifft", norm), True)


def rfft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """torch.fft.rfft of a real tensor: the n//2 + 1 non-negative frequencies, complex64 for float32
    (complex128 for float64)."""
    x = _real_input("rfft", input)
    d = _signal_dim("rfft", x, dim)
    return FFTR2C.apply(x, _length("rfft", n, x.shape[d]), d, _norm("rfft", norm))


def irfft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """torch.fft.irfft: the real signal of length n (default 2 (m - 1) for m input terms) whose
    one-sided spectrum is `input` (complex; a real one promotes)."""
    x = _complex_input("irfft", input)
    d = _signal_dim("irfft", x, dim)
    return FFTC2R.apply(x, _length("irfft", n, 2 * (x.shape[d] - 1)), d, _norm("irfft", norm))
