"""Reference reduction kernels (numpy): the oracle for the C++ and Triton versions.

Conventions shared by every kernel here (the op normalises its arguments first):
  - `dims` is a sorted tuple of distinct non-negative axes, never None; () only for a 0-d input.
  - `keepdim` keeps the reduced axes as size 1.
  - Backward kernels take the forward output `y` and the upstream gradient `g` in keepdim form
    (x's shape with the reduced axes of size 1, broadcastable against x) and return dx, x's shape.
  - float16/bfloat16 accumulate in float32 and round once at the end, as PyTorch's CPU kernels do.
Here: sum and the helpers every reduction shares. prod, var, std, logsumexp, norm, all, any and
their gradients live in reduce_stats.py, argmax-style kernels (max_dim, argmax, ...) in
reduce_minmax.py, cumsum/cumprod in cumulative.py (the same split as backends/triton/).
"""
import numpy as np

__all__ = ["sum"]


def quiet():
    """A fresh errstate each time (numpy refuses to re-enter one): inf/NaN results are intended."""
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def acc_dtype(dt: np.dtype) -> np.dtype:
    """The accumulation dtype: float32 for the 16-bit floats, the dtype itself otherwise."""
    dt = np.dtype(dt)
    if dt.itemsize == 2 and (dt.kind == "f" or dt.name == "bfloat16"):
        return np.dtype(np.float32)
    return dt


def out_as(r, dt):
    return np.asarray(r).astype(dt, copy=False)


def sum(x, dims, keepdim, np_dtype):
    """sum_{i in dims} x_i, in `np_dtype` (accumulated in float32 for 16-bit floats)."""
    return out_as(np.sum(x, axis=dims, keepdims=keepdim, dtype=acc_dtype(np_dtype)), np_dtype)
