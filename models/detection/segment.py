"""A small U-Net for infrared small-target segmentation: per-pixel target logits at stride 1.

    model = SmallTargetSegmenter(in_channels=1, base_channels=8, depth=3)
    logits = model(images)                             # (B, C, H, W) -> (B, 1, H, W)
    total, parts = model.loss(logits, targets)         # targets: dicts with "mask" (H, W), or (B, H, W)
    masks = model.predict_masks(images, threshold=0.5) # (B, H, W) uint8
    per_image = model.predict(images)                  # [(boxes xyxy, scores, labels)] from the masks

Architecture (Ronneberger et al. 2015, narrowed for tiny targets): `depth` encoder levels of
ConvBlock (two 3x3 conv + BatchNorm + ReLU), with 2x2 max pooling between them and widths
base, 2 base, 4 base, ...; a decoder that upsamples by 2 (nearest), concatenates the encoder feature of
the same resolution and applies a ConvBlock, back to full resolution, where a 1x1 conv gives one logit
per pixel, its bias set so that every pixel starts at p = prior_prob (0.01; RetinaNet's prior
initialisation). Full-resolution skips keep 1-px targets from being pooled away. Images whose sides are
not multiples of 2^(depth-1) are zero-padded at the bottom/right and the logits cropped back.

Loss (as in infrared small-target work, e.g. DNANet / ISNet's soft-IoU, plus BCE for calibration):

    p = sigmoid(logits),  soft_iou = 1 - (sum p g + 1) / (sum p + sum g - sum p g + 1)   (per image)
    total = bce_weight * BCEWithLogits(logits, g) + iou_weight * mean_images(soft_iou)
"""
from __future__ import annotations

import math

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

from .metrics import label_components

__all__ = ["SmallTargetSegmenter", "ConvBlock", "soft_iou_loss"]


class ConvBlock(nn.Module):
    """(Conv3x3 -> BatchNorm -> ReLU) x 2, stride 1, padding 1."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


def soft_iou_loss(logits, target, smooth: float = 1.0):
    """Mean over images of 1 - (sum p g + s) / (sum p + sum g - sum p g + s), p = sigmoid(logits)."""
    p = logits.sigmoid().reshape(logits.shape[0], -1)                     # (B, HW)
    g = target.reshape(target.shape[0], -1)
    inter = (p * g).sum(dim=1)
    union = p.sum(dim=1) + g.sum(dim=1) - inter
    return (1.0 - (inter + smooth) / (union + smooth)).mean()


class SmallTargetSegmenter(nn.Module):
    """U-Net-style segmenter: forward(images (B, C, H, W)) -> logits (B, 1, H, W) (module docstring)."""

    def __init__(self, in_channels: int = 1, base_channels: int = 8, depth: int = 3, bce_weight: float = 1.0,
                 iou_weight: float = 1.0, prior_prob: float = 0.01):
        super().__init__()
        if in_channels < 1 or base_channels < 1 or depth < 1:
            raise ValueError(f"SmallTargetSegmenter: in_channels, base_channels and depth must be >= 1, got "
                             f"{in_channels}, {base_channels}, {depth}")
        if bce_weight < 0 or iou_weight < 0 or bce_weight + iou_weight == 0:
            raise ValueError(f"SmallTargetSegmenter: loss weights must be >= 0 and not both 0, got "
                             f"bce_weight={bce_weight}, iou_weight={iou_weight}")
        if not 0.0 < prior_prob < 1.0:
            raise ValueError(f"SmallTargetSegmenter: prior_prob must be in (0, 1), got {prior_prob}")
        self.config = {"in_channels": int(in_channels), "base_channels": int(base_channels),
                       "depth": int(depth), "bce_weight": float(bce_weight), "iou_weight": float(iou_weight),
                       "prior_prob": float(prior_prob)}
        self.in_channels, self.num_classes, self.depth = int(in_channels), 1, int(depth)
        self.bce_weight, self.iou_weight = float(bce_weight), float(iou_weight)
        widths = [base_channels * 2 ** i for i in range(depth)]
        self.encoder = nn.ModuleList([ConvBlock(in_channels if i == 0 else widths[i - 1], widths[i])
                                      for i in range(depth)])
        # decoder[j] merges level depth-1-j (upsampled) with the skip of level depth-2-j
        self.decoder = nn.ModuleList([ConvBlock(widths[i + 1] + widths[i], widths[i])
                                      for i in reversed(range(depth - 1))])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Conv2d(widths[0], 1, 1)
        # Start every pixel at p = prior_prob (RetinaNet's prior-probability bias): targets cover well under
        # 1% of an infrared frame, and from p = 0.5 the first hundreds of steps only push the background
        # down (docs/vit_mclc.md: held-out IoU 0.00 -> 0.39 after 150 steps with the prior 0.01).
        nn.init.constant_(self.head.bias, -math.log((1 - prior_prob) / prior_prob))

    @classmethod
    def from_config(cls, config: dict) -> SmallTargetSegmenter:
        return cls(**config)

    def forward(self, images):
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"SmallTargetSegmenter expects images of shape (B, {self.in_channels}, H, W), "
                             f"got {tuple(images.shape)}")
        H, W = images.shape[2:]
        multiple = 2 ** (self.depth - 1)
        pad_h, pad_w = -H % multiple, -W % multiple
        x = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))                       # (B, base 2^i, H/2^i, W/2^i)
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(tinyml.cat([self.up(x), skips.pop()], dim=1))        # back up one level
        logits = self.head(x)                                               # (B, 1, H + pad_h, W + pad_w)
        return logits[:, :, :H, :W] if pad_h or pad_w else logits

    def _target_masks(self, targets, shape, device):
        B, _, H, W = shape
        if isinstance(targets, (list, tuple)):
            masks = []
            for i, t in enumerate(targets):
                if "mask" not in t:
                    raise ValueError(f"SmallTargetSegmenter.loss: target {i} has no 'mask' "
                                     f"(keys {sorted(t)})")
                masks.append(np.asarray(t["mask"]))
            masks = np.stack(masks) if masks else np.zeros((0, H, W))
        else:
            masks = np.asarray(targets.cpu().numpy() if isinstance(targets, tinyml.Tensor) else targets)
        if masks.shape != (B, H, W):
            raise ValueError(f"SmallTargetSegmenter.loss: target masks have shape {masks.shape}, logits need "
                             f"{(B, H, W)}")
        return tinyml.tensor((masks > 0).astype(np.float32)[:, None], device=device)

    def loss(self, raw, targets):
        """(total, parts): bce_weight * BCE-with-logits + iou_weight * soft-IoU (module docstring)."""
        g = self._target_masks(targets, raw.shape, raw.device)
        bce = F.binary_cross_entropy_with_logits(raw, g)
        iou = soft_iou_loss(raw, g)
        total = bce * self.bce_weight + iou * self.iou_weight
        return total, {"bce": float(bce.item()), "soft_iou": float(iou.item())}

    def predict_probabilities(self, images) -> np.ndarray:
        """Target probability per pixel (B, H, W) float32, in eval mode without gradients."""
        if not isinstance(images, tinyml.Tensor):  # numpy input goes to the device of the weights
            images = tinyml.tensor(np.asarray(images, dtype=np.float32), device=self.head.weight.device)
        was_training = self.training
        self.eval()
        try:
            with tinyml.no_grad():
                return self(images).sigmoid().cpu().numpy()[:, 0]
        finally:
            self.train(was_training)

    def predict_masks(self, images, threshold: float = 0.5) -> np.ndarray:
        """Binary masks (B, H, W) uint8: 1 where the target probability is >= threshold."""
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"predict_masks: threshold must be in (0, 1), got {threshold}")
        return (self.predict_probabilities(images) >= threshold).astype(np.uint8)

    def predict(self, images, conf_thres: float = 0.5, iou_thres: float = 0.6, max_det: int = 300):
        """The detectors' interface: per image (boxes (n, 4) xyxy float32 pixels, scores (n,), labels (n,)).

        Each 8-connected component of {p >= conf_thres} is one box (its tight pixel-edge box), scored by
        its highest probability, label 0; the `max_det` best are kept. Components do not overlap, so
        there is nothing for NMS to do and iou_thres is accepted for the interface only."""
        probs = self.predict_probabilities(images)
        out = []
        for prob in probs:
            labels, n = label_components(prob >= conf_thres)
            boxes, scores = np.zeros((n, 4), np.float32), np.zeros(n, np.float32)
            for c in range(n):
                ys, xs = np.nonzero(labels == c + 1)
                boxes[c] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                scores[c] = prob[ys, xs].max()
            keep = np.argsort(-scores, kind="stable")[:max_det]
            out.append((boxes[keep], scores[keep], np.zeros(len(keep), np.int64)))
        return out
