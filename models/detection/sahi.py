"""SAHI, slicing aided hyper inference (Akyon et al. 2022), with the sahi package's semantics.

    get_slice_bboxes   overlapping slices [x1, y1, x2, y2] in row-major order: a step of
                       slice - int(overlap_ratio * slice) pixels, and the slices that would cross the
                       right or bottom edge shifted back inside the image (sahi.slicing.get_slice_bboxes)
    merge_predictions  sahi's postprocess: NMS, NMM or GREEDYNMM with IOU or IOS (>= threshold), per
                       category unless class_agnostic. NMS keeps; the merging ones take each keeper's
                       matched boxes in order and fold a box in only when it still matches the growing
                       keeper (sahi's has_match before merge_object_prediction_pair): the union box, the
                       higher score, and the category of the higher-scored box (the later one on ties)
    sliced_predict     runs a detector over the slices in batches (all slices have one size, so a batch
                       is one array: sahi runs them one at a time), shifts boxes by the slice offset,
                       adds a full-image pass when asked (and there is more than one slice), and merges

The index work (which box suppresses or absorbs which) runs on tinyml's nms_forward / nmm_forward
kernels (tinyml.ops.nms_match / greedy_nmm / nmm).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

import tinyml
from tinyml import ops

__all__ = ["get_slice_bboxes", "merge_predictions", "sliced_predict"]

POSTPROCESS_TYPES = ("NMS", "NMM", "GREEDYNMM")


def get_slice_bboxes(image_height: int, image_width: int, slice_height: int, slice_width: int,
                     overlap_height_ratio: float = 0.2, overlap_width_ratio: float = 0.2) -> list[list[int]]:
    """Slices [x_min, y_min, x_max, y_max] covering the image, as sahi.slicing.get_slice_bboxes."""
    sizes = (("image_height", image_height), ("image_width", image_width), ("slice_height", slice_height),
             ("slice_width", slice_width))
    for name, v in sizes:
        if int(v) != v or v < 1:
            raise ValueError(f"get_slice_bboxes: {name} must be a positive integer, got {v!r}")
    for name, r in (("overlap_height_ratio", overlap_height_ratio),
                    ("overlap_width_ratio", overlap_width_ratio)):
        if not 0 <= r < 1:
            raise ValueError(f"get_slice_bboxes: {name} must be in [0, 1), got {r}")
    y_overlap, x_overlap = int(overlap_height_ratio * slice_height), int(overlap_width_ratio * slice_width)
    slices = []
    y_min = y_max = 0
    while y_max < image_height:
        x_min = x_max = 0
        y_max = y_min + slice_height
        while x_max < image_width:
            x_max = x_min + slice_width
            if y_max > image_height or x_max > image_width:  # past an edge: shift the slice back inside
                x_max, y_max = min(image_width, x_max), min(image_height, y_max)
                x_min, y_min = max(0, x_max - slice_width), max(0, y_max - slice_height)
            slices.append([x_min, y_min, x_max, y_max])
            x_min = x_max - x_overlap
        y_min = y_max - y_overlap
    return slices


def _metric(a: np.ndarray, b: np.ndarray, match_metric: str) -> float:
    """sahi's calculate_bbox_iou / calculate_bbox_ios of two xyxy boxes (plain division)."""
    wh = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None)
    inter = wh[0] * wh[1]
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        if match_metric == "IOU":
            return inter / (area_a + area_b - inter)
        return inter / np.minimum(area_a, area_b)


def merge_predictions(boxes, scores, labels, postprocess_type: str = "GREEDYNMM", match_metric: str = "IOS",
                      match_threshold: float = 0.5, class_agnostic: bool = False):
    """Merge overlapping detections (xyxy boxes (N, 4), scores (N,), integer labels (N,)) as sahi's
    NMSPostprocess / NMMPostprocess / GreedyNMMPostprocess do. Returns (boxes, scores, labels) in numpy,
    in sahi's output order."""
    if postprocess_type not in POSTPROCESS_TYPES:
        raise ValueError(f"merge_predictions: postprocess_type must be one of {POSTPROCESS_TYPES}, got "
                         f"{postprocess_type!r}")
    if match_metric not in ("IOU", "IOS"):
        raise ValueError(f"merge_predictions: match_metric must be 'IOU' or 'IOS', got {match_metric!r}")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores, labels = np.asarray(scores, np.float64).reshape(-1), np.asarray(labels).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"merge_predictions: {len(boxes)} boxes, {len(scores)} scores and {len(labels)} "
                         f"labels")
    if len(boxes) <= 1:  # sahi postprocesses only lists of more than one prediction
        return boxes, scores, labels
    tb, ts = tinyml.tensor(boxes), tinyml.tensor(scores)
    cats = None if class_agnostic else labels
    if postprocess_type == "NMS":
        keep = ops.nms_match(tb, ts, match_threshold, match_metric, category_ids=cats).numpy()
        return boxes[keep], scores[keep], labels[keep]
    merge = ops.greedy_nmm if postprocess_type == "GREEDYNMM" else ops.nmm
    groups = merge(tb, ts, match_threshold, match_metric, category_ids=cats)
    out_b, out_s, out_l = [], [], []
    for keep, merged in groups.items():
        box, score, label = boxes[keep].copy(), scores[keep], labels[keep]
        for m in merged:
            if not _metric(box, boxes[m], match_metric) >= match_threshold:
                continue  # no longer matches the grown keeper: dropped, as in sahi
            label = label if score > scores[m] else labels[m]
            score = max(score, scores[m])
            box = np.concatenate([np.minimum(box[:2], boxes[m][:2]), np.maximum(box[2:], boxes[m][2:])])
        out_b.append(box)
        out_s.append(score)
        out_l.append(label)
    return np.asarray(out_b).reshape(-1, 4), np.asarray(out_s), np.asarray(out_l, dtype=labels.dtype)


def _as_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, tinyml.Tensor) else np.asarray(a)


def sliced_predict(image, predict: Callable, slice_height: int = 512, slice_width: int = 512,
                   overlap_height_ratio: float = 0.2, overlap_width_ratio: float = 0.2,
                   perform_standard_pred: bool = True, postprocess_type: str = "GREEDYNMM",
                   postprocess_match_metric: str = "IOS", postprocess_match_threshold: float = 0.5,
                   postprocess_class_agnostic: bool = False, batch_size: int = 8):
    """Sliced inference over one image (H, W) or (H, W, C), as sahi.predict.get_sliced_prediction.

    predict(batch) takes a numpy array (B, h, w[, C]) of crops and returns, per crop, (boxes (n, 4) xyxy in
    the crop's pixels, scores (n,), labels (n,)) (numpy arrays or tinyml tensors). Slices go through it
    `batch_size` at a time; the full image, when asked, in a batch of its own. Returns the merged
    (boxes, scores, labels) in image pixels."""
    image = _as_numpy(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"sliced_predict: expected an image of shape (H, W) or (H, W, C), got {image.shape}")
    if batch_size < 1:
        raise ValueError(f"sliced_predict: batch_size must be positive, got {batch_size}")
    h, w = image.shape[:2]
    slices = get_slice_bboxes(h, w, slice_height, slice_width, overlap_height_ratio, overlap_width_ratio)
    found_b, found_s, found_l = [], [], []

    def run(crops, offsets):
        outputs = predict(np.stack(crops))
        if len(outputs) != len(crops):
            raise ValueError(f"sliced_predict: predict returned {len(outputs)} results for a batch of "
                             f"{len(crops)}")
        for (bx, sc, lb), (ox, oy) in zip(outputs, offsets):
            bx = _as_numpy(bx).astype(np.float64).reshape(-1, 4)
            found_b.append(bx + np.array([ox, oy, ox, oy], np.float64))
            found_s.append(_as_numpy(sc).astype(np.float64).reshape(-1))
            found_l.append(_as_numpy(lb).reshape(-1))

    for start in range(0, len(slices), batch_size):
        group = slices[start:start + batch_size]
        run([image[y1:y2, x1:x2] for x1, y1, x2, y2 in group], [(x1, y1) for x1, y1, _, _ in group])
    if perform_standard_pred and len(slices) > 1:
        run([image], [(0, 0)])
    boxes = np.concatenate(found_b) if found_b else np.zeros((0, 4))
    scores = np.concatenate(found_s) if found_s else np.zeros(0)
    labels = np.concatenate(found_l) if found_l else np.zeros(0, np.int64)
    return merge_predictions(boxes, scores, labels, postprocess_type, postprocess_match_metric,
                             postprocess_match_threshold, postprocess_class_agnostic)
