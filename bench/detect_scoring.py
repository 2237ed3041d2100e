"""Scoring for bench/detect.py: COCO AP50 overall and on targets under 8 px, and recall of targets <= 4 px.

"AP50 <8px": AP50 with ground truth of max side >= 8 px ignored (marked crowd, as COCO ignores crowds:
detections on them count neither way). Recall <= 4 px: ground-truth boxes of max side <= 4 matched one to one
by a detection of score >= 0.25 with IoU >= 0.5 (greedy by score), and by centre distance <= 3 px.
"""
from __future__ import annotations

import numpy as np

__all__ = ["small_only", "recall", "score"]


def small_only(gt: dict, max_side: float = 8.0) -> dict:
    """The ground truth with every box of max side >= max_side marked crowd (ignored by COCO matching)."""
    anns = [{**a, "iscrowd": int(max(a["bbox"][2], a["bbox"][3]) >= max_side)} for a in gt["annotations"]]
    return {**gt, "annotations": anns}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def recall(truth, found, max_side: float = 4.0) -> dict:
    """Recall of truth boxes with max side <= max_side: one-to-one greedy matching by score, IoU >= 0.5 /
    centre distance <= 3 px."""
    hit_iou = hit_centre = total = 0
    for t, (b, s) in zip(truth, found):
        t, b, s = np.asarray(t).reshape(-1, 4), np.asarray(b).reshape(-1, 4), np.asarray(s)
        t = t[np.maximum(t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]) <= max_side]
        total += len(t)
        if not len(t) or not len(b):
            continue
        b = b[np.argsort(-s, kind="stable")]
        iou = _iou(b, t)
        centres = (b[:, None, :2] + b[:, None, 2:]) - (t[None, :, :2] + t[None, :, 2:])
        dist = np.linalg.norm(centres / 2, axis=-1)
        for table, ok, counter in ((iou, iou >= 0.5, "iou"), (-dist, dist <= 3.0, "centre")):
            free = np.ones(len(t), bool)
            for d in range(len(b)):
                cand = np.flatnonzero(free & ok[d])
                if cand.size:
                    free[cand[np.argmax(table[d, cand])]] = False
            if counter == "iou":
                hit_iou += int((~free).sum())
            else:
                hit_centre += int((~free).sum())
    return {"targets": total, "recall_iou50": hit_iou / max(total, 1),
            "recall_centre3px": hit_centre / max(total, 1)}


def score(results: list, gt: dict) -> dict:
    from tinyml.models.detection.metrics import coco_evaluate

    everything, small = coco_evaluate(gt, results), coco_evaluate(small_only(gt), results)
    return {"AP50": everything["AP50"], "AP": everything["AP"], "AP_small": everything["AP_small"],
            "AP50_under8px": small["AP50"]}
