"""Anchor-free decoupled detection head (YOLOv8's Detect) and its box coding.

Each level i (stride s_i) has two branches on its feature map:
    box  ConvBNAct 3x3 -> ConvBNAct 3x3 -> Conv2d 1x1 to 4 * reg_max   (a distribution per box side)
    cls  ConvBNAct 3x3 -> ConvBNAct 3x3 -> Conv2d 1x1 to num_classes   (logits)
and returns (B, 4 * reg_max + num_classes, H_i, W_i).

Box coding (Generalized Focal Loss's distribution, ultralytics' DFL): anchor points are the cell centres
a = (x + 0.5, y + 0.5) in grid units; each side d in (left, top, right, bottom) has logits z_0 .. z_{R-1}
(R = reg_max) and d = sum_j j softmax(z)_j (in strides, so 0 <= d <= R - 1), giving
    box = (a_x - l, a_y - t, a_x + r, a_y + b) * s            (xyxy in input pixels)
bbox2dist is the inverse for the targets, clamped to [0, R - 1 - 0.01] as the DFL needs.
"""
from __future__ import annotations

import math

import numpy as np

import tinyml
import tinyml.nn as nn
from tinyml.tensor import Tensor

from ..vision.csp import ConvBNAct

__all__ = ["DetectHead", "bbox2dist", "dfl_expectation", "dist2bbox", "make_anchors"]


class DetectHead(nn.Module):
    """channels: the input channels per level; box_channels / cls_channels: the branch widths (None:
    ultralytics' max(16, c_0 / 4, 4 reg_max) and max(c_0, min(num_classes, 100)))."""

    def __init__(self, num_classes: int, channels, strides, reg_max: int = 16,
                 box_channels: int | None = None, cls_channels: int | None = None,
                 box_prior: float | None = None):
        super().__init__()
        channels, strides = tuple(channels), tuple(strides)
        if len(channels) != len(strides):
            raise ValueError(f"DetectHead: {len(channels)} channel counts {channels} for {len(strides)} "
                             f"strides {strides}")
        if num_classes < 1 or reg_max < 1:
            raise ValueError(f"DetectHead: num_classes ({num_classes}) and reg_max ({reg_max}) must be >= 1")
        self.num_classes, self.reg_max, self.strides = num_classes, reg_max, strides
        self.num_outputs = 4 * reg_max + num_classes
        if box_prior is not None and not 0 < box_prior < reg_max - 1:
            raise ValueError(f"DetectHead: box_prior must be in (0, {reg_max - 1}) cells or None, got "
                             f"{box_prior}")
        self.box_prior = box_prior
        c2 = box_channels or max(16, channels[0] // 4, 4 * reg_max)
        c3 = cls_channels or max(channels[0], min(num_classes, 100))
        self.box_branches = nn.ModuleList([
            nn.Sequential(ConvBNAct(c, c2, 3), ConvBNAct(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
            for c in channels])
        self.cls_branches = nn.ModuleList([
            nn.Sequential(ConvBNAct(c, c3, 3), ConvBNAct(c3, c3, 3), nn.Conv2d(c3, num_classes, 1))
            for c in channels])
        self.bias_init()

    def bias_init(self) -> None:
        """ultralytics' Detect.bias_init: box logits start flat (bias 1, so every side starts at the mean
        bin, (reg_max - 1) / 2 = 7.5 cells); class logits at the prior of about 5 objects per 640 x 640
        image, log(5 / nc / (640 / s)^2), so the first steps are not swamped by the background.

        box_prior = d (cells) instead starts each side's distribution geometric, p_j ~ r^j with
        r = d / (1 + d) (mean about d): with flat logits a 3 px target at stride 4 faces 60 px predicted
        boxes, IoU ~ 0.003, an alignment metric s^0.5 IoU^6 ~ 1e-16 far below the assigner's eps, hence
        soft targets ~ 0 and no box gradient at all; d = 1 starts at 8 px boxes (IoU ~ 0.15)."""
        for box, cls, s in zip(self.box_branches, self.cls_branches, self.strides):
            if self.box_prior is None:
                nn.init.constant_(box[-1].bias, 1.0)
            else:
                log_r = math.log(self.box_prior / (1 + self.box_prior))
                bias = np.tile(np.arange(self.reg_max, dtype=np.float32) * log_r, 4)  # (4 reg_max,)
                with tinyml.no_grad():
                    box[-1].bias.copy_(tinyml.tensor(bias))
            nn.init.constant_(cls[-1].bias, math.log(5 / self.num_classes / (640 / s) ** 2))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        if len(feats) != len(self.strides):
            raise ValueError(f"DetectHead: expected {len(self.strides)} feature maps, got {len(feats)}")
        return [tinyml.cat([box(x), cls(x)], dim=1)  # (B, 4 reg_max + nc, H_i, W_i)
                for x, box, cls in zip(feats, self.box_branches, self.cls_branches)]


def make_anchors(shapes, strides, offset: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points (A, 2) as (x, y) cell centres in grid units of their level and strides (A, 1), the
    levels' (H, W) row-major cells concatenated (ultralytics' make_anchors)."""
    points, stride_col = [], []
    for (h, w), s in zip(shapes, strides):
        sy, sx = np.meshgrid(np.arange(h, dtype=np.float32) + offset, np.arange(w, dtype=np.float32) + offset,
                             indexing="ij")
        points.append(np.stack([sx, sy], -1).reshape(-1, 2))
        stride_col.append(np.full((h * w, 1), s, dtype=np.float32))
    return np.concatenate(points), np.concatenate(stride_col)


def dfl_expectation(pred_dist: Tensor, reg_max: int) -> Tensor:
    """(B, A, 4 reg_max) logits -> (B, A, 4) distances sum_j j softmax(z)_j."""
    b, a, _ = pred_dist.shape
    prob = pred_dist.reshape(b, a, 4, reg_max).softmax(-1)  # (B, A, 4, R)
    proj = tinyml.arange(reg_max, dtype=pred_dist.dtype)  # (R,)
    return (prob * proj).sum(-1)  # (B, A, 4)


def dist2bbox(distance: Tensor, anchor_points: Tensor) -> Tensor:
    """(..., 4) ltrb distances around (A, 2) anchors -> (..., 4) xyxy (same units as both)."""
    lt, rb = distance.chunk(2, dim=-1)
    return tinyml.cat([anchor_points - lt, anchor_points + rb], dim=-1)


def bbox2dist(anchor_points: np.ndarray, boxes: np.ndarray, reg_max: int,
              shift: float = 0.0) -> np.ndarray:
    """xyxy boxes (..., 4) around anchors (..., 2), all in grid units -> ltrb + shift clamped to [0, reg_max -
    1 - 0.01] (ultralytics' bbox2dist with its reg_max - 1 argument; shift: the Detector's box_shift)."""
    d = np.concatenate([anchor_points - boxes[..., :2], boxes[..., 2:] - anchor_points], -1)
    return np.clip(d + shift, 0, reg_max - 1 - 0.01)
