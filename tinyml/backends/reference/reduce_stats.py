"""Reference reductions beyond sum (numpy), and their gradients: prod, var, std, logsumexp, norm,
all, any. The conventions (sorted `dims`, keepdim-form gradients, float32 accumulation for 16-bit
floats) are those of reduce.py.
"""
import numpy as np

from .reduce import acc_dtype, out_as, quiet

__all__ = ["all", "any", "logsumexp", "norm", "norm_backward", "prod", "prod_backward", "std", "var"]


def prod(x, dims, keepdim, np_dtype):
    """prod_{i in dims} x_i, in `np_dtype`."""
    with quiet():
        return out_as(np.prod(x, axis=dims, keepdims=keepdim, dtype=acc_dtype(np_dtype)), np_dtype)


def _to_rows(a, dims):
    """`a` with the axes in `dims` moved last and flattened to one: shape (..., n)."""
    nd = a.ndim
    rest = [i for i in range(nd) if i not in dims]
    moved = np.transpose(a, rest + list(dims))
    return moved.reshape(moved.shape[:len(rest)] + (-1,)), rest


def _from_rows(rows, like_shape, dims, rest):
    """Inverse of `_to_rows` for an array of x's shape."""
    moved_shape = tuple(like_shape[i] for i in rest) + tuple(like_shape[i] for i in dims)
    moved = rows.reshape(moved_shape)
    inverse = np.argsort(rest + list(dims))
    return np.transpose(moved, inverse)


def prod_backward(x, g, dims):
    """d prod / dx_i = prod_{j != i} x_j: y / x_i when x has no zero (PyTorch's formula), else as
    exclusive left and right running products, so that zeros need no division (and a single zero
    gets the product of the others)."""
    if x.ndim == 0:
        return np.broadcast_to(g, x.shape).astype(g.dtype, copy=True)
    acc = acc_dtype(x.dtype)
    if not np.any(x == 0):
        xa = x.astype(acc, copy=False)
        with quiet():
            y = np.prod(xa, axis=dims, keepdims=True)
            return (g.astype(acc, copy=False) * y / xa).astype(g.dtype, copy=False)
    rows, rest = _to_rows(x.astype(acc, copy=False), dims)
    ones = np.ones(rows.shape[:-1] + (1,), acc)
    with quiet():
        left = np.cumprod(np.concatenate([ones, rows[..., :-1]], axis=-1), axis=-1)
        right = np.cumprod(np.concatenate([ones, rows[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        others = _from_rows(left * right, x.shape, dims, rest)
        return (g.astype(acc) * others).astype(g.dtype, copy=False)


def _moments(x, dims, correction):
    """(mean over dims in keepdim form, sum of squared deviations, divisor max(n - correction, 0))."""
    acc = acc_dtype(x.dtype)
    n = 1
    for d in dims:
        n *= x.shape[d]
    with quiet():
        mean = np.sum(x, axis=dims, keepdims=True, dtype=acc) / acc.type(n)
        dev = x.astype(acc, copy=False) - mean
        ss = np.sum(dev * dev, axis=dims, keepdims=True)
    return ss, acc.type(max(n - correction, 0))


def var(x, dims, correction, keepdim):
    """sum (x - mean)^2 / max(n - correction, 0) (two-pass, so no cancellation)."""
    ss, div = _moments(x, dims, correction)
    with quiet():
        out = ss / div
    return out_as(out if keepdim else np.squeeze(out, axis=dims), x.dtype)


def std(x, dims, correction, keepdim):
    """sqrt(var)."""
    ss, div = _moments(x, dims, correction)
    with quiet():
        out = np.sqrt(ss / div)
    return out_as(out if keepdim else np.squeeze(out, axis=dims), x.dtype)


def logsumexp(x, dims, keepdim):
    """m + log sum exp(x - m), m = max over dims (0 where m is infinite so that all -inf rows
    give -inf and a +inf gives +inf rather than NaN). Empty slices give -inf."""
    acc = acc_dtype(x.dtype)
    xa = x.astype(acc, copy=False)
    m = np.max(xa, axis=dims, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0).astype(acc, copy=False)
    with quiet():
        out = np.log(np.sum(np.exp(xa - m), axis=dims, keepdims=True)) + m
    return out_as(out if keepdim else np.squeeze(out, axis=dims), x.dtype)


def all(x, dims, keepdim):
    """True where every element along dims is nonzero (uint8 in, uint8 out, as in PyTorch)."""
    out = np.all(x, axis=dims, keepdims=keepdim)
    return out_as(out, np.uint8 if x.dtype == np.uint8 else np.bool_)


def any(x, dims, keepdim):
    """True where some element along dims is nonzero."""
    out = np.any(x, axis=dims, keepdims=keepdim)
    return out_as(out, np.uint8 if x.dtype == np.uint8 else np.bool_)


def norm(x, p, dims, keepdim):
    """Vector p-norm over dims: (sum |x|^p)^(1/p); p=inf: max |x|; p=-inf: min |x|; p=0: the
    count of nonzeros. The op refuses empty slices for p = +-inf."""
    acc = acc_dtype(x.dtype)
    a = np.abs(x.astype(acc, copy=False))
    with quiet():
        if p == np.inf:
            out = np.max(a, axis=dims, keepdims=keepdim)
        elif p == -np.inf:
            out = np.min(a, axis=dims, keepdims=keepdim)
        elif p == 0:
            out = np.sum(a != 0, axis=dims, keepdims=keepdim, dtype=acc)
        elif p == 1:
            out = np.sum(a, axis=dims, keepdims=keepdim)
        elif p == 2:
            out = np.sqrt(np.sum(a * a, axis=dims, keepdims=keepdim))
        else:
            out = np.power(np.sum(np.power(a, p), axis=dims, keepdims=keepdim), 1.0 / p)
    return out_as(out, x.dtype)


def norm_backward(x, y, g, p, dims):
    """dx of the p-norm (PyTorch's formulas, 0 where the norm is 0 so the zero vector gets 0):
        p=2: g x / y     p=1: g sign(x)     p=0: 0
        p=+-inf: g sign(x) [|x| == y] / #ties      p<1: g sign(x) |x|^(p-1) y^(1-p) (0 at x=0)
        else: g x |x|^(p-2) / y^(p-1)"""
    acc = acc_dtype(x.dtype)
    xa, ya, ga = x.astype(acc, copy=False), y.astype(acc, copy=False), g.astype(acc, copy=False)
    zero = np.zeros((), acc)
    with quiet():
        if p == 0:
            dx = np.zeros(x.shape, acc)
        elif p == 1:
            dx = np.sign(xa) * ga
        elif p == 2:
            dx = xa * np.where(ya == 0, zero, ga / ya)
        elif p in (np.inf, -np.inf):
            mask = np.abs(xa) == ya
            count = np.sum(mask, axis=dims, keepdims=True)
            dx = np.where(mask, np.sign(xa) * ga / count, zero)
        elif p < 1:
            scaled = np.where(xa == 0, zero, np.sign(xa) * np.power(np.abs(xa), p - 1))
            dx = scaled * ga * np.power(ya, 1 - p)
        else:
            scaled = np.sign(xa) * np.power(np.abs(xa), p - 1)
            dx = scaled * np.where(ya == 0, zero, ga / np.power(ya, p - 1))
    return np.broadcast_to(dx, x.shape).astype(g.dtype)
