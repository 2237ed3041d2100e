"""Input checks and target packing shared by the detectors (yolo.py, centernet.py).

A target is a dict with "boxes" (n, 4) xyxy pixels and "labels" (n,) class indices 0 .. K-1 (and, for
CenterNet, optional "points" (n, 2) object centres); images are (B, C, H, W) float Tensors or arrays.
"""
from __future__ import annotations

import numpy as np

import tinyml
from tinyml.tensor import Tensor

__all__ = ["TTA_OPS", "as_image_tensor", "check_targets", "check_tta", "pad_targets"]

TTA_OPS = {"h": "horizontal flip", "v": "vertical flip", "t": "transpose"}


def as_image_tensor(who: str, images, in_channels: int, multiple: int) -> Tensor:
    """A float32 (B, C, H, W) Tensor with C == in_channels and H, W divisible by `multiple`."""
    if isinstance(images, np.ndarray):
        images = tinyml.tensor(np.asarray(images, dtype=np.float32))
    if not isinstance(images, Tensor):
        raise TypeError(f"{who}: expected images as a Tensor or numpy array, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{who}: expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    _, c, h, w = images.shape
    if c != in_channels:
        raise ValueError(f"{who}: images have {c} channels but the model was built with in_channels="
                         f"{in_channels} (images shape {tuple(images.shape)})")
    if h % multiple or w % multiple:
        raise ValueError(f"{who}: image size {h}x{w} is not divisible by the largest stride {multiple}; "
                         f"pad or resize to a multiple of {multiple}")
    return images if images.dtype == tinyml.float32 else images.float()


def check_tta(who: str, tta: str) -> str:
    """Test-time augmentation as letters of TTA_OPS, each at most once ("" none; "hvt": all 8 views of the
    dihedral group: every combination of the three)."""
    if not isinstance(tta, str) or any(c not in TTA_OPS for c in tta) or len(set(tta)) != len(tta):
        raise ValueError(f"{who}: tta must be a string of distinct letters from "
                         f"{', '.join(f'{k} ({v})' for k, v in TTA_OPS.items())}, got {tta!r}")
    return tta


def check_targets(who: str, targets, batch: int, num_classes: int) -> None:
    if not isinstance(targets, (list, tuple)) or len(targets) != batch:
        n = len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"{who}: expected a list of {batch} target dicts (one per image), got {n}")
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
            raise ValueError(f"{who}: target {i} must be a dict with 'boxes' and 'labels', got "
                             f"{sorted(t) if isinstance(t, dict) else type(t).__name__}")
        boxes, labels = np.asarray(t["boxes"]), np.asarray(t["labels"])
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            if not (boxes.size == 0 and labels.size == 0):
                raise ValueError(f"{who}: target {i} boxes must have shape (n, 4), got {boxes.shape}")
        n = boxes.shape[0] if boxes.ndim == 2 else 0
        if labels.reshape(-1).shape[0] != n:
            raise ValueError(f"{who}: target {i} has {n} boxes but labels of shape {labels.shape}")
        if n and (labels.min() < 0 or labels.max() >= num_classes):
            bad = labels[(labels < 0) | (labels >= num_classes)]
            raise ValueError(f"{who}: target {i} has class ids {sorted(set(bad.tolist()))} outside 0.."
                             f"{num_classes - 1} (num_classes={num_classes})")
        if n and not np.isfinite(boxes).all():
            raise ValueError(f"{who}: target {i} has non-finite box coordinates")
        if "points" in t and np.asarray(t["points"]).reshape(-1, 2).shape[0] != n:
            raise ValueError(f"{who}: target {i} has {n} boxes but points of shape "
                             f"{np.asarray(t['points']).shape}")


def pad_targets(targets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> labels (B, M) int64, boxes (B, M, 4) float32, mask (B, M) bool; M = the most boxes in an image."""
    counts = [np.asarray(t["labels"]).size for t in targets]
    m = max(counts, default=0)
    labels = np.zeros((len(targets), m), np.int64)
    boxes = np.zeros((len(targets), m, 4), np.float32)
    mask = np.zeros((len(targets), m), bool)
    for i, (t, n) in enumerate(zip(targets, counts)):
        if n:
            labels[i, :n] = np.asarray(t["labels"]).reshape(-1)
            boxes[i, :n] = np.asarray(t["boxes"], np.float32).reshape(-1, 4)
            mask[i, :n] = True
    return labels, boxes, mask
