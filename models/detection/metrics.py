"""Detection metrics in numpy: COCO box AP/AR as pycocotools' COCOeval computes it, and the infrared
small-target metrics (Pd/Fa, IoU/nIoU).

COCO (coco_evaluate): ground truth in COCO json form (images, annotations with bbox [x, y, w, h],
area, iscrowd, category_id, id; categories), detections in COCO results form (image_id,
category_id, bbox, score). Per image and category, detections are sorted by score (stable) and the
first maxDet kept; at each IoU threshold t in 0.50:0.05:0.95 a detection takes the best-IoU
unmatched ground truth with IoU >= min(t, 1 - 1e-10), non-ignored ones first (crowd ground truth
can match many detections, with IoU = intersection / detection area). Ground truth outside the
area range (or crowd) is ignored, and so are detections matched to it or unmatched and outside the
range. Over all images, detections sorted by score give cumulative TP/FP; precision is made
monotone (max over higher recall) and read at the 101 recall points 0:0.01:1 (the first detection
reaching each recall, 0 beyond the last); AP averages those over points, thresholds and categories
(categories without ground truth excluded), AR the final recall. Area ranges: all, small
(< 32^2), medium (32^2-96^2), large (> 96^2); maxDets 1, 10, 100. The twelve numbers are
pycocotools' summarize() stats in its order.

Infrared small targets (irstd_metrics), over binary masks:
  IoU   = sum_i |P_i n G_i| / sum_i |P_i u G_i|               (pixel level, the whole set)
  nIoU  = 1/N sum_i |P_i n G_i| / (|P_i u G_i| + eps)         (per image, then averaged; eps = 2^-52
                                                                as np.spacing(1) in ACM/DNANet's code)
  Pd    = detected targets / targets: a target (8-connected component of G) is detected when a
          predicted component's centroid lies within `distance` (3) pixels of its centroid; each
          predicted component detects at most one target (Dai et al. / DNANet's PD_FA)
  Fa    = pixels of predicted components that detect no target / all pixels
"""
from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

__all__ = ["COCO_STAT_NAMES", "box_iou_xywh", "coco_evaluate", "irstd_metrics", "label_components"]

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
                   "AR_small", "AR_medium", "AR_large")
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = ((0, 1e5 ** 2), (0, 32 ** 2), (32 ** 2, 96 ** 2), (96 ** 2, 1e5 ** 2))


def box_iou_xywh(dt: np.ndarray, gt: np.ndarray, iscrowd: np.ndarray) -> np.ndarray:
    """(D, G) IoU of [x, y, w, h] boxes in float64, pycocotools' bbIou: 0 without overlap, and the
    detection's area as the union for crowd ground truth."""
    dt, gt = np.asarray(dt, np.float64).reshape(-1, 4), np.asarray(gt, np.float64).reshape(-1, 4)
    w = np.minimum(dt[:, None, 0] + dt[:, None, 2], gt[None, :, 0] + gt[None, :, 2]) - \
        np.maximum(dt[:, None, 0], gt[None, :, 0])
    h = np.minimum(dt[:, None, 1] + dt[:, None, 3], gt[None, :, 1] + gt[None, :, 3]) - \
        np.maximum(dt[:, None, 1], gt[None, :, 1])
    inter = w * h
    da, ga = dt[:, 2] * dt[:, 3], gt[:, 2] * gt[:, 3]
    union = np.where(np.asarray(iscrowd, bool)[None, :], da[:, None], da[:, None] + ga[None, :] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def _load(obj):
    if isinstance(obj, (str, bytes)) or hasattr(obj, "__fspath__"):
        with open(obj) as f:
            return json.load(f)
    return obj


def _evaluate_image(gts, dts, ious, area, max_det):
    """pycocotools' evaluateImg for one (image, category, area range): dt matches and ignore flags."""
    if not gts and not dts:
        return None
    g_ignore = np.array([1 if (g["_crowd"] or g["area"] < area[0] or g["area"] > area[1]) else 0
                         for g in gts], dtype=np.int64)
    g_order = np.argsort(g_ignore, kind="mergesort")
    gts = [gts[i] for i in g_order]
    g_ignore = g_ignore[g_order]
    dts = dts[:max_det]  # already in score order
    crowd = [g["_crowd"] for g in gts]
    ious = ious[:len(dts)][:, g_order] if ious.size else ious
    T, G, D = len(IOU_THRS), len(gts), len(dts)
    gtm = np.zeros((T, G))
    dtm = np.zeros((T, D))
    dt_ignore = np.zeros((T, D))
    if ious.size:
        for ti, t in enumerate(IOU_THRS):
            for di, d in enumerate(dts):
                best, m = min([t, 1 - 1e-10]), -1
                for gi in range(G):
                    if gtm[ti, gi] > 0 and not crowd[gi]:
                        continue
                    if m > -1 and g_ignore[m] == 0 and g_ignore[gi] == 1:
                        break
                    if ious[di, gi] < best:
                        continue
                    best, m = ious[di, gi], gi
                if m == -1:
                    continue
                dt_ignore[ti, di] = g_ignore[m]
                dtm[ti, di] = gts[m]["id"]
                gtm[ti, m] = d["id"]
    outside = np.array([d["area"] < area[0] or d["area"] > area[1] for d in dts], dtype=bool).reshape(1, D)
    dt_ignore = np.logical_or(dt_ignore, np.logical_and(dtm == 0, np.repeat(outside, T, 0)))
    return dtm, dt_ignore, np.array([d["score"] for d in dts]), g_ignore


def _prepare(gt: dict, results: list):
    img_ids = sorted({im["id"] for im in gt.get("images", [])})
    cat_ids = sorted({c["id"] for c in gt.get("categories", [])})
    known = set(img_ids)
    unknown = sorted({r["image_id"] for r in results} - known)
    if unknown:
        raise ValueError(f"coco_evaluate: results refer to image ids {unknown[:5]} that are not in the "
                         f"ground truth's images")
    gts, dts = defaultdict(list), defaultdict(list)
    for a in gt.get("annotations", []):
        if "bbox" not in a or "area" not in a:
            raise ValueError(f"coco_evaluate: ground-truth annotation {a.get('id')} lacks 'bbox' or 'area'")
        gts[a["image_id"], a["category_id"]].append({**a, "_crowd": int(a.get("iscrowd", 0))})
    for i, r in enumerate(results):
        b = r["bbox"]
        dts[r["image_id"], r["category_id"]].append({**r, "id": i + 1, "area": b[2] * b[3], "_crowd": 0})
    return img_ids, cat_ids, gts, dts


def coco_evaluate(gt, results, max_dets=(1, 10, 100)) -> dict:
    """COCO box AP/AR (pycocotools' COCOeval(iouType='bbox') evaluate + accumulate + summarize).

    gt: a COCO json dict or a path; results: a list of {image_id, category_id, bbox, score} or a path.
    Returns {name: value} for COCO_STAT_NAMES, plus 'stats' (the 12 numbers), 'precision' (T, R, K, A, M)
    and 'recall' (T, K, A, M) arrays (-1 where undefined, as pycocotools)."""
    gt, results = _load(gt), _load(results)
    max_dets = tuple(int(m) for m in max_dets)
    if len(max_dets) != 3:
        raise ValueError(f"coco_evaluate: max_dets must hold three limits (summarize's AR1/AR10/AR100), got "
                         f"{max_dets}")
    img_ids, cat_ids, gts, dts = _prepare(gt, results)
    T, R, K, A, M = len(IOU_THRS), len(REC_THRS), len(cat_ids), len(AREA_RANGES), len(max_dets)
    precision, recall = -np.ones((T, R, K, A, M)), -np.ones((T, K, A, M))
    for k, cat in enumerate(cat_ids):
        per_image = {}
        for img in img_ids:
            g, d = gts.get((img, cat), []), dts.get((img, cat), [])
            order = np.argsort([-x["score"] for x in d], kind="mergesort")
            d = [d[i] for i in order][:max_dets[-1]]
            ious = box_iou_xywh([x["bbox"] for x in d], [x["bbox"] for x in g], [x["_crowd"] for x in g]) \
                if g and d else np.zeros((0, 0))
            per_image[img] = (g, d, ious)
        for a, area in enumerate(AREA_RANGES):
            evals = [_evaluate_image(g, d, ious, area, max_dets[-1]) for g, d, ious in per_image.values()]
            evals = [e for e in evals if e is not None]
            if not evals:
                continue
            for m, max_det in enumerate(max_dets):
                _accumulate(evals, max_det, precision, recall, k, a, m)
    stats = _summarize(precision, recall, max_dets)
    return {**dict(zip(COCO_STAT_NAMES, stats)), "stats": stats, "precision": precision, "recall": recall}


def _accumulate(evals, max_det, precision, recall, k, a, m):
    scores = np.concatenate([e[2][:max_det] for e in evals])
    order = np.argsort(-scores, kind="mergesort")
    dtm = np.concatenate([e[0][:, :max_det] for e in evals], axis=1)[:, order]
    dt_ignore = np.concatenate([e[1][:, :max_det] for e in evals], axis=1)[:, order]
    g_ignore = np.concatenate([e[3] for e in evals])
    npig = np.count_nonzero(g_ignore == 0)
    if npig == 0:
        return
    tps = np.logical_and(dtm, np.logical_not(dt_ignore))
    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ignore))
    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
    for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum)):
        nd = len(tp)
        rc = tp / npig
        pr = tp / (fp + tp + np.spacing(1))
        recall[t, k, a, m] = rc[-1] if nd else 0
        pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr  # monotone from the right
        inds = np.searchsorted(rc, REC_THRS, side="left")
        q = np.zeros(len(REC_THRS))
        valid = inds < nd
        q[valid] = pr[inds[valid]]
        precision[t, :, k, a, m] = q


def _summarize(precision, recall, max_dets):
    def mean(s):
        s = s[s > -1]
        return float(np.mean(s)) if s.size else -1.0

    def ap(iou=None, area=0, md=100):
        s = precision if iou is None else precision[np.where(iou == IOU_THRS)[0]]
        return mean(s[:, :, :, area, max_dets.index(md)])

    def ar(area=0, md=100):
        return mean(recall[:, :, area, max_dets.index(md)])

    m1, m10, m100 = max_dets  # summarize() reads maxDets[0], [1], [2]
    return np.array([ap(None, 0, m100), ap(0.5, 0, m100), ap(0.75, 0, m100), ap(None, 1, m100),
                     ap(None, 2, m100), ap(None, 3, m100), ar(0, m1), ar(0, m10), ar(0, m100), ar(1, m100),
                     ar(2, m100), ar(3, m100)])


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a 2-d binary mask: (labels with 1..n, 0 for background; n), by a
    breadth-first flood fill in row-major order of the first pixel (skimage.measure.label's numbering)."""
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"label_components: expected a 2-d mask, got shape {mask.shape}")
    labels = np.zeros(mask.shape, np.int64)
    h, w = mask.shape
    n = 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        n += 1
        labels[y0, x0] = n
        stack = [(y0, x0)]
        while stack:
            y, x = stack.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not labels[yy, xx]:
                        labels[yy, xx] = n
                        stack.append((yy, xx))
    return labels, n


def _centroids(labels: np.ndarray, n: int):
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    count = np.bincount(lab, minlength=n + 1)[1:]
    cy = np.bincount(lab, weights=ys, minlength=n + 1)[1:] / np.maximum(count, 1)
    cx = np.bincount(lab, weights=xs, minlength=n + 1)[1:] / np.maximum(count, 1)
    return np.stack([cy, cx], 1), count


def irstd_metrics(preds, targets, distance: float = 3.0) -> dict:
    """Pd, Fa, IoU and nIoU (module docstring) over a sequence of 2-d binary masks (prediction, truth)."""
    preds, targets = list(preds), list(targets)
    if len(preds) != len(targets):
        raise ValueError(f"irstd_metrics: {len(preds)} predictions but {len(targets)} targets")
    inter_total = union_total = pixels = 0
    n_targets = detected = false_pixels = 0
    niou = []
    for i, (p, g) in enumerate(zip(preds, targets)):
        p, g = np.asarray(p).astype(bool), np.asarray(g).astype(bool)
        if p.shape != g.shape or p.ndim != 2:
            raise ValueError(f"irstd_metrics: mask {i} has prediction shape {p.shape} and target shape "
                             f"{g.shape}; expected two equal 2-d shapes")
        inter, union = np.count_nonzero(p & g), np.count_nonzero(p | g)
        inter_total, union_total, pixels = inter_total + inter, union_total + union, pixels + p.size
        niou.append(inter / (union + np.spacing(1)))
        pl, pn = label_components(p)
        gl, gn = label_components(g)
        pc, parea = _centroids(pl, pn)
        gc, _ = _centroids(gl, gn)
        free = np.ones(pn, bool)
        for t in range(gn):  # each target takes the first free predicted component within `distance`
            d = np.linalg.norm(pc - gc[t], axis=1) if pn else np.zeros(0)
            hit = np.flatnonzero(free & (d < distance))
            if hit.size:
                free[hit[0]] = False
                detected += 1
        n_targets += gn
        false_pixels += int(parea[free].sum())
    return {"Pd": detected / n_targets if n_targets else float("nan"),
            "Fa": false_pixels / pixels if pixels else float("nan"),
            "IoU": inter_total / union_total if union_total else float("nan"),
            "nIoU": float(np.mean(niou)) if niou else float("nan")}
