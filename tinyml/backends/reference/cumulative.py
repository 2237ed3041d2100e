"""Reference cumulative kernels (numpy): running sums and products along one axis.

`dim` is a non-negative axis (0 for a 0-d input, which is returned as is); `np_dtype` the result
dtype. 16-bit floats accumulate in float32, as in PyTorch's CPU kernels.
"""
import numpy as np

from .reduce import acc_dtype

__all__ = ["cumprod", "cumprod_backward", "cumsum"]


def _quiet():
    """A fresh errstate each time (numpy refuses to re-enter one): inf/NaN results are intended."""
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def cumsum(x, dim, np_dtype, reverse):
    """y_i = sum_{j <= i} x_j along dim; with reverse=True, y_i = sum_{j >= i} x_j (cumsum's
    gradient)."""
    if x.ndim == 0:
        return x.astype(np_dtype, copy=True)
    acc = acc_dtype(np_dtype)
    if reverse:
        x = np.flip(x, dim)
    out = np.cumsum(x, axis=dim, dtype=acc)
    if reverse:
        out = np.flip(out, dim)
    return np.ascontiguousarray(out, dtype=np_dtype)


def cumprod(x, dim, np_dtype):
    """y_i = prod_{j <= i} x_j along dim."""
    if x.ndim == 0:
        return x.astype(np_dtype, copy=True)
    with _quiet():
        return np.cumprod(x, axis=dim, dtype=acc_dtype(np_dtype)).astype(np_dtype, copy=False)


def cumprod_backward(x, y, g, dim):
    """dx_k = sum_{j >= k} g_j prod_{i <= j, i != k} x_i, correct when x has zeros.

    Let z be the first zero of a row (z = n if none). Then
        k < z:  dx_k = sum_{j >= k} g_j y_j / x_k           (x_k != 0; terms j >= z vanish)
        k = z:  dx_z = y_{z-1} sum_{j >= z} g_j prod_{z < i <= j} x_i
        k > z:  dx_k = 0                                     (every product holds x_z = 0)
    """
    if x.ndim == 0:
        return g.astype(g.dtype, copy=True)
    acc = np.float64 if g.dtype == np.float64 else np.float32
    xm, ym, gm = (np.moveaxis(a.astype(acc, copy=False), dim, -1) for a in (x, y, g))
    n = xm.shape[-1]
    pos = np.arange(n)
    is_zero = xm == 0
    with _quiet():
        rev = np.flip(np.cumsum(np.flip(gm * ym, -1), -1), -1)
        if not is_zero.any():
            dx = rev / xm
        else:
            first_zero = np.where(is_zero.any(-1), is_zero.argmax(-1), n)[..., None]
            dx = np.where(pos < first_zero, rev / np.where(is_zero, 1, xm), 0)
            # the first zero: products of the x after it, times the product of the x before it
            after = np.cumprod(np.where(pos <= first_zero, 1, xm), -1)
            at_zero = np.sum(np.where(pos >= first_zero, gm * after, 0), -1, keepdims=True)
            before = np.prod(np.where(pos < first_zero, xm, 1), -1, keepdims=True)
            dx = np.where(pos == first_zero, before * at_zero, dx)
    return np.ascontiguousarray(np.moveaxis(dx, -1, dim)).astype(g.dtype, copy=False)
