"""Detection losses (tinyml/ops/detection_loss.py): forward and backward against the formulas written in
torch here (torchvision.ops.sigmoid_focal_loss, ultralytics' VarifocalLoss / DFLoss / QFL, EFLNet's
released ATFL), plus gradcheck in float64 and hand-computed values for the branches of ATFL."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from helpers import check_op

import tinyml
import tinyml.ops as O
from tinyml.testing import assert_close, gradcheck


def logits_and_targets(shape=(4, 6), seed=0, soft=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2, shape)
    y = rng.uniform(0, 1, shape) if soft else (rng.uniform(0, 1, shape) < 0.3).astype(np.float64)
    return [x, y]


def torch_focal(x, y, alpha=0.25, gamma=2, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss."""
    p = torch.sigmoid(x)
    ce = TF.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def torch_atfl(x, y, lam=1.5, eps=1e-6):
    """EFLNet's released AdaptiveThresholdFocalLoss (the eps-clamped form)."""
    loss = TF.binary_cross_entropy_with_logits(x, y, reduction="none")
    p = x.sigmoid()
    p_t = y * p + (1 - y) * (1 - p)
    gamma_high = -p_t.mean().clamp(1e-7, 1.0).log()
    gamma_low = -p_t.clamp_min(1e-7).log()
    factor = torch.where(p_t > 0.5, (1 + eps - p_t).pow(gamma_high), (lam - p_t).pow(gamma_low))
    return loss * factor


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2), (-1, 2), (0.5, 0), (0.25, 1.5)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sigmoid_focal_loss_matches_torchvision(alpha, gamma, reduction):
    check_op(None, lambda x, y: O.sigmoid_focal_loss(x, y, alpha, gamma, reduction),
             lambda x, y: torch_focal(x, y, alpha, gamma, reduction), inputs=logits_and_targets(),
             dtype="float64")


@pytest.mark.parametrize("soft", [False, True])
def test_adaptive_threshold_focal_loss_matches_eflnet(soft):
    check_op(None, O.adaptive_threshold_focal_loss, torch_atfl, inputs=logits_and_targets((5, 7), 1, soft),
             dtype="float64")
    check_op(None, lambda x, y: O.adaptive_threshold_focal_loss(x, y, reduction="mean"),
             lambda x, y: torch_atfl(x, y).mean(), inputs=logits_and_targets((5, 7), 2, soft),
             dtype="float64")


def test_adaptive_threshold_focal_loss_branches_by_hand():
    # targets 1: p_t = sigmoid(x); x = 2 is easy (p_t 0.88), x = -1 hard (p_t 0.27)
    x, y = np.array([2.0, -1.0]), np.array([1.0, 1.0])
    p = 1 / (1 + np.exp(-x))
    gamma = -math.log(p.mean())
    bce = -np.log(p)
    want = [bce[0] * (1 + 1e-6 - p[0]) ** gamma, bce[1] * (1.5 - p[1]) ** (-math.log(p[1]))]
    assert_close(O.adaptive_threshold_focal_loss(tinyml.tensor(x), tinyml.tensor(y)), np.array(want))
    assert want[1] > bce[1] and want[0] < bce[0]  # hard samples amplified, easy ones damped


def test_varifocal_and_quality_focal_match_ultralytics():
    x, q = logits_and_targets((4, 5), 3, soft=True)
    label = (q > 0.6).astype(np.float64)

    def vfl_torch(x, q, label, alpha=0.75, gamma=2.0):
        weight = alpha * x.sigmoid().pow(gamma) * (1 - label) + q * label
        return TF.binary_cross_entropy_with_logits(x, q, reduction="none") * weight

    check_op(None, lambda a, b, c: O.varifocal_loss(a, b, c), vfl_torch, inputs=[x, q, label],
             dtype="float64")
    # ultralytics reduces with .mean(1).sum()
    got = O.varifocal_loss(tinyml.tensor(x), tinyml.tensor(q), tinyml.tensor(label)).mean(1).sum()
    assert_close(got, vfl_torch(torch.tensor(x), torch.tensor(q), torch.tensor(label)).mean(1).sum())

    def qfl_torch(x, q, beta=2.0):
        return TF.binary_cross_entropy_with_logits(x, q, reduction="none") * (x.sigmoid() - q).abs().pow(beta)

    check_op(None, O.quality_focal_loss, qfl_torch, inputs=[x, q], dtype="float64")


def test_distribution_focal_loss_matches_ultralytics():
    rng = np.random.default_rng(4)
    pred = rng.normal(0, 1, (6 * 4, 16))
    target = rng.uniform(-1, 16.5, (6, 4))  # out of range values get clamped to [0, 14.99]

    def dfl_torch(pred_dist, target, reg_max=16):
        target = target.clamp(0, reg_max - 1 - 0.01)
        tl = target.long()
        tr = tl + 1
        wl = tr - target
        wr = 1 - wl
        logp = TF.log_softmax(pred_dist, dim=1)
        return -(logp.gather(1, tl.view(-1, 1)).view(tl.shape) * wl
                 + logp.gather(1, tr.view(-1, 1)).view(tl.shape) * wr).mean(-1, keepdim=True)

    out = check_op(None, lambda p, t: O.distribution_focal_loss(p, t), dfl_torch, inputs=[pred, target],
                   dtype="float64")
    assert tuple(out.shape) == (6, 1)
    with pytest.raises(ValueError, match=r"expected pred_dist of shape \(24, 16\) .* got \(24, 8\)"):
        O.distribution_focal_loss(tinyml.zeros(24, 8), tinyml.zeros(6, 4))


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou", "nwd"])
def test_iou_losses(kind):
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 20, (8, 2))
    pred = np.concatenate([xy, xy + rng.uniform(1, 9, (8, 2))], 1)
    target = pred + rng.normal(0, 1.5, (8, 4))
    target[:, 2:] = np.maximum(target[:, 2:], target[:, :2] + 0.5)
    got = O.iou_loss(tinyml.tensor(pred), tinyml.tensor(target), kind=kind)
    flags = {"iou": {}, "giou": {"GIoU": True}, "diou": {"DIoU": True}, "ciou": {"CIoU": True}}
    if kind == "nwd":
        want = 1 - O.bbox_nwd(tinyml.tensor(pred), tinyml.tensor(target), xywh=False)
    else:
        want = 1 - O.bbox_iou(tinyml.tensor(pred), tinyml.tensor(target), xywh=False, **flags[kind])
    assert_close(got, want)
    assert np.all(got.numpy() >= 0) and np.all(got.numpy() <= 2)
    same = O.iou_loss(tinyml.tensor(pred), tinyml.tensor(pred), kind=kind, reduction="sum")
    assert float(same.item()) < 1e-2  # identical boxes: no loss (up to eps)


def test_gradcheck_losses():
    x = tinyml.tensor(np.random.default_rng(6).normal(0, 1.5, (3, 4)), requires_grad=True)
    y = tinyml.tensor(np.random.default_rng(7).uniform(0, 1, (3, 4)))
    assert gradcheck(lambda a: O.sigmoid_focal_loss(a, y), [x])
    assert gradcheck(lambda a: O.adaptive_threshold_focal_loss(a, y), [x])
    assert gradcheck(lambda a: O.quality_focal_loss(a, y), [x])
    assert gradcheck(lambda a: O.varifocal_loss(a, y, (y > 0.5).double()), [x])
    d = tinyml.tensor(np.random.default_rng(8).normal(0, 1, (8, 16)), requires_grad=True)
    t = tinyml.tensor(np.random.default_rng(9).uniform(0, 14, (2, 4)))
    assert gradcheck(lambda a: O.distribution_focal_loss(a, t), [d])


def test_bad_input():
    with pytest.raises(ValueError, match=r"inputs have shape \(2, 3\) but targets have shape \(3, 2\)"):
        O.sigmoid_focal_loss(tinyml.zeros(2, 3), tinyml.zeros(3, 2))
    with pytest.raises(ValueError, match="invalid reduction 'avg'"):
        O.sigmoid_focal_loss(tinyml.zeros(2), tinyml.zeros(2), reduction="avg")
    with pytest.raises(ValueError, match="unknown kind 'eiou'"):
        O.iou_loss(tinyml.zeros(1, 4), tinyml.zeros(1, 4), kind="eiou")
