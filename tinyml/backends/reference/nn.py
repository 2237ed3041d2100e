"""Reference kernels for the nn family (numpy): softmax and log_softmax.

    softmax:      y = exp(x - max) / sum exp(x - max)      dx = y (dy - sum(dy y))
    log_softmax:  y = x - max - log sum exp(x - max)       dx = dy - exp(y) sum(dy)
"""
import numpy as np

__all__ = ["softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward"]


def softmax_forward(x, dim):
    m = np.max(x, axis=dim, keepdims=True)
    m = np.where(np.isneginf(m), 0, m)
    e = np.exp(x - m)
    return (e / np.sum(e, axis=dim, keepdims=True)).astype(x.dtype, copy=False)


def softmax_backward(y, dy, dim):
    return (y * (dy - np.sum(dy * y, axis=dim, keepdims=True))).astype(y.dtype, copy=False)


def log_softmax_forward(x, dim):
    m = np.max(x, axis=dim, keepdims=True)
    m = np.where(np.isneginf(m), 0, m)
    shifted = x - m
    with np.errstate(divide="ignore"):
        return (shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))).astype(x.dtype, copy=False)


def log_softmax_backward(y, dy, dim):
    return (dy - np.exp(y) * np.sum(dy, axis=dim, keepdims=True)).astype(y.dtype, copy=False)
