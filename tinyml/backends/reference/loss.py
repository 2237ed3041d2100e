"""Reference loss kernels (numpy). Each returns the per-element (or per-row) loss; the op applies the
reduction. float16/bfloat16 inputs compute in float32.

    cross_entropy (rows of logits x, class t, smoothing ls, C classes), with the row statistics
    m_i = max_j x_ij and s_i = log sum_j exp(x_ij - m_i) (kept apart: x - m is exact near the max,
    m + s is not for large logits), so that log_softmax_ij = (x_ij - m_i) - s_i:
        loss_i = (1 - ls)((m_i - x_i,t_i) + s_i) + ls (s_i - mean_j (x_ij - m_i))
                 (0 where t_i == ignore_index)
        dx_ij = dloss_i (exp(log_softmax_ij) - (1 - ls)[j == t_i] - ls / C)
        (dloss_i = 0 for an ignored row: its gradient is 0, or NaN where its log_softmax is, as PyTorch's)
    nll_loss: loss_i = -w[t_i] x_i,t_i, also returns w_t,i = w[t_i] (0 where ignored) for the mean
    l1: |x - y|     smooth_l1: 0.5 d^2 / beta if |d| < beta else |d| - beta / 2
    huber: 0.5 d^2 if |d| < delta else delta (|d| - delta / 2)      (d = x - y; dy = -dx)
    bce_with_logits: (1 - y) x + (1 + (pw - 1) y) softplus(-x)
    binary_cross_entropy: -(y max(log x, -100) + (1 - y) max(log(1 - x), -100))
    kl_div: y (log y - x), or e^y (y - x) with log_target (0 where y == 0)
"""
import numpy as np

from ...dtypes import is_half

__all__ = [
    "bce_with_logits_backward",
    "bce_with_logits_forward",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
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



def _up(a):
    return a.astype(np.float32) if is_half(a.dtype) else a


def _classes(target, ignore_index, n_classes):
    """(valid rows, target with ignored rows set to class 0), after the bounds check."""
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= n_classes))
    if bad.any():
        raise IndexError(f"Target {int(target[bad][0])} is out of bounds (expected class indices in "
                         f"[0, {n_classes - 1}] or ignore_index={ignore_index})")
    return valid, np.where(valid, target, 0)


def cross_entropy_forward(logits, target, ignore_index, label_smoothing):
    """-> (loss per row, row max m, row log-sum s); NaN/inf propagate as in PyTorch's log_softmax."""
    x = _up(logits)
    c = x.shape[1]
    valid, t = _classes(target, ignore_index, c)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = x.max(axis=1, initial=-np.inf)  # NaN if the row holds one; -inf for an all -inf row
        shifted = x - m[:, None]
        log_sum = np.log(np.exp(shifted).sum(axis=1))
        picked = np.take_along_axis(shifted, t[:, None], axis=1)[:, 0] if c else np.zeros(len(t), x.dtype)
        loss = (1 - label_smoothing) * (log_sum - picked)
        if label_smoothing:
            # (the mean as sum / C: NaN, without numpy's warning, for C = 0, where every row is ignored)
            loss = loss + label_smoothing * (log_sum - shifted.sum(axis=1) / c)
    loss = np.where(valid, loss, 0)
    stats = x.dtype  # float32 for float16/bfloat16 logits
    return loss.astype(logits.dtype, copy=False), m.astype(stats), log_sum.astype(stats, copy=False)


def cross_entropy_backward(logits, target, row_max, log_sum, dloss, ignore_index, label_smoothing):
    x = _up(logits)
    n, c = x.shape
    valid, t = _classes(target, ignore_index, c)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.exp((x - row_max[:, None]) - log_sum[:, None]) - (label_smoothing / c if c else 0.0)
        if c:  # (with no classes every row is ignored)
            d[np.arange(n), t] -= np.where(valid, 1 - label_smoothing, 0)
        d *= np.where(valid, _up(dloss), 0)[:, None]
    return d.astype(logits.dtype, copy=False)


def nll_loss_forward(logp, target, weight, ignore_index):
    x = _up(logp)
    valid, t = _classes(target, ignore_index, x.shape[1])
    w_t = (_up(weight)[t] if weight is not None else np.ones(t.shape, x.dtype)) * valid
    loss = -np.take_along_axis(x, t[:, None], axis=1)[:, 0] * w_t
    return loss.astype(logp.dtype, copy=False), w_t.astype(logp.dtype, copy=False)


def nll_loss_backward(logp, target, w_t, dloss, ignore_index):
    n = logp.shape[0]
    valid, t = _classes(target, ignore_index, logp.shape[1])
    d = np.zeros(logp.shape, np.float32 if is_half(logp.dtype) else logp.dtype)
    d[np.arange(n), t] = -_up(w_t) * _up(dloss) * valid
    return d.astype(logp.dtype, copy=False)


def l1_loss_forward(x, y):
    return np.abs(_up(x) - _up(y)).astype(x.dtype, copy=False)


def l1_loss_backward(x, y, dl):
    return (np.sign(_up(x) - _up(y)) * _up(dl)).astype(x.dtype, copy=False)


def smooth_l1_loss_forward(x, y, beta):
    d = _up(x) - _up(y)
    a = np.abs(d)
    if beta == 0:
        return a.astype(x.dtype, copy=False)
    return np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta).astype(x.dtype, copy=False)


def smooth_l1_loss_backward(x, y, dl, beta):
    d = _up(x) - _up(y)
    g = np.sign(d) if beta == 0 else np.where(np.abs(d) < beta, d / (beta or 1), np.sign(d))
    return (g * _up(dl)).astype(x.dtype, copy=False)


def huber_loss_forward(x, y, delta):
    d = _up(x) - _up(y)
    a = np.abs(d)
    return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)).astype(x.dtype, copy=False)


def huber_loss_backward(x, y, dl, delta):
    d = _up(x) - _up(y)
    g = np.where(np.abs(d) < delta, d, delta * np.sign(d))
    return (g * _up(dl)).astype(x.dtype, copy=False)


def _softplus_neg(x):
    """log(1 + e^-x), stable for both signs."""
    return np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def bce_with_logits_forward(x, y, pos_weight):
    xf, yf = _up(x), _up(y)
    sp = _softplus_neg(xf)
    coef = 1 if pos_weight is None else 1 + (_up(pos_weight) - 1) * yf
    return ((1 - yf) * xf + coef * sp).astype(x.dtype, copy=False)


def bce_with_logits_backward(x, y, pos_weight, dl):
    """-> (dx, dy, dpos_weight or None)."""
    xf, yf, g = _up(x), _up(y), _up(dl)
    if pos_weight is None:
        dx = _sigmoid(xf) - yf
        dy = -xf
        dpw = None
    else:
        pw = _up(pos_weight)
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
    xf, yf = _up(x), _up(y)
    _check_probabilities(xf)
    with np.errstate(divide="ignore"):
        log_x, log_1mx = np.maximum(np.log(xf), -100), np.maximum(np.log1p(-xf), -100)
    return (-(yf * log_x + (1 - yf) * log_1mx)).astype(x.dtype, copy=False)


def binary_cross_entropy_backward(x, y, dl):
    """-> (dx, dy); dx = (x - y) / max(x (1 - x), 1e-12) as in PyTorch."""
    xf, yf, g = _up(x), _up(y), _up(dl)
    dx = g * (xf - yf) / np.maximum(xf * (1 - xf), 1e-12)
    with np.errstate(divide="ignore"):
        dy = g * (np.maximum(np.log1p(-xf), -100) - np.maximum(np.log(xf), -100))
    return dx.astype(x.dtype, copy=False), dy.astype(y.dtype, copy=False)


def kl_div_forward(x, t, log_target):
    xf, tf = _up(x), _up(t)
    if log_target:
        out = np.exp(tf) * (tf - xf)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(tf > 0, tf * (np.log(np.where(tf > 0, tf, 1)) - xf), np.where(tf == 0, 0, np.nan))
    return out.astype(x.dtype, copy=False)


def kl_div_backward(x, t, dl, log_target):
    """-> (dx, dt)."""
    xf, tf, g = _up(x), _up(t), _up(dl)
    if log_target:
        e = np.exp(tf)
        dx, dt = -e, e * (tf - xf + 1)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            dx = -tf
            dt = np.where(tf > 0, np.log(np.where(tf > 0, tf, 1)) + 1 - xf, 0)
    return (g * dx).astype(x.dtype, copy=False), (g * dt).astype(t.dtype, copy=False)
