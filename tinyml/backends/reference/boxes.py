"""Reference box kernels (numpy), the oracle for csrc/boxes.cpp and triton/boxes.py.

    box_aspect_atan(w, h)            atan(w / h), elementwise (CIoU's aspect term; tinyml has no atan op)
    nms_forward(boxes, order, t, metric, inclusive)
        greedy non-maximum suppression over boxes (N, 4) xyxy visited in `order` (the score order the
        op computed): a visited box that is not suppressed is kept and suppresses every later box j
        with m(i, j) > t (inclusive=False, torchvision) or m(i, j) >= t (inclusive=True, sahi).
        Returns the kept indices (int64) in visiting order.
    nmm_forward(boxes, scores, order, t, metric, greedy)
        non-maximum merging (sahi's greedy_nmm / nmm): returns owner (N,) int64, the keeper each box
        was merged into (itself for a keeper), and claim (N,) int64, the sequence number of the claim
        (keepers too), so the op can list each keeper's merged boxes in sahi's order.
        greedy: a keeper claims every later unclaimed box with m >= t; merged boxes claim nothing.
        not greedy: every visited box i (keeper or merged) claims, for its keeper, the unclaimed boxes
        j in ascending index order that it dominates (score_j < score_i, or equal scores and
        (x1, y1, x2, y2)_j <= (x1, y1, x2, y2)_i lexicographically) with m(i, j) >= t.

The metric m is "iou" (inter / (area_i + area_j - inter)) or "ios" (inter / min(area_i, area_j)),
with the intersection's sides clamped at 0 (a NaN side, from a NaN coordinate of either box,
counts as 0; np.minimum / np.maximum propagate NaN, and the C++ and Triton kernels do the same).
Inclusive tests (sahi's) take m = 0 where the denominator is not positive; exclusive ones
(torchvision's) divide, so 0 / 0 = NaN never suppresses.
"""
import numpy as np

__all__ = ["box_aspect_atan", "nmm_forward", "nms_forward"]


def box_aspect_atan(w, h):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.arctan(w / h).astype(np.result_type(w, h), copy=False)


def _metric_row(boxes, areas, i, js, metric, safe):
    """m(i, j) for every j in js, in the boxes' dtype."""
    b = boxes[js]
    w = np.minimum(boxes[i, 2], b[:, 2]) - np.maximum(boxes[i, 0], b[:, 0])
    h = np.minimum(boxes[i, 3], b[:, 3]) - np.maximum(boxes[i, 1], b[:, 1])
    inter = np.where(w > 0, w, 0).astype(boxes.dtype) * np.where(h > 0, h, 0).astype(boxes.dtype)
    if metric == "iou":
        den = areas[i] + areas[js] - inter
    else:
        den = np.minimum(areas[i], areas[js])
    with np.errstate(divide="ignore", invalid="ignore"):
        if safe:
            return np.where(den > 0, inter / np.where(den > 0, den, 1), 0).astype(boxes.dtype)
        return inter / den


def _matches(row, threshold, inclusive):
    return row >= threshold if inclusive else row > threshold


def _areas(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms_forward(boxes, order, threshold, metric, inclusive):
    boxes = np.asarray(boxes)
    areas = _areas(boxes)
    thr = boxes.dtype.type(threshold)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1:]
        rest = rest[~suppressed[rest]]
        if len(rest):
            row = _metric_row(boxes, areas, i, rest, metric, inclusive)
            suppressed[rest[_matches(row, thr, inclusive)]] = True
    return np.asarray(keep, dtype=np.int64)


def _dominated(boxes, scores, i, js):
    """Which js box i may claim in sahi's nmm: lower score, or equal score and coordinates that do
    not sort after box i's."""
    lower = scores[js] < scores[i]
    equal = scores[js] == scores[i]
    after = np.zeros(len(js), dtype=bool)  # coords(j) > coords(i) lexicographically
    still_equal = np.ones(len(js), dtype=bool)
    for c in range(4):
        after |= still_equal & (boxes[js, c] > boxes[i, c])
        still_equal &= boxes[js, c] == boxes[i, c]
    return (lower | (equal & ~after)) & (js != i)


def nmm_forward(boxes, scores, order, threshold, metric, greedy):
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    n = len(boxes)
    areas = _areas(boxes)
    thr = boxes.dtype.type(threshold)
    owner = np.full(n, -1, dtype=np.int64)
    claim = np.full(n, -1, dtype=np.int64)
    seq = 0
    everyone = np.arange(n)
    for pos, i in enumerate(order):
        if owner[i] < 0:
            owner[i], claim[i] = i, seq
            seq += 1
        elif greedy:
            continue
        keeper = owner[i]
        if greedy:
            js = order[pos + 1:]
            js = js[owner[js] < 0]
        else:
            js = everyone[owner < 0]
            js = js[_dominated(boxes, scores, i, js)]
        if not len(js):
            continue
        hit = js[_matches(_metric_row(boxes, areas, i, js, metric, True), thr, True)]
        owner[hit] = keeper
        claim[hit] = np.arange(seq, seq + len(hit))
        seq += len(hit)
    return owner, claim
