"""Reference max/min-style reduction kernels (numpy): values, indices and their gradients.

Same conventions as reduce.py: `dims` a sorted tuple of non-negative axes; backward kernels get
the output `y` and gradient `g` in keepdim form. NaN propagates (it is the max and the min), and
index kernels return the first position of the extremum (or of the first NaN), as PyTorch does.
The op refuses empty slices before any of these run.
"""
import numpy as np

__all__ = ["amax", "amax_backward", "amin", "argmax", "argmin", "max_dim", "min_dim", "value_selecting_backward"]


def amax(x, dims, keepdim):
    """max over dims."""
    return np.asarray(np.max(x, axis=dims, keepdims=keepdim))


def amin(x, dims, keepdim):
    """min over dims."""
    return np.asarray(np.min(x, axis=dims, keepdims=keepdim))


def amax_backward(x, y, g, dims):
    """Gradient of amax and of amin (and of max()/min() without dim): g split evenly among the
    elements equal to the result (NaN counts as equal to a NaN result), 0 elsewhere."""
    mask = np.equal(x, y)
    if x.dtype.kind == "f" or x.dtype.name == "bfloat16":
        mask |= np.isnan(x) & np.isnan(y)
    count = np.sum(mask, axis=dims, keepdims=True)
    share = (g.astype(np.float64) / np.maximum(count, 1)).astype(g.dtype)
    return np.where(mask, share, np.zeros((), g.dtype))


def _with_indices(x, dim, keepdim, arg):
    if x.ndim == 0:
        return x.copy(), np.zeros((), np.int64)
    idx = np.expand_dims(arg(x, axis=dim), dim)
    values = np.take_along_axis(x, idx, axis=dim)
    if not keepdim:
        values, idx = np.squeeze(values, dim), np.squeeze(idx, dim)
    return values, idx.astype(np.int64, copy=False)


def max_dim(x, dim, keepdim):
    """(values, indices) of the max along one axis; the first maximal index on ties."""
    return _with_indices(x, dim, keepdim, np.argmax)


def min_dim(x, dim, keepdim):
    """(values, indices) of the min along one axis; the first minimal index on ties."""
    return _with_indices(x, dim, keepdim, np.argmin)


def value_selecting_backward(g, indices, dim, in_shape):
    """Gradient of max_dim/min_dim: g (keepdim form) scattered to the selected index along `dim`
    of a zero array of the input's shape."""
    out = np.zeros(in_shape, g.dtype)
    if len(in_shape) == 0:
        out[()] = g.reshape(())
        return out
    np.put_along_axis(out, np.asarray(indices, np.int64), g, axis=dim)
    return out


def _arg(x, dim, keepdim, fn):
    if dim is None:
        out = np.asarray(fn(x.reshape(-1)), np.int64)
        return out.reshape((1,) * x.ndim) if keepdim else out
    if x.ndim == 0:
        return np.zeros((), np.int64)
    return np.asarray(fn(x, axis=dim, keepdims=keepdim), np.int64)


def argmax(x, dim, keepdim):
    """Index of the first max along `dim` (None: into the flattened input)."""
    return _arg(x, dim, keepdim, np.argmax)


def argmin(x, dim, keepdim):
    """Index of the first min along `dim` (None: into the flattened input)."""
    return _arg(x, dim, keepdim, np.argmin)
