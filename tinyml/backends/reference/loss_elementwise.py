"""Reference kernels of the losses computed per element (or per row from one picked class), numpy.
Each returns the per-element (per-row for nll) loss; the op applies the reduction. float16/bfloat16
inputs compute in float32. cross_entropy, the fused row-wise loss, is in loss.py.

    nll_loss: loss_i = -w[t_i] x_i,t_i, also returns w_t,i = w[t_i] (0 where ignored) for the mean
    l1: |x - y|     smooth_l1: 0.5 d^2 / beta if |d| < beta else |d| - beta / 2
    huber: 0.5 d^2 if |d| < delta else delta (|d| - delta / 2)      (d = x - y; dy = -dx)
    bce_with_logits: (1 - y) x + (1 + (pw - 1) y) softplus(-x)
    binary_cross_entropy: -(y max(log x, -100) + (1 - y) max(log(1 - x), -100))
    kl_div: y (log y - x), or e^y (y - x) with log_target (0 where y == 0)
"""
import numpy as np

from ...dtypes import is_half
from .loss import classes, up

__all__ = [
    "bce_with_logits_backward",
    "bce_with_logits_forward",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_forward",
    "huber_loss_backward",
    "huber_loss_forward",
    "kl_div_backward",
    "kl_div_forward",
    "l1_loss_backward",
    "l1_loss_forward",
    "nll_loss_backward",
    "nll_loss_forward",
    "smooth_l1_loss_backward",
    "smooth_l1_loss_forward",
]


def nll_loss_forward(logp, target, weight, ignore_index):
    x = up(logp)
    valid, t = classes(target, ignore_index, x.shape[1])
    w_t = (up(weight)[t] if weight is not None else np.ones(t.shape, x.dtype)) * valid
    loss = -np.take_along_axis(x, t[:, None], axis=1)[:, 0] * w_t
    return loss.astype(logp.dtype, copy=False), w_t.astype(logp.dtype, copy=False)


def nll_loss_backward(logp, target, w_t, dloss, ignore_index):
    n = logp.shape[0]
    valid, t = classes(target, ignore_index, logp.shape[1])
    d = np.zeros(logp.shape, np.float32 if is_half(logp.dtype) else logp.dtype)
    d[np.arange(n), t] = -up(w_t) * up(dloss) * valid
    return d.astype(logp.dtype, copy=False)


def l1_loss_forward(x, y):
    return np.abs(up(x) - up(y)).astype(x.dtype, copy=False)


def l1_loss_backward(x, y, dl):
    return (np.sign(up(x) - up(y)) * up(dl)).astype(x.dtype, copy=False)


def smooth_l1_loss_forward(x, y, beta):
    d = up(x) - up(y)
    a = np.abs(d)
    if beta == 0:
        return a.astype(x.dtype, copy=False)
    return np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta).astype(x.dtype, copy=False)


def smooth_l1_loss_backward(x, y, dl, beta):
    d = up(x) - up(y)
    g = np.sign(d) if beta == 0 else np.where(np.abs(d) < beta, d / (beta or 1), np.sign(d))
    return (g * up(dl)).astype(x.dtype, copy=False)


def huber_loss_forward(x, y, delta):
    d = up(x) - up(y)
    a = np.abs(d)
    return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)).astype(x.dtype, copy=False)


def huber_loss_backward(x, y, dl, delta):
    d = up(x) - up(y)
    g = np.where(np.abs(d) < delta, d, delta * np.sign(d))
    return (g * up(dl)).astype(x.dtype, copy=False)


def _softplus_neg(x):
    """log(1 + e^-x), stable for both signs."""
    return np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def bce_with_logits_forward(x, y, pos_weight):
    xf, yf = up(x), up(y)
    sp = _softplus_neg(xf)
    coef = 1 if pos_weight is None else 1 + (up(pos_weight) - 1) * yf
    return ((1 - yf) * xf + coef * sp).astype(x.dtype, copy=False)


def bce_with_logits_backward(x, y, pos_weight, dl):
    """-> (dx, dy, dpos_weight or None)."""
    xf, yf, g = up(x), up(y), up(dl)
    if pos_weight is None:
        dx = _sigmoid(xf) - yf
        dy = -xf
        dpw = None
    else:
        pw = up(pos_weight)
        sp = _softplus_neg(xf)
        dx = (1 - yf) - (1 + (pw - 1) * yf) * _sigmoid(-xf)
        dy = -xf + (pw - 1) * sp
        dpw = (g * yf * sp).astype(pos_weight.dtype, copy=False)
    return (g * dx).astype(x.dtype, copy=False), (g * dy).astype(y.dtype, copy=False), dpw


def _check_probabilities(x):
    if np.any((x < 0) | (x > 1)) or np.any(np.isnan(x)):
        bad = x[(x < 0) | (x > 1) | np.isnan(x)][0]
        raise RuntimeError(f"all elements of input should be between 0 and 1 (found {float(bad)!r})")


def binary_cross_entropy_forward(x, y):
    xf, yf = up(x), up(y)
    _check_probabilities(xf)
    with np.errstate(divide="ignore"):
        log_x, log_1mx = np.maximum(np.log(xf), -100), np.maximum(np.log1p(-xf), -100)
    return (-(yf * log_x + (1 - yf) * log_1mx)).astype(x.dtype, copy=False)


def binary_cross_entropy_backward(x, y, dl):
    """-> (dx, dy); dx = (x - y) / max(x (1 - x), 1e-12) as in PyTorch."""
    xf, yf, g = up(x), up(y), up(dl)
    dx = g * (xf - yf) / np.maximum(xf * (1 - xf), 1e-12)
    with np.errstate(divide="ignore"):
        dy = g * (np.maximum(np.log1p(-xf), -100) - np.maximum(np.log(xf), -100))
    return dx.astype(x.dtype, copy=False), dy.astype(y.dtype, copy=False)


def kl_div_forward(x, t, log_target):
    xf, tf = up(x), up(t)
    if log_target:
        out = np.exp(tf) * (tf - xf)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(tf > 0, tf * (np.log(np.where(tf > 0, tf, 1)) - xf), np.where(tf == 0, 0, np.nan))
    return out.astype(x.dtype, copy=False)


def kl_div_backward(x, t, dl, log_target):
    """-> (dx, dt)."""
    xf, tf, g = up(x), up(t), up(dl)
    if log_target:
        e = np.exp(tf)
        dx, dt = -e, e * (tf - xf + 1)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            dx = -tf
            dt = np.where(tf > 0, np.log(np.where(tf > 0, tf, 1)) + 1 - xf, 0)
    return (g * dx).astype(x.dtype, copy=False), (g * dt).astype(t.dtype, copy=False)
