"""Detection losses, composed from tinyml ops (autograd gives their gradients). Logits x, targets y in [0, 1],
p = sigmoid(x), BCE = binary_cross_entropy_with_logits(x, y) elementwise.

    sigmoid_focal_loss     torchvision.ops.sigmoid_focal_loss (Lin et al. 2017):
                           p_t = p y + (1 - p)(1 - y), a_t = alpha y + (1 - alpha)(1 - y) (alpha < 0: none),
                           loss = a_t BCE (1 - p_t)^gamma
    adaptive_threshold_focal_loss   EFLNet's ATFL (Yang et al. 2024, "EFLNet: Enhancing Feature Learning
                           Networks for Infrared Small Target Detection"): BCE times a modulating factor
                           with two branches split at p_t = 0.5,
                               easy, p_t > 0.5:   (1 + eps - p_t)^gamma_ada,  gamma_ada = -ln(mean(p_t))
                               hard, p_t <= 0.5:  (lambda - p_t)^(-ln p_t),   lambda = 1.5
                           gamma_ada comes from the batch's mean p_t (the paper's running estimate
                           p_hat = 0.05 p_old + 0.95 mean(p_t) reduces to the batch mean in its released
                           code, whose list of past means holds one value): a well-classified batch
                           (mean p_t -> 1) gives gamma_ada -> 0, plain BCE on easy samples; a hard one a
                           large gamma_ada that damps them. The hard branch's base lambda - p_t >= 1
                           amplifies hard samples instead of damping them. Gradients flow through both
                           exponents, as in the released code.
    varifocal_loss         VarifocalNet (Zhang et al. 2021) as ultralytics' VarifocalLoss:
                           w = alpha p^gamma (1 - label) + q label, loss = BCE(x, q) w
    quality_focal_loss     Generalized Focal Loss (Li et al. 2020): loss = BCE(x, q) |q - p|^beta
    distribution_focal_loss   GFL's DFL as ultralytics' DFLoss (reg_max bins):
                           t clamped to [0, reg_max - 1 - 0.01], l = floor(t), r = l + 1,
                           loss = -(r - t) log softmax(d)_l - (t - l) log softmax(d)_r, mean over the 4 sides
    iou_loss               1 - IoU-family (iou, giou, diou, ciou: ops/boxes.py bbox_iou) or 1 - NWD
"""
from __future__ import annotations

from ..tensor import Tensor
from .boxes import bbox_iou, bbox_nwd
from .loss import binary_cross_entropy_with_logits
from .pointwise import where
from .softmax import log_softmax

__all__ = ["adaptive_threshold_focal_loss", "distribution_focal_loss", "iou_loss", "quality_focal_loss",
           "sigmoid_focal_loss", "varifocal_loss"]


def _reduce(loss: Tensor, reduction: str, fn: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{fn}: invalid reduction {reduction!r}; expected 'none', 'mean' or 'sum'")


def _same_shape(fn: str, inputs: Tensor, targets: Tensor) -> None:
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
        raise TypeError(f"{fn}: expected Tensors, got {type(inputs).__name__} and {type(targets).__name__}")
    if tuple(inputs.shape) != tuple(targets.shape):
        raise ValueError(f"{fn}: inputs have shape {tuple(inputs.shape)} but targets have shape "
                         f"{tuple(targets.shape)}")


def _bce(x: Tensor, y: Tensor) -> Tensor:
    return binary_cross_entropy_with_logits(x, y, reduction="none")


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none") -> Tensor:
    """torchvision.ops.sigmoid_focal_loss: a_t BCE (1 - p_t)^gamma."""
    _same_shape("sigmoid_focal_loss", inputs, targets)
    p = inputs.sigmoid()
    ce = _bce(inputs, targets)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction, "sigmoid_focal_loss")


def adaptive_threshold_focal_loss(inputs: Tensor, targets: Tensor, lam: float = 1.5, eps: float = 1e-6,
                                  reduction: str = "none") -> Tensor:
    """EFLNet's adaptive threshold focal loss (module docstring): BCE x {(1 + eps - p_t)^(-ln mean p_t) if
    p_t > 0.5, (lam - p_t)^(-ln p_t) otherwise}; p_t and its batch mean are clamped below at 1e-7."""
    _same_shape("adaptive_threshold_focal_loss", inputs, targets)
    p = inputs.sigmoid()
    p_t = p * targets + (1 - p) * (1 - targets)
    gamma_ada = -(p_t.mean().clamp(min=1e-7, max=1.0).log())
    easy = (1 + eps - p_t) ** gamma_ada
    hard = (lam - p_t) ** (-(p_t.clamp(min=1e-7).log()))
    loss = _bce(inputs, targets) * where(p_t > 0.5, easy, hard)
    return _reduce(loss, reduction, "adaptive_threshold_focal_loss")


def varifocal_loss(pred_score: Tensor, gt_score: Tensor, label: Tensor, alpha: float = 0.75,
                   gamma: float = 2.0, reduction: str = "none") -> Tensor:
    """VarifocalNet's loss as ultralytics' VarifocalLoss computes it, before its .mean(1).sum():
    BCE(x, q) (alpha p^gamma (1 - label) + q label)."""
    _same_shape("varifocal_loss", pred_score, gt_score)
    _same_shape("varifocal_loss", pred_score, label)
    weight = alpha * pred_score.sigmoid() ** gamma * (1 - label) + gt_score * label
    return _reduce(_bce(pred_score, gt_score) * weight, reduction, "varifocal_loss")


def quality_focal_loss(inputs: Tensor, targets: Tensor, beta: float = 2.0, reduction: str = "none") -> Tensor:
    """Generalized Focal Loss's QFL: BCE(x, q) |sigmoid(x) - q|^beta, q the IoU-quality target."""
    _same_shape("quality_focal_loss", inputs, targets)
    scale = (inputs.sigmoid() - targets).abs() ** beta
    return _reduce(_bce(inputs, targets) * scale, reduction, "quality_focal_loss")


def distribution_focal_loss(pred_dist: Tensor, target: Tensor, reg_max: int = 16) -> Tensor:
    """ultralytics' DFLoss: pred_dist (n * k, reg_max) logits over the bins, target (n, k) distances in bins.
    Returns (n, 1): the mean over the k sides of -(r - t) log softmax_l - (t - l) log softmax_r."""
    if not isinstance(pred_dist, Tensor) or not isinstance(target, Tensor):
        raise TypeError("distribution_focal_loss: expected Tensors")
    if pred_dist.ndim != 2 or pred_dist.shape[1] != reg_max or pred_dist.shape[0] != target.numel():
        raise ValueError(f"distribution_focal_loss: expected pred_dist of shape ({target.numel()}, "
                         f"{reg_max}) for target {tuple(target.shape)} and reg_max {reg_max}, got "
                         f"{tuple(pred_dist.shape)}")
    t = target.clamp(min=0, max=reg_max - 1 - 0.01)
    left = t.long()
    w_left = (left + 1).to(dtype=t.dtype) - t
    logp = log_softmax(pred_dist, dim=1)
    lp_left = logp.gather(1, left.reshape(-1, 1)).reshape(tuple(left.shape))
    lp_right = logp.gather(1, (left + 1).reshape(-1, 1)).reshape(tuple(left.shape))
    return -(lp_left * w_left + lp_right * (1 - w_left)).mean(-1, keepdim=True)


def iou_loss(pred: Tensor, target: Tensor, kind: str = "ciou", xywh: bool = False, constant: float = 12.8,
             eps: float = 1e-7, reduction: str = "none") -> Tensor:
    """1 - IoU / GIoU / DIoU / CIoU (ultralytics' bbox_iou) or 1 - NWD ('nwd', constant C), elementwise over
    broadcast boxes (..., 4)."""
    kinds = {"iou": {}, "giou": {"GIoU": True}, "diou": {"DIoU": True}, "ciou": {"CIoU": True}}
    if kind == "nwd":
        sim = bbox_nwd(pred, target, xywh=xywh, constant=constant, eps=eps)
    elif kind in kinds:
        sim = bbox_iou(pred, target, xywh=xywh, eps=eps, **kinds[kind])
    else:
        raise ValueError(f"iou_loss: unknown kind {kind!r}; expected one of iou, giou, diou, ciou, nwd")
    return _reduce(1 - sim, reduction, "iou_loss")
