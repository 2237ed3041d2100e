"""Box ops (torchvision.ops / ultralytics / sahi semantics) and non-maximum suppression and merging.

Boxes are (..., 4) tensors; xyxy = (x1, y1, x2, y2) unless a function says otherwise. Pairwise
functions take (N, 4) and (M, 4) and return (N, M); the bbox_* functions broadcast two box
tensors elementwise (pass (N, 1, 4) and (1, M, 4) for a pairwise matrix), as ultralytics' bbox_iou.

    area        A = (x2 - x1)(y2 - y1)
    IoU         I / U, I = max(0, min(x2) - max(x1)) max(0, min(y2) - max(y1)), U = A1 + A2 - I
    IoS         I / min(A1, A2) (0 where min(A1, A2) <= 0, as sahi)
    GIoU        IoU - (C - U) / C, C the area of the smallest enclosing box
    DIoU        IoU - rho^2 / (c^2 + eps), rho the distance of the centres, c the enclosing diagonal
    CIoU        DIoU - alpha v, v = 4 / pi^2 (atan(w2 / h2) - atan(w1 / h1))^2,
                alpha = v / (1 - IoU + v + eps) taken as a constant (no gradient), as torchvision/ultralytics
    NWD         exp(-sqrt(W2^2 + eps) / C), W2^2 = |(cx, cy, w/2, h/2)_1 - (cx, cy, w/2, h/2)_2|^2, the
                2-Wasserstein distance of the boxes as Gaussians N((cx, cy), diag(w^2/4, h^2/4))
                (Wang et al. 2021, "A Normalized Gaussian Wasserstein Distance for Tiny Object Detection");
                C = 12.8 by default (the paper's AI-TOD average object size); eps keeps the gradient
                finite at identical boxes.

The box measures are composed from tinyml ops (their gradients come from autograd; they are not the
hot part of a detector) plus one kernel, box_aspect_atan (CIoU's atan, with dx/dw = h / (w^2 + h^2)).
NMS and merging are kernels (nms_forward, nmm_forward: numpy reference, C++ and Triton); they are not
differentiable and return indices.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..backends import run
from ..tensor import Tensor
from ._broadcast import broadcast_shapes
from .creation import tensor as _tensor
from .movement_copy import stack
from .pointwise import where

__all__ = ["batched_nms", "bbox_iou", "bbox_nwd", "box_area", "box_convert", "box_ios", "box_iou",
           "complete_box_iou", "distance_box_iou", "generalized_box_iou", "greedy_nmm", "nmm", "nms",
           "nms_match", "nwd"]


def _boxes(fn: str, b, name: str = "boxes") -> Tensor:
    if not isinstance(b, Tensor):
        raise TypeError(f"{fn}: expected {name} to be a Tensor, got {type(b).__name__}")
    if b.ndim < 1 or b.shape[-1] != 4:
        raise ValueError(f"{fn}: expected {name} of shape (..., 4), got {tuple(b.shape)}")
    return b if b.dtype.is_floating_point else b.float()


def _pair(fn: str, b1, b2) -> tuple[Tensor, Tensor]:
    b1, b2 = _boxes(fn, b1, "boxes1"), _boxes(fn, b2, "boxes2")
    if b1.ndim != 2 or b2.ndim != 2:
        raise ValueError(f"{fn}: expected boxes1 (N, 4) and boxes2 (M, 4), got {tuple(b1.shape)} and "
                         f"{tuple(b2.shape)}")
    return b1.unsqueeze(1), b2.unsqueeze(0)  # (N, 1, 4), (1, M, 4): the elementwise forms broadcast


def box_area(boxes: Tensor) -> Tensor:
    x1, y1, x2, y2 = _boxes("box_area", boxes).unbind(-1)
    return (x2 - x1) * (y2 - y1)


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert between 'xyxy', 'xywh' (x1, y1, w, h) and 'cxcywh' (centre, size)."""
    fmts = ("xyxy", "xywh", "cxcywh")
    if in_fmt not in fmts or out_fmt not in fmts:
        raise ValueError(f"box_convert: unsupported format in_fmt={in_fmt!r}, out_fmt={out_fmt!r}; "
                         f"expected one of {fmts}")
    boxes = _boxes("box_convert", boxes)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return stack([a, b, c, d], dim=-1)


class _AspectAtan(Function):
    """atan(w / h); d/dw = h / (w^2 + h^2), d/dh = -w / (w^2 + h^2)."""

    @staticmethod
    def forward(ctx, w, h):
        ctx.save_for_backward(w, h)
        return run("box_aspect_atan", w, h)

    @staticmethod
    def backward(ctx, g):
        w, h = ctx.saved_tensors
        r = g / (w * w + h * h)
        return r * h, -(r * w)


def _aspect_atan(w: Tensor, h: Tensor) -> Tensor:
    shape = broadcast_shapes(w.shape, h.shape)
    w = w if w.shape == shape else w.expand(shape)
    h = h if h.shape == shape else h.expand(shape)
    return _AspectAtan.apply(w.contiguous(), h.contiguous())


def _xyxy(box: Tensor, xywh: bool):
    if not xywh:
        return box.unbind(-1)
    x, y, w, h = box.unbind(-1)
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def _inter(a, b):
    w = (a[2].minimum(b[2]) - a[0].maximum(b[0])).clamp(min=0)
    h = (a[3].minimum(b[3]) - a[1].maximum(b[1])).clamp(min=0)
    return w * h


def bbox_iou(box1: Tensor, box2: Tensor, xywh: bool = True, GIoU: bool = False, DIoU: bool = False,  # noqa: N803
             CIoU: bool = False, eps: float = 1e-7) -> Tensor:  # noqa: N803
    """ultralytics.utils.metrics.bbox_iou, elementwise over broadcast boxes (result without the last dim,
    where ultralytics keeps it as size 1): IoU = I / (A1 + A2 - I + eps), and GIoU / DIoU / CIoU with
    ultralytics' eps placement (h + eps in xyxy mode, c^2 + eps, enclosing area + eps)."""
    box1, box2 = _boxes("bbox_iou", box1, "box1"), _boxes("bbox_iou", box2, "box2")
    a, b = _xyxy(box1, xywh), _xyxy(box2, xywh)
    if xywh:
        w1, h1, w2, h2 = box1[..., 2], box1[..., 3], box2[..., 2], box2[..., 3]
    else:
        w1, h1 = a[2] - a[0], a[3] - a[1] + eps
        w2, h2 = b[2] - b[0], b[3] - b[1] + eps
    inter = _inter(a, b)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not (GIoU or DIoU or CIoU):
        return iou
    cw = a[2].maximum(b[2]) - a[0].minimum(b[0])
    ch = a[3].maximum(b[3]) - a[1].minimum(b[1])
    if CIoU or DIoU:
        c2 = cw * cw + ch * ch + eps
        rho2 = ((b[0] + b[2] - a[0] - a[2]) ** 2 + (b[1] + b[3] - a[1] - a[3]) ** 2) / 4
        if CIoU:
            v = (4 / math.pi ** 2) * (_aspect_atan(w2, h2) - _aspect_atan(w1, h1)) ** 2
            alpha = (v / (1 - iou + v + eps)).detach()
            return iou - (rho2 / c2 + v * alpha)
        return iou - rho2 / c2
    c_area = cw * ch + eps
    return iou - (c_area - union) / c_area


def bbox_nwd(box1: Tensor, box2: Tensor, xywh: bool = True, constant: float = 12.8,
             eps: float = 1e-7) -> Tensor:
    """Normalized Gaussian Wasserstein distance, elementwise over broadcast boxes:
    exp(-sqrt(W2^2 + eps) / C)."""
    box1, box2 = _boxes("bbox_nwd", box1, "box1"), _boxes("bbox_nwd", box2, "box2")
    if constant <= 0:
        raise ValueError(f"bbox_nwd: constant must be positive, got {constant}")
    a, b = _xyxy(box1, xywh), _xyxy(box2, xywh)
    dcx, dcy = (a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2
    dw, dh = ((a[2] - a[0]) - (b[2] - b[0])) / 2, ((a[3] - a[1]) - (b[3] - b[1])) / 2
    w2 = dcx * dcx + dcy * dcy + dw * dw + dh * dh
    return (-((w2 + eps).sqrt() / constant)).exp()


def _inter_union(b1: Tensor, b2: Tensor):
    a, b = b1.unbind(-1), b2.unbind(-1)
    inter = _inter(a, b)
    a1, a2 = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return inter, a1 + a2 - inter, a, b, a1, a2


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """torchvision.ops.box_iou: the (N, M) IoU matrix, I / U (0 / 0 = NaN for two empty boxes, as there)."""
    inter, union, *_ = _inter_union(*_pair("box_iou", boxes1, boxes2))
    return inter / union


def box_ios(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """The (N, M) intersection over the smaller box's area, I / min(A1, A2); 0 where that area <= 0 (sahi)."""
    inter, _, _, _, a1, a2 = _inter_union(*_pair("box_ios", boxes1, boxes2))
    smaller = a1.minimum(a2)
    positive = smaller > 0
    return where(positive, inter / where(positive, smaller, 1.0), 0.0)  # no 0 / 0 in the gradient either


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """torchvision.ops.generalized_box_iou: IoU - (C - U) / C, (N, M)."""
    inter, union, a, b, _, _ = _inter_union(*_pair("generalized_box_iou", boxes1, boxes2))
    iou = inter / union
    cw = (a[2].maximum(b[2]) - a[0].minimum(b[0])).clamp(min=0)
    c = cw * (a[3].maximum(b[3]) - a[1].minimum(b[1])).clamp(min=0)
    return iou - (c - union) / c


def _diou(fn: str, boxes1, boxes2, eps: float):
    inter, union, a, b, _, _ = _inter_union(*_pair(fn, boxes1, boxes2))
    iou = inter / union
    cw = (a[2].maximum(b[2]) - a[0].minimum(b[0])).clamp(min=0)
    ch = (a[3].maximum(b[3]) - a[1].minimum(b[1])).clamp(min=0)
    diag = cw * cw + ch * ch + eps
    dx, dy = (a[0] + a[2]) / 2 - (b[0] + b[2]) / 2, (a[1] + a[3]) / 2 - (b[1] + b[3]) / 2
    return iou - (dx * dx + dy * dy) / diag, iou, a, b


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """torchvision.ops.distance_box_iou: IoU - rho^2 / (c^2 + eps), (N, M)."""
    return _diou("distance_box_iou", boxes1, boxes2, eps)[0]


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """torchvision.ops.complete_box_iou: DIoU - alpha v, alpha = v / (1 - IoU + v + eps) without gradient."""
    diou, iou, a, b = _diou("complete_box_iou", boxes1, boxes2, eps)
    angle1, angle2 = _aspect_atan(a[2] - a[0], a[3] - a[1]), _aspect_atan(b[2] - b[0], b[3] - b[1])
    v = (4 / math.pi ** 2) * (angle1 - angle2) ** 2
    alpha = (v / (1 - iou + v + eps)).detach()
    return diou - alpha * v


def nwd(boxes1: Tensor, boxes2: Tensor, constant: float = 12.8, eps: float = 1e-7) -> Tensor:
    """The (N, M) normalized Gaussian Wasserstein distance of xyxy boxes (see the module docstring)."""
    b1, b2 = _pair("nwd", boxes1, boxes2)
    return bbox_nwd(b1, b2, xywh=False, constant=constant, eps=eps)


# -- non-maximum suppression and merging --------------------------------------------------------------------
def _host(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _nms_inputs(fn: str, boxes, scores) -> tuple[Tensor, Tensor, np.ndarray]:
    """(boxes, scores in the boxes' dtype, the scores on the host in their own dtype: the order is taken
    from these, so a cast cannot create ties)."""
    boxes = _boxes(fn, boxes)
    if boxes.ndim != 2:
        raise ValueError(f"{fn}: expected boxes of shape (N, 4), got {tuple(boxes.shape)}")
    if not isinstance(scores, Tensor) or scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"{fn}: expected scores of shape ({boxes.shape[0]},) for boxes "
                         f"{tuple(boxes.shape)}, got {got}")
    if scores.device != boxes.device:
        raise RuntimeError(f"{fn}: boxes are on {boxes.device} but scores on {scores.device}")
    return boxes.detach(), scores.detach().to(dtype=boxes.dtype), _host(scores)


def _score_order(scores: np.ndarray) -> np.ndarray:
    """Descending, stable (ties keep index order), NaN first: torch.sort(descending=True, stable=True)."""
    key = np.where(np.isnan(scores), -np.inf, -scores.astype(np.float64))
    return np.argsort(key, kind="stable").astype(np.int64)


def _sahi_order(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """sahi's order: score descending, ties by (x1, y1, x2, y2) ascending."""
    return np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores)).astype(np.int64)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """torchvision.ops.nms: indices (int64) of the kept boxes in decreasing score order; a box is suppressed
    by a kept higher-scoring box with IoU > iou_threshold (ties in score: the lower index first)."""
    boxes, _, host_scores = _nms_inputs("nms", boxes, scores)
    return run("nms_forward", boxes, _score_order(host_scores), float(iou_threshold), "iou", False)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """torchvision.ops.batched_nms: NMS within each category idxs[i], by offsetting every category's boxes
    by idx * (max coordinate + 1) so boxes of different categories never overlap."""
    boxes, _, _ = _nms_inputs("batched_nms", boxes, scores)
    if not isinstance(idxs, Tensor) or tuple(idxs.shape) != (boxes.shape[0],):
        got = tuple(idxs.shape) if isinstance(idxs, Tensor) else type(idxs).__name__
        raise ValueError(f"batched_nms: expected idxs of shape ({boxes.shape[0]},), got {got}")
    if boxes.shape[0] == 0:
        return run("nms_forward", boxes, np.zeros(0, np.int64), float(iou_threshold), "iou", False)
    offsets = idxs.detach().to(dtype=boxes.dtype, device=boxes.device) * (boxes.max() + 1)
    return nms(boxes + offsets.unsqueeze(1), scores, iou_threshold)


def _metric(fn: str, match_metric: str) -> str:
    m = str(match_metric).lower()
    if m not in ("iou", "ios"):
        raise ValueError(f"{fn}: match_metric must be 'IOU' or 'IOS', got {match_metric!r}")
    return m


def _per_category(category_ids, n: int):
    """[(None, all indices)] or [(category, its indices)] in ascending category order (sahi's batching)."""
    if category_ids is None:
        return [np.arange(n)]
    cats = _host(category_ids) if isinstance(category_ids, Tensor) else np.asarray(category_ids)
    if cats.shape != (n,):
        raise ValueError(f"expected category_ids of shape ({n},), got {cats.shape}")
    return [np.flatnonzero(cats == c) for c in np.unique(cats)]


def nms_match(boxes: Tensor, scores: Tensor, match_threshold: float = 0.5, match_metric: str = "IOU",
              category_ids=None) -> Tensor:
    """sahi's NMS: suppress when IoU (or IoS) >= match_threshold, visiting boxes in sahi's order (score
    descending, ties by coordinates); per category when category_ids is given. Kept indices (int64) in
    visiting order, category by category."""
    boxes, _, hs = _nms_inputs("nms_match", boxes, scores)
    metric, hb = _metric("nms_match", match_metric), _host(boxes)
    keep = []
    for idx in _per_category(category_ids, len(hb)):
        sub = boxes if len(idx) == len(hb) else boxes[_tensor(idx, device=boxes.device)]
        k = run("nms_forward", sub, _sahi_order(hb[idx], hs[idx]), float(match_threshold), metric, True)
        keep.append(idx[_host(k)])
    out = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    if category_ids is not None:  # sahi's batched order: by score, descending, stable over the categories
        out = out[np.argsort(-hs[out].astype(np.float64), kind="stable")]
    return _tensor(out.astype(np.int64), device=boxes.device)


def _merge(fn: str, boxes, scores, match_threshold, match_metric, category_ids, greedy: bool) -> dict:
    boxes, scores, hs = _nms_inputs(fn, boxes, scores)
    metric, hb = _metric(fn, match_metric), _host(boxes)
    result: dict[int, list[int]] = {}
    for idx in _per_category(category_ids, len(hb)):
        if not len(idx):
            continue
        sub = boxes if len(idx) == len(hb) else boxes[_tensor(idx, device=boxes.device)]
        subs = scores if len(idx) == len(hb) else scores[_tensor(idx, device=boxes.device)]
        owner, claim = run("nmm_forward", sub, subs, _sahi_order(hb[idx], hs[idx]), float(match_threshold),
                           metric, greedy)
        owner, claim = _host(owner), _host(claim)
        for j in np.argsort(claim, kind="stable"):
            o = int(owner[j])
            if o == j:
                result[int(idx[j])] = []
            else:
                result[int(idx[o])].append(int(idx[j]))
    return result


def greedy_nmm(boxes: Tensor, scores: Tensor, match_threshold: float = 0.5, match_metric: str = "IOU",
               category_ids=None) -> dict[int, list[int]]:
    """sahi's greedy non-maximum merging: {keeper index: [indices merged into it]}. Visiting boxes in sahi's
    order, an unmerged box becomes a keeper and takes every later unmerged box with IoU (IoS) >=
    match_threshold; per category when category_ids is given."""
    return _merge("greedy_nmm", boxes, scores, match_threshold, match_metric, category_ids, True)


def nmm(boxes: Tensor, scores: Tensor, match_threshold: float = 0.5, match_metric: str = "IOU",
        category_ids=None) -> dict[int, list[int]]:
    """sahi's (transitive) non-maximum merging: as greedy_nmm, but a merged box also takes, for its keeper,
    the unmerged boxes it dominates and matches (see reference/boxes.py nmm_forward)."""
    return _merge("nmm", boxes, scores, match_threshold, match_metric, category_ids, False)
