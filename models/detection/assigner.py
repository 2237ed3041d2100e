"""Task-aligned label assignment (TOOD, Feng et al. 2021) as ultralytics' TaskAlignedAssigner computes it,
on host arrays (numpy; assignment has no gradient).

For image b, gt box g (label c) and anchor point a (all boxes xyxy in pixels):
    candidates   a is a candidate of g when its centre lies strictly inside g (min of the four distances
                 to the sides > 1e-9); ultralytics' default
    overlap      u_ga = max(0, CIoU(g, predicted box of a)) on candidates, 0 elsewhere (overlap="nwd":
                 the normalized Gaussian Wasserstein distance exp(-W2 / C) instead, C = 12.8 px)
    align        t_ga = s_ga^alpha u_ga^beta, s_ga the predicted (sigmoid) score of class c at a
    top-k        each valid g keeps its k anchors with the largest t_ga (ties, where torch.topk's order is
                 unspecified: candidates first, then the lower anchor index); positives = top-k AND candidate
    one gt each  an anchor positive for several gts keeps the gt with the highest u_ga (argmax over all gts)
    targets      label and box of the anchor's gt; soft score one_hot(c) * max_g(t_ga u*_g / (t*_g + eps)),
                 t*_g, u*_g the largest t and u over g's positives (so g's best anchor gets score u*_g)
Defaults as ultralytics' v8 detection loss: top-k 10, alpha 0.5, beta 6.

Small objects: the candidate test admits only anchors whose centre is inside the box. Anchor centres are a
grid of spacing s (the stride), so a box narrower than s on an axis contains a centre with probability w / s
only: a 2 x 2 px target at stride 4 gets no candidate three times in four, never becomes a positive, and the
detector is never taught to find it. `nearest_fallback=True` gives every gt box without a candidate the single
anchor nearest its centre among the finest level's (given the anchors' strides; within s_min / 2 per axis).
Not over all levels: the levels' centres interleave (stride 4 at 2, 6, 10, ..., stride 8 at 4, 12, ..., stride
16 at 8, 24, ...), so a coarse level's centre is often the nearer one, and a 1 px box would go to a stride-8
or stride-16 anchor, whose DFL bins are 8 or 16 px wide (for 1-2 px boxes at uniform pixel positions: 9 % of
them). Why the nearest one and not a centre region (YOLOX's radius 2.5 strides): the box is coded as distances
from the anchor to the four sides (ltrb >= 0), so a predicted box always contains its anchor; an anchor
outside the gt box can only approximate it, and the nearest anchor does so best (a 3 px box and an anchor 2 px
from its centre: IoU >= 0.8), where a region of several strides fills the positives with anchors whose target
the coding cannot represent (training stalls at 1 - CIoU ~ 0.4). A candidate still needs a positive overlap to
get a soft score above 0: CIoU is <= 0 for a 1 px box against any prediction a few px off (the centre term
dominates), NWD is not (exp(-4 px / 12.8) = 0.73).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["TaskAlignedAssigner", "ciou_numpy", "nwd_numpy"]


def nwd_numpy(b1: np.ndarray, b2: np.ndarray, constant: float = 12.8, eps: float = 1e-7) -> np.ndarray:
    """tinyml.ops.bbox_nwd(b1, b2, xywh=False) on (..., 4) arrays: exp(-sqrt(W2^2 + eps) / C)."""
    d = (b1[..., :2] + b1[..., 2:] - b2[..., :2] - b2[..., 2:]) / 2  # centre offsets
    s = ((b1[..., 2:] - b1[..., :2]) - (b2[..., 2:] - b2[..., :2])) / 2  # half-size differences
    return np.exp(-np.sqrt((d ** 2).sum(-1) + (s ** 2).sum(-1) + eps) / constant)


def ciou_numpy(b1: np.ndarray, b2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """ultralytics' bbox_iou(b1, b2, xywh=False, CIoU=True) on (..., 4) arrays (without the last dim)."""
    x1a, y1a, x2a, y2a = np.moveaxis(b1, -1, 0)
    x1b, y1b, x2b, y2b = np.moveaxis(b2, -1, 0)
    w1, h1 = x2a - x1a, y2a - y1a + eps
    w2, h2 = x2b - x1b, y2b - y1b + eps
    inter = (np.minimum(x2a, x2b) - np.maximum(x1a, x1b)).clip(0) * \
            (np.minimum(y2a, y2b) - np.maximum(y1a, y1b)).clip(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = np.maximum(x2a, x2b) - np.minimum(x1a, x1b)
    ch = np.maximum(y2a, y2b) - np.minimum(y1a, y1b)
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((x1b + x2b - x1a - x2a) ** 2 + (y1b + y2b - y1a - y2a) ** 2) / 4
    v = (4 / math.pi ** 2) * (np.arctan(w2 / h2) - np.arctan(w1 / h1)) ** 2
    alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class TaskAlignedAssigner:
    def __init__(self, topk: int = 10, num_classes: int = 80, alpha: float = 0.5, beta: float = 6.0,
                 eps: float = 1e-9, nearest_fallback: bool = False, overlap: str = "ciou",
                 nwd_constant: float = 12.8, min_candidates: int = 1):
        if overlap not in ("ciou", "nwd"):
            raise ValueError(f"TaskAlignedAssigner: overlap must be 'ciou' or 'nwd', got {overlap!r}")
        if topk < 1 or min_candidates < 1:
            raise ValueError(f"TaskAlignedAssigner: topk ({topk}) and min_candidates ({min_candidates}) must "
                             "be >= 1")
        self.topk, self.num_classes, self.alpha, self.beta, self.eps = topk, num_classes, alpha, beta, eps
        self.nearest_fallback, self.overlap = nearest_fallback, overlap
        self.nwd_constant, self.min_candidates = nwd_constant, int(min_candidates)

    def candidates(self, anc_points: np.ndarray, gt_bboxes: np.ndarray, valid: np.ndarray,
                   anc_strides: np.ndarray | None = None) -> np.ndarray:
        """(B, M, A) bool: anchor centre strictly inside the gt box (plus, with nearest_fallback, the
        min_candidates anchors nearest the centre of each valid gt box that has fewer inside; with
        anc_strides (A,), the nearest among the finest level's anchors)."""
        pts = anc_points[None, None]  # (1, 1, A, 2)
        lt, rb = gt_bboxes[:, :, None, :2], gt_bboxes[:, :, None, 2:]  # (B, M, 1, 2)
        inside = (np.concatenate([pts - lt, rb - pts], -1).min(-1) > 1e-9) & valid[:, :, None]  # (B, M, A)
        if not self.nearest_fallback:
            return inside
        k = self.min_candidates
        starved = valid & (inside.sum(-1) < k)  # (B, M)
        if starved.any():
            bi, mi = np.nonzero(starved)
            centre = (gt_bboxes[bi, mi, :2] + gt_bboxes[bi, mi, 2:]) / 2  # (S, 2)
            pool = np.arange(len(anc_points))
            if anc_strides is not None:  # coarse levels' centres interleave with the finest's: skip them
                pool = np.flatnonzero(anc_strides.reshape(-1) == anc_strides.min())
            dist = ((anc_points[pool][None] - centre[:, None]) ** 2).sum(-1)  # (S, P)
            k = min(k, len(pool))
            # the k nearest (S, k), ties by the lower index
            nearest = dist.argmin(-1)[:, None] if k == 1 else np.argsort(dist, -1, kind="stable")[:, :k]
            inside[bi[:, None], mi[:, None], pool[nearest]] = True
        return inside

    def __call__(self, pd_scores: np.ndarray, pd_bboxes: np.ndarray, anc_points: np.ndarray,
                 gt_labels: np.ndarray, gt_bboxes: np.ndarray, mask_gt: np.ndarray,
                 anc_strides: np.ndarray | None = None):
        """pd_scores (B, A, nc) probabilities, pd_bboxes (B, A, 4) xyxy pixels, anc_points (A, 2) pixels,
        gt_labels (B, M[, 1]) int, gt_bboxes (B, M, 4), mask_gt (B, M[, 1]) (1 = real box, 0 = padding),
        anc_strides (A,) or (A, 1) the anchors' strides (the fallback's level; None: any level).

        Returns target_labels (B, A) int64, target_bboxes (B, A, 4), target_scores (B, A, nc) float32,
        fg_mask (B, A) bool, target_gt_idx (B, A) int64."""
        bs, na, nc = pd_scores.shape
        n_max = gt_bboxes.shape[1]
        if n_max == 0:
            return (np.full((bs, na), self.num_classes, np.int64), np.zeros_like(pd_bboxes),
                    np.zeros_like(pd_scores), np.zeros((bs, na), bool), np.zeros((bs, na), np.int64))
        gt_labels = gt_labels.reshape(bs, n_max).astype(np.int64)
        valid = mask_gt.reshape(bs, n_max).astype(bool)
        mask_in = self.candidates(anc_points, gt_bboxes, valid, anc_strides)  # (B, M, A)

        # alignment metric on the candidates (B, M, A)
        overlaps = np.zeros((bs, n_max, na), pd_bboxes.dtype)
        bi, mi, ai = np.nonzero(mask_in)
        if self.overlap == "nwd":
            overlaps[bi, mi, ai] = nwd_numpy(gt_bboxes[bi, mi], pd_bboxes[bi, ai], self.nwd_constant)
        else:
            overlaps[bi, mi, ai] = ciou_numpy(gt_bboxes[bi, mi], pd_bboxes[bi, ai]).clip(0)
        bbox_scores = np.zeros((bs, n_max, na), pd_scores.dtype)
        bbox_scores[bi, mi, ai] = pd_scores[bi, ai, gt_labels[bi, mi]]
        align = bbox_scores ** self.alpha * overlaps ** self.beta

        # top-k per gt: the largest metric; ties: candidates first, then the lower anchor index
        k = min(self.topk, na)
        top = np.lexsort((~mask_in, -align), axis=-1)[..., :k]  # (B, M, k)
        mask_topk = np.zeros((bs, n_max, na), bool)
        np.put_along_axis(mask_topk, top, True, axis=-1)
        mask_pos = mask_topk & mask_in  # (B, M, A)

        # an anchor claimed by several gts keeps the one it overlaps most
        fg = mask_pos.sum(1)  # (B, A)
        if fg.max(initial=0) > 1:
            multi = fg > 1  # (B, A)
            best = np.zeros_like(mask_pos)
            np.put_along_axis(best, overlaps.argmax(1)[:, None, :], True, axis=1)
            mask_pos = np.where(multi[:, None, :], best, mask_pos)
            fg = mask_pos.sum(1)
        fg_mask = fg > 0
        target_gt_idx = mask_pos.argmax(1)  # (B, A)

        batch = np.arange(bs)[:, None]
        target_labels = gt_labels[batch, target_gt_idx].clip(0)  # (B, A)
        target_bboxes = gt_bboxes[batch, target_gt_idx]  # (B, A, 4)
        target_scores = np.zeros((bs, na, self.num_classes), np.float32)
        np.put_along_axis(target_scores, target_labels[..., None], 1.0, axis=-1)
        target_scores *= fg_mask[..., None]

        align = align * mask_pos
        pos_align = align.max(-1, keepdims=True)  # (B, M, 1)
        pos_overlaps = (overlaps * mask_pos).max(-1, keepdims=True)
        norm = (align * pos_overlaps / (pos_align + self.eps)).max(1)[..., None]  # (B, A, 1)
        target_scores = (target_scores * norm).astype(np.float32)
        return target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx
