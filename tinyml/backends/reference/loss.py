"""Reference cross-entropy kernels (numpy): the fused row-wise loss over logits (the other losses,
one element or one picked class per position, are in loss_elementwise.py). Each returns the per-row
loss; the op applies the reduction. float16/bfloat16 inputs compute in float32.

    cross_entropy (rows of logits x, class t, smoothing ls, C classes), with the row statistics
    m_i = max_j x_ij and s_i = log sum_j exp(x_ij - m_i) (kept apart: x - m is exact near the max,
    m + s is not for large logits), so that log_softmax_ij = (x_ij - m_i) - s_i:
        loss_i = (1 - ls)((m_i - x_i,t_i) + s_i) + ls (s_i - mean_j (x_ij - m_i))
                 (0 where t_i == ignore_index)
        dx_ij = dloss_i (exp(log_softmax_ij) - (1 - ls)[j == t_i] - ls / C)
        (dloss_i = 0 for an ignored row: its gradient is 0, or NaN where its log_softmax is, as PyTorch's)
"""
import numpy as np

from ...dtypes import is_half

__all__ = ["cross_entropy_backward", "cross_entropy_forward"]



def up(a):
    return a.astype(np.float32) if is_half(a.dtype) else a


def classes(target, ignore_index, n_classes):
    """(valid rows, target with ignored rows set to class 0), after the bounds check."""
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= n_classes))
    if bad.any():
        raise IndexError(f"Target {int(target[bad][0])} is out of bounds (expected class indices in "
                         f"[0, {n_classes - 1}] or ignore_index={ignore_index})")
    return valid, np.where(valid, target, 0)


def cross_entropy_forward(logits, target, ignore_index, label_smoothing):
    """-> (loss per row, row max m, row log-sum s); NaN/inf propagate as in PyTorch's log_softmax."""
    x = up(logits)
    c = x.shape[1]
    valid, t = classes(target, ignore_index, c)
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
    x = up(logits)
    n, c = x.shape
    valid, t = classes(target, ignore_index, c)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.exp((x - row_max[:, None]) - log_sum[:, None]) - (label_smoothing / c if c else 0.0)
        if c:  # (with no classes every row is ignored)
            d[np.arange(n), t] -= np.where(valid, 1 - label_smoothing, 0)
        d *= np.where(valid, up(dloss), 0)[:, None]
    return d.astype(logits.dtype, copy=False)
