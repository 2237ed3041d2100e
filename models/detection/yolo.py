"""Detector: a YOLOv8-style anchor-free detector for small objects: CSPBackbone -> PAN neck -> DetectHead,
by default on strides (4, 8, 16) (P2-P4: a 4 px target still covers a cell of the finest level).

Loss (ultralytics' v8DetectionLoss; B images, A anchors over all levels, TaskAlignedAssigner's soft
targets q (B, A, nc), positives P, S = max(sum q, 1), w_a = sum_c q_ac):
    cls  = sum_{a,c} l(x_ac, q_ac) / S,   l = BCE-with-logits | sigmoid focal (alpha 0.25, gamma 2) |
           EFLNet's adaptive-threshold focal | varifocal (label = the assigned class)
    box  = sum_{a in P} w_a (1 - sim(box_a, gt_a)) / S,   sim = CIoU | GIoU | NWD (pixels, C = nwd_constant,
           12.8 by default; the assigner's NWD overlap has its own C, assign_nwd_constant, default the same)
    dfl  = sum_{a in P} w_a DFL(dist_a, ltrb(gt_a)) / S   (distribution focal loss over reg_max bins)
    total = (7.5 box + 0.5 cls + 1.5 dfl) * B             (ultralytics' gains and its batch-size factor)
Box predictions are decoded from the DFL distributions (head.py) and the loss runs on them in pixels.

box_shift = b cells (default 0): the side distances are the DFL expectations minus b, so a predicted box
need not contain its anchor (each side may stop up to b cells short of it). With b = 0 (ultralytics') a
box contains its anchor point, and at stride 4 a 1 px box can be coded from its nearest anchor only when the
anchor lies on the box's edge (1 in 4 pixel positions in 2-D); b = 0.25 reaches every 1-2 px box from the
finest level's nearest anchor (at most 1 px = 0.25 cells away from the box).

predict: sigmoid scores, best class per anchor, score > conf_thres, per-class NMS (batched_nms) at
iou_thres, the max_det best, boxes clipped to the image: [(boxes xyxy (n, 4), scores (n,), labels (n,))].
"""
from __future__ import annotations

import numpy as np

import tinyml
import tinyml.nn as nn
from tinyml.ops.boxes import batched_nms
from tinyml.ops.detection_loss import (
    adaptive_threshold_focal_loss,
    distribution_focal_loss,
    iou_loss,
    sigmoid_focal_loss,
    varifocal_loss,
)
from tinyml.ops.loss import binary_cross_entropy_with_logits
from tinyml.tensor import Tensor

from ..vision.csp import CSPBackbone, fuse_modules
from ..vision.neck import PAN
from .assigner import TaskAlignedAssigner
from .head import DetectHead, bbox2dist, dfl_expectation, dist2bbox, make_anchors
from .targets import as_image_tensor, check_targets, check_tta, pad_targets

__all__ = ["Detector"]

# head branch widths (box, cls) per size; None = ultralytics' formula (64 and c_0 for reg_max 16)
HEAD_WIDTHS = {"tiny": (16, 16), "small": (None, None)}
BOX_LOSSES = ("ciou", "giou", "nwd")
CLS_LOSSES = ("bce", "focal", "atfl", "varifocal")


class Detector(nn.Module):
    """Defaults are ultralytics' (top-k 10, alpha 0.5, beta 6, candidates inside the gt box, CIoU overlap,
    flat DFL bias, gains 7.5 / 0.5 / 1.5) apart from the strides (4, 8, 16). For targets of a few pixels
    (assigner.py and head.py say why): nearest_fallback=True (every gt gets an anchor), assign_overlap="nwd"
    (a 1 px box has CIoU <= 0 with any prediction), box_prior=1.0 (start with 2-cell boxes, not 15-cell
    ones), box_loss="nwd". size "tiny": YOLOv8n widths (16 .. 128) with 16-channel head branches (the P2 level
    at 1/4 resolution dominates the cost); "small": twice the widths, ultralytics' head widths."""

    def __init__(self, num_classes: int = 1, size: str = "tiny", in_channels: int = 1, strides=(4, 8, 16),
                 box_loss: str = "ciou", cls_loss: str = "bce", reg_max: int = 16, topk: int = 10,
                 nearest_fallback: bool = False, assign_overlap: str = "ciou",
                 box_prior: float | None = None, box_gain: float = 7.5, cls_gain: float = 0.5,
                 dfl_gain: float = 1.5, nwd_constant: float = 12.8, min_candidates: int = 1,
                 box_shift: float = 0.0, assign_nwd_constant: float | None = None):
        super().__init__()
        if size not in HEAD_WIDTHS:
            raise ValueError(f"Detector: unknown size {size!r}; expected one of {sorted(HEAD_WIDTHS)}")
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"Detector: unknown box_loss {box_loss!r}; expected one of {BOX_LOSSES}")
        if cls_loss not in CLS_LOSSES:
            raise ValueError(f"Detector: unknown cls_loss {cls_loss!r}; expected one of {CLS_LOSSES}")
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"Detector: num_classes ({num_classes}) and in_channels ({in_channels}) must be "
                             f">= 1")
        if assign_nwd_constant is None:
            assign_nwd_constant = nwd_constant
        if not (nwd_constant > 0 and assign_nwd_constant > 0):  # also refuses NaN
            raise ValueError(f"Detector: nwd_constant ({nwd_constant}) and assign_nwd_constant "
                             f"({assign_nwd_constant}) must be > 0 pixels")
        if not 0.0 <= box_shift < (reg_max - 1) / 2:
            raise ValueError(f"Detector: box_shift must be in [0, {(reg_max - 1) / 2}) cells (reg_max "
                             f"{reg_max}), got {box_shift}")
        strides = tuple(int(s) for s in strides)
        self._config = dict(num_classes=num_classes, size=size, in_channels=in_channels,
                            strides=list(strides), box_loss=box_loss, cls_loss=cls_loss, reg_max=reg_max,
                            topk=topk,
                            nearest_fallback=nearest_fallback, assign_overlap=assign_overlap,
                            box_prior=box_prior, box_gain=box_gain, cls_gain=cls_gain,
                            dfl_gain=dfl_gain, nwd_constant=nwd_constant, min_candidates=min_candidates,
                            box_shift=float(box_shift), assign_nwd_constant=float(assign_nwd_constant))
        self.num_classes, self.in_channels = num_classes, in_channels
        self.strides, self.reg_max = strides, reg_max
        self.backbone = CSPBackbone(in_channels, size, strides)
        self.neck = PAN(self.backbone.out_channels)
        box_w, cls_w = HEAD_WIDTHS[size]
        self.head = DetectHead(num_classes, self.backbone.out_channels, strides, reg_max, box_w, cls_w,
                               box_prior)
        self.assigner = TaskAlignedAssigner(topk, num_classes, alpha=0.5, beta=6.0,
                                            nearest_fallback=nearest_fallback, overlap=assign_overlap,
                                            nwd_constant=assign_nwd_constant, min_candidates=min_candidates)

    @property
    def config(self) -> dict:
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict) -> Detector:
        return cls(**config)

    def forward(self, images) -> list[Tensor]:
        """images (B, C, H, W) -> per level (B, 4 reg_max + nc, H / s, W / s)."""
        x = as_image_tensor("Detector", images, self.in_channels, max(self.strides))
        return self.head(self.neck(self.backbone(x)))

    def fuse(self) -> Detector:
        """Eval mode with every Conv+BN folded into one conv (inference only)."""
        self.eval()
        fuse_modules(self)
        return self

    # ---- decoding ----------------------------------------------------------------------------------
    def _decode(self, raw: list[Tensor]):
        """-> pred_dist (B, A, 4R), pred_scores (B, A, nc) logits, boxes (B, A, 4) xyxy pixels,
        anchors (A, 2) and strides (A, 1) in grid units / pixels per cell."""
        if not isinstance(raw, (list, tuple)) or len(raw) != len(self.strides):
            got = f"{type(raw).__name__} of length {len(raw)}" if hasattr(raw, "__len__") else \
                type(raw).__name__
            raise ValueError(f"Detector: expected the raw outputs of forward ({len(self.strides)} level "
                             f"maps), got {got}")
        b = raw[0].shape[0]
        no = 4 * self.reg_max + self.num_classes
        out = tinyml.cat([r.reshape(b, no, -1) for r in raw], dim=2).permute(0, 2, 1)  # (B, A, no)
        pred_dist, pred_scores = out[..., :4 * self.reg_max], out[..., 4 * self.reg_max:]
        anchors, stride = make_anchors([tuple(r.shape[2:]) for r in raw], self.strides)
        dist = dfl_expectation(pred_dist, self.reg_max)  # (B, A, 4) in cells
        if self._config["box_shift"]:  # signed distances: a side may stop box_shift cells short of the anchor
            dist = dist - self._config["box_shift"]
        boxes = dist2bbox(dist, tinyml.tensor(anchors)) * tinyml.tensor(stride)  # (B, A, 4) pixels
        return pred_dist, pred_scores, boxes, anchors, stride

    # ---- loss --------------------------------------------------------------------------------------
    def loss(self, raw: list[Tensor], targets: list[dict]) -> tuple[Tensor, dict[str, float]]:
        pred_dist, pred_scores, boxes, anchors, stride = self._decode(raw)
        b, na, nc = pred_scores.shape
        check_targets("Detector.loss", targets, b, nc)
        gt_labels, gt_boxes, mask_gt = pad_targets(targets)
        with tinyml.no_grad():
            pd_scores = pred_scores.detach().sigmoid().numpy()
            pd_boxes = boxes.detach().numpy()
        _, t_boxes, t_scores, fg, _ = self.assigner(pd_scores, pd_boxes, anchors * stride, gt_labels,
                                                    gt_boxes, mask_gt, anc_strides=stride)
        t_sum = max(float(t_scores.sum()), 1.0)
        cls = self._cls_loss(pred_scores, t_scores).sum() / t_sum
        parts = {"cls": self._config["cls_gain"] * cls.item(), "box": 0.0, "dfl": 0.0}
        total = self._config["cls_gain"] * cls
        if fg.any():
            idx = np.flatnonzero(fg.reshape(-1))  # positives among the B * A anchors
            weight = tinyml.tensor(t_scores.sum(-1).reshape(-1)[idx])  # (P,)
            tb = t_boxes.reshape(-1, 4)[idx].astype(np.float32)  # (P, 4) pixels
            pb = boxes.reshape(b * na, 4)[tinyml.tensor(idx)]  # (P, 4)
            box = (iou_loss(pb, tinyml.tensor(tb), kind=self._config["box_loss"],
                            constant=self._config["nwd_constant"]) * weight).sum() / t_sum
            a_idx = idx % na
            ltrb = bbox2dist(anchors[a_idx], tb / stride[a_idx], self.reg_max,
                             self._config["box_shift"])  # (P, 4) cells, + the shift: bins
            pd = pred_dist.reshape(b * na, 4 * self.reg_max)[tinyml.tensor(idx)].reshape(-1, self.reg_max)
            dfl = (distribution_focal_loss(pd, tinyml.tensor(ltrb.astype(np.float32)), self.reg_max)
                   .reshape(-1) * weight).sum() / t_sum
            total = total + self._config["box_gain"] * box + self._config["dfl_gain"] * dfl
            parts["box"] = self._config["box_gain"] * box.item()
            parts["dfl"] = self._config["dfl_gain"] * dfl.item()
        return total * b, parts

    def _cls_loss(self, logits: Tensor, t_scores: np.ndarray) -> Tensor:
        q = tinyml.tensor(t_scores)
        kind = self._config["cls_loss"]
        if kind == "bce":
            return binary_cross_entropy_with_logits(logits, q, reduction="none")
        if kind == "focal":
            return sigmoid_focal_loss(logits, q, alpha=0.25, gamma=2.0)
        if kind == "atfl":
            return adaptive_threshold_focal_loss(logits, q)
        return varifocal_loss(logits, q, tinyml.tensor((t_scores > 0).astype(np.float32)))

    # ---- inference ---------------------------------------------------------------------------------
    def dense(self, images, tta: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Eval-mode class probabilities (B, A, nc) and boxes (B, A, 4) xyxy pixels of every anchor.

        tta: test-time augmentation, letters of "hvt": the mean over the image and its mirror images (h:
        u -> W - u; v: along H) and/or its transpose (t), 2^len(tta) views. The anchor centres (x + 1/2) s
        of a level map onto each other under each of these, so every view's per-level maps, reversed
        (or transposed) back, line up with the image's anchors; its boxes map back as [W - x2, y1, W - x1,
        y2] (h), [x1, H - y2, x2, H - y1] (v) or [y1, x1, y2, x2] (t), and scores and boxes are averaged."""
        check_tta("Detector.dense", tta)
        was_training = self.training
        self.eval()
        try:
            with tinyml.no_grad():
                x = as_image_tensor("Detector", images, self.in_channels, max(self.strides)).numpy()
                levels = self._dense_views(x, tta)
        finally:
            self.train(was_training)
        b = x.shape[0]
        scores = np.concatenate([sc.reshape(b, sc.shape[1], -1) for sc, _ in levels], 2).transpose(0, 2, 1)
        boxes = np.concatenate([bx.reshape(b, 4, -1) for _, bx in levels], 2).transpose(0, 2, 1)
        return np.ascontiguousarray(scores, np.float32), np.ascontiguousarray(boxes, np.float32)

    def _dense_views(self, x: np.ndarray, tta: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per level (scores (B, nc, h, w), boxes (B, 4, h, w) xyxy pixels) of the views tta names."""
        if not tta:
            raw = self(tinyml.tensor(np.ascontiguousarray(x)))
            _, logits, boxes, _, _ = self._decode(raw)
            scores, boxes, b = logits.sigmoid().numpy(), boxes.numpy(), x.shape[0]
            out, start = [], 0
            for r in raw:
                h, w = r.shape[2], r.shape[3]
                sl = slice(start, start + h * w)
                out.append((scores[:, sl].transpose(0, 2, 1).reshape(b, -1, h, w),
                            boxes[:, sl].transpose(0, 2, 1).reshape(b, 4, h, w)))
                start += h * w
            return out
        op, rest = tta[0], tta[1:]
        base = self._dense_views(x, rest)
        height, width = x.shape[-2], x.shape[-1]
        if op == "t":
            views = [(sc.swapaxes(-1, -2), bx[:, [1, 0, 3, 2]].swapaxes(-1, -2))
                     for sc, bx in self._dense_views(x.swapaxes(-1, -2), rest)]
        else:
            axis, size, order = (-1, width, [2, 1, 0, 3]) if op == "h" else (-2, height, [0, 3, 2, 1])
            sign = np.array([1, 1, 1, 1], np.float32)
            shift = np.zeros(4, np.float32)
            flipped = [0, 2] if op == "h" else [1, 3]
            sign[flipped], shift[flipped] = -1, size
            views = [(np.flip(sc, axis), np.flip(bx, axis)[:, order] * sign[:, None, None]
                      + shift[:, None, None]) for sc, bx in self._dense_views(np.flip(x, axis), rest)]
        return [((s0 + s1) / 2, (b0 + b1) / 2) for (s0, b0), (s1, b1) in zip(base, views)]

    def predict(self, images, conf_thres: float = 0.25, iou_thres: float = 0.6, max_det: int = 300,
                tta: str = "") -> list:
        """Per image (boxes (n, 4) xyxy float32 pixels, scores (n,) float32, labels (n,) int64), best first.
        Runs in eval mode (restores the previous mode); tta: flipped / transposed views averaged (`dense`)."""
        scores_all, boxes_all = self.dense(images, tta)
        h, w = images.shape[-2], images.shape[-1]
        results = []
        for boxes_i, scores_i in zip(boxes_all, scores_all):
            labels = scores_i.argmax(-1)
            conf = scores_i.max(-1)
            keep = conf > conf_thres
            bx = boxes_i[keep].clip([0, 0, 0, 0], [w, h, w, h]).astype(np.float32)
            sc, lb = conf[keep].astype(np.float32), labels[keep].astype(np.int64)
            if len(sc):
                order = batched_nms(tinyml.tensor(bx), tinyml.tensor(sc), tinyml.tensor(lb),
                                    iou_thres).numpy()
                order = order[:max_det]
                bx, sc, lb = bx[order], sc[order], lb[order]
            results.append((bx.reshape(-1, 4), sc, lb))
        return results
