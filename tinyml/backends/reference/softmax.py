"""Reference kernels for the softmax family (numpy): softmax and log_softmax.

    softmax:      y = exp(x - max) / sum exp(x - max)      dx = y (dy - sum(dy y))
    log_softmax:  y = (x - max) - log sum exp(x - max)     dx = dy - exp(y) sum(dy)

float16/bfloat16 compute in float32 (the sums included), then round. Non-finite values as in
PyTorch: a NaN or +inf in a row makes the row NaN (numpy's max propagates NaN; exp(inf - inf) is
NaN), a row of all -inf is NaN (exp(-inf - -inf)), and a -inf among finite values has probability
0. A dim of size 0 gives an empty result.
"""
import numpy as np

from ...dtypes import is_half

__all__ = ["softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward"]


def _up(a):
    return a.astype(np.float32) if is_half(a.dtype) else a


def _shifted(x, dim):
    """x - max(x) along dim (max = -inf for an empty dim, which leaves nothing to shift)."""
    return x - np.max(x, axis=dim, keepdims=True, initial=-np.inf)


def softmax_forward(x, dim):
    with np.errstate(invalid="ignore"):
        e = np.exp(_shifted(_up(x), dim))
        return (e / np.sum(e, axis=dim, keepdims=True)).astype(x.dtype, copy=False)


def softmax_backward(y, dy, dim):
    yf, g = _up(y), _up(dy)
    return (yf * (g - np.sum(g * yf, axis=dim, keepdims=True))).astype(y.dtype, copy=False)


def log_softmax_forward(x, dim):
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = _shifted(_up(x), dim)
        log_sum = np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))
        return (shifted - log_sum).astype(x.dtype, copy=False)


def log_softmax_backward(y, dy, dim):
    g = _up(dy)
    with np.errstate(invalid="ignore", over="ignore"):
        return (g - np.exp(_up(y)) * np.sum(g, axis=dim, keepdims=True)).astype(y.dtype, copy=False)
