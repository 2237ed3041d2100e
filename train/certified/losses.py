"""The losses of certified training, on interval bounds (tinyml.nn.interval).

For a classifier with logits z and label y, the margins m_j = z_y - z_j (j != y) have IBP lower bounds
m_j^lo over the input box (the last Linear folded with the specification C = e_y - e_j). The worst-case
logits z^ put 0 at y and -m_j^lo at j, and the robust loss is their cross-entropy (Gowal et al. 2018):

    robust_CE = CE(z^, y) = log(1 + sum_{j != y} exp(-m_j^lo))

A sample is certified when every m_j^lo > 0: no input in the box changes the prediction.

SABR (Mueller et al. 2023) bounds a small box instead of the whole epsilon box: PGD finds x' in the
epsilon box, shrunk so that the small box fits, and IBP bounds [x' - lambda eps, x' + lambda eps]:

    centre range = [max(x - eps + lambda eps, 0 + lambda eps), min(x + eps - lambda eps, 1 - lambda eps)]
"""
from __future__ import annotations

import tinyml
import tinyml.nn.functional as F
from tinyml.nn import Module
from tinyml.nn.interval import interval_bounds, margin_specification


def margin_lower_bounds(model: Module, lower: tinyml.Tensor, upper: tinyml.Tensor, labels: tinyml.Tensor,
                        num_classes: int) -> tinyml.Tensor:
    """(B, num_classes - 1): IBP lower bounds of z_y - z_j over the box, for every j != y."""
    C = margin_specification(labels, num_classes, dtype=lower.dtype)
    return interval_bounds(model, lower, upper, C=C)[0]


def robust_cross_entropy(margins_lower: tinyml.Tensor) -> tinyml.Tensor:
    """Mean over the batch of log(1 + sum_j exp(-m_j^lo)): the cross-entropy of the worst-case logits."""
    zero = tinyml.zeros(margins_lower.shape[0], 1, dtype=margins_lower.dtype)
    worst = tinyml.cat([zero, -margins_lower], dim=1)  # (B, K): the worst-case logits, shifted by z_y
    target = tinyml.zeros(margins_lower.shape[0], dtype=tinyml.int64)  # the true class sits in column 0
    return F.cross_entropy(worst, target)


def epsilon_box(x: tinyml.Tensor, epsilon: float, x_min: float = 0.0,
                x_max: float = 1.0) -> tuple[tinyml.Tensor, tinyml.Tensor]:
    """[x - eps, x + eps] clipped to the data range."""
    return (x - epsilon).clamp(min=x_min), (x + epsilon).clamp(max=x_max)


def sabr_centre_range(x: tinyml.Tensor, epsilon: float, small_radius: float, x_min: float = 0.0,
                      x_max: float = 1.0) -> tuple[tinyml.Tensor, tinyml.Tensor]:
    """Where a small box of half-width small_radius may be centred so that it stays in the clipped eps box.

    Where the data range is narrower than the small box (small_radius > (x_max - x_min) / 2) the range
    collapses to its upper end; the caller clips the small box to the eps box either way.
    """
    lo = (x - (epsilon - small_radius)).clamp(min=x_min + small_radius)
    hi = (x + (epsilon - small_radius)).clamp(max=x_max - small_radius)
    return tinyml.minimum(lo, hi), hi


def certified_mask(model: Module, x: tinyml.Tensor, y: tinyml.Tensor, epsilon: float,
                   num_classes: int) -> tinyml.Tensor:
    """(B,) bool: IBP proves that every input within eps (clipped to [0, 1]) is classified as y."""
    with tinyml.no_grad():
        lower, upper = epsilon_box(x, epsilon)
        return (margin_lower_bounds(model, lower, upper, y, num_classes) > 0).all(dim=1)
