"""Box sets that stress the NMS sweep's candidate window (csrc/boxes_nms.h): thresholds equal to IoU values
that occur in the set (so m >= t and m > t differ, and boxes sit on the window's tightened edges), boxes
contained in others with side ratios equal to t, coordinates far from 0 (rounding), subnormal areas, a
few huge boxes among small ones, NaN / inf / inverted / empty boxes, and thresholds on both sides of the
window's 1e-3 switch. Each case: (boxes, scores, thresholds), numpy arrays in the case's dtype."""
import numpy as np


def _grid(rng, n, dtype):
    """Integer boxes on a small grid: many exact IoU ties, equal to thresholds picked from the set."""
    x1 = rng.integers(0, 24, n)
    y1 = rng.integers(0, 24, n)
    boxes = np.stack([x1, y1, x1 + rng.integers(1, 11, n), y1 + rng.integers(1, 11, n)], 1).astype(dtype)
    a = boxes[:, None, :]
    b = boxes[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iou = (w * h / (area[:, None] + area[None, :] - w * h)).astype(dtype)
    values = np.unique(iou[(iou > 0) & (iou < 1)])
    thr = rng.choice(values, 4, replace=False).tolist() if len(values) >= 4 else [0.5]
    return boxes, thr


def _nested(dtype):
    """Pairs of boxes, one inside the other, same heights, widths in ratio t: IoU = t exactly (as the
    kernel computes it in float32 and float64 alike), the case the window's bound is tight for. Each pair
    on its own row, the first box scoring higher; the inner box left-aligned, right-aligned, centred,
    then the outer one second: (boxes, thresholds, scores)."""
    rows = []
    for t, wide in [(0.25, 8.0), (0.5, 8.0), (0.75, 4.0), (0.625, 16.0)]:  # inner = t * wide is exact
        inner = t * wide
        for x0 in (0.0, 100.0, 1000.0, -37.5):
            for lo in (x0, x0 + wide - inner, x0 + (wide - inner) / 2):
                y = 20.0 * (len(rows) // 2)
                rows += [[x0, y, x0 + wide, y + 5], [lo, y, lo + inner, y + 5]]
                y += 20
                rows += [[lo, y, lo + inner, y + 5], [x0, y, x0 + wide, y + 5]]
    scores = np.tile([0.9, 0.8], len(rows) // 2)
    return np.array(rows, dtype), [0.25, 0.5, 0.75, 0.625], scores.astype(dtype)


def _odd(rng, boxes, dtype):
    boxes = boxes.copy()
    n = len(boxes)
    boxes[rng.integers(0, n, 3), 0] = np.nan
    boxes[rng.integers(0, n, 2), 3] = np.nan
    inv = rng.integers(0, n, 3)
    boxes[inv, 0], boxes[inv, 2] = boxes[inv, 2], boxes[inv, 0].copy()  # x2 < x1
    boxes[rng.integers(0, n, 3), 3] = boxes[rng.integers(0, n, 3), 1]  # zero height, some inverted
    boxes[rng.integers(0, n, 2)] = [-np.inf, 0, 5, 5]
    boxes[rng.integers(0, n, 1)] = [0, 0, np.inf, 5]
    boxes[rng.integers(0, n, 1)] = [-np.inf, -np.inf, np.inf, np.inf]
    boxes[4:8] = boxes[9]  # duplicates
    zero = np.flatnonzero(boxes[:, 0] == 0)
    boxes[zero[::2], 0] = -0.0  # -0 and +0 x1: equal keys, different bits (the index's radix sort)
    return boxes.astype(dtype)


def nms_cases(seed: int = 0):
    """[(name, boxes, scores, thresholds)] for float32 and float64."""
    rng = np.random.default_rng(seed)
    cases = []
    for dtype in (np.float32, np.float64):
        boxes, thr = _grid(rng, 150, dtype)
        cases.append(("grid", boxes, thr + [0.3, 0.5, 0.7, 1.0]))
        boxes, thr, scores = _nested(dtype)
        cases.append(("nested", boxes, thr + [1e-4, 1e-3, 1.0], scores))
        c = rng.uniform(0, 300, (300, 2))
        wh = rng.uniform(2, 40, (300, 2))
        plain = np.concatenate([c - wh / 2, c + wh / 2], 1)
        cases.append(("random", plain.astype(dtype), [1e-4, 1e-3, 0.05, 0.3, 0.5, 0.7, 0.95]))
        cases.append(("far from 0", (plain + 3e6).astype(dtype), [0.3, 0.5, 0.7]))
        cases.append(("tiny", (plain * 1e-21).astype(dtype), [0.3, 0.5, 0.7]))
        mixed = plain.copy()
        huge = [[0, 0, 290, 250], [10, 5, 300, 300], [-50, 0, 400, 40], [0, -1e4, 5, 1e4]]
        mixed[rng.integers(0, 300, 4)] = huge
        cases.append(("huge among small", mixed.astype(dtype), [0.01, 0.3, 0.7]))
        odd, thr = _grid(rng, 120, dtype)
        cases.append(("odd", _odd(rng, odd, dtype), thr + [1e-4, 0.5]))
    out = []
    for name, boxes, thresholds, *given in cases:
        scores = rng.uniform(0, 1, len(boxes)).astype(boxes.dtype)
        scores[rng.integers(0, len(boxes), len(boxes) // 4)] = 0.5  # ties
        out.append((name, boxes, given[0] if given else scores, thresholds))
    return out
