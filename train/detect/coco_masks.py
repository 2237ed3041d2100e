"""COCO segmentation masks in numpy, bit for bit as pycocotools' maskApi.c (no pycocotools needed).

    rle_encode(mask) -> {"size": [h, w], "counts": str}     compressed RLE (rleEncode + rleToString)
    rle_decode(rle) -> (h, w) uint8                          compressed (str) or uncompressed (list) counts
    polygon_to_mask(polygon, h, w) -> (h, w) uint8           rleFrPoly's rasterisation of [x1, y1, x2, ...]
    segmentation_to_mask(segm, h, w) -> (h, w) uint8         what COCO.annToMask does: polygons (merged),
                                                             uncompressed or compressed RLE

An RLE lists alternating run lengths of 0s and 1s over the mask in column-major order, starting with 0s.
The compressed string stores each count (from the fourth on, as the difference to the count two
before) in 5-bit groups, 0x20 = "more groups follow", 0x10 of the last group = sign, each plus 48.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["rle_encode", "rle_decode", "polygon_to_mask", "segmentation_to_mask"]


def _counts_from_mask(mask: np.ndarray) -> list[int]:
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts                                       # runs start with zeros
    return counts


def _counts_to_string(counts: list[int]) -> str:
    out = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            group = x & 0x1F
            x >>= 5                                                  # arithmetic shift, as C's on a long
            more = (x != -1) if group & 0x10 else (x != 0)
            out.append(chr((group | (0x20 if more else 0)) + 48))
    return "".join(out)


def _counts_from_string(s: str) -> list[int]:
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError(f"truncated compressed RLE counts string {s!r}")
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: np.ndarray) -> dict:
    """A (h, w) mask as COCO compressed RLE {"size": [h, w], "counts": str}."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode: mask must be 2-D (h, w), got shape {mask.shape}")
    counts = _counts_to_string(_counts_from_mask(mask))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_decode(rle: dict) -> np.ndarray:
    """The (h, w) uint8 mask of an RLE with string (compressed) or list (uncompressed) counts."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"an RLE needs 'size': [h, w] and 'counts', got {rle!r}"[:300]) from None
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    counts = _counts_from_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if any(c < 0 for c in counts) or sum(counts) != h * w:
        raise ValueError(f"RLE counts sum to {sum(counts)} with size [{h}, {w}] (need {h * w}, no negatives)")
    values = np.arange(len(counts)) % 2
    flat = np.repeat(values.astype(np.uint8), counts)
    return flat.reshape((w, h)).T.copy()


def polygon_to_mask(polygon, h: int, w: int) -> np.ndarray:
    """Rasterises a COCO polygon [x1, y1, x2, y2, ...] as pycocotools' rleFrPoly: the boundary traced at
    5x resolution, and the column-wise crossings downsampled into runs."""
    xy = np.asarray(polygon, dtype=np.float64).ravel()
    if xy.size < 4 or xy.size % 2:
        raise ValueError(f"a polygon needs an even number (>= 4) of coordinates, got {xy.size}")
    k, scale = xy.size // 2, 5.0
    x = [int(scale * v + 0.5) for v in xy[0::2]]
    y = [int(scale * v + 0.5) for v in xy[1::2]]
    x.append(x[0])
    y.append(y[0])
    u, v = [], []
    for j in range(k):                                               # dense boundary points
        xs, xe, ys, ye = x[j], x[j + 1], y[j], y[j + 1]
        dx, dy = abs(xe - xs), abs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            xs, xe, ys, ye = xe, xs, ye, ys
        if dx >= dy:
            s = (ye - ys) / dx if dx else 0.0
            for d in range(dx + 1):
                t = dx - d if flip else d
                u.append(t + xs)
                v.append(int(ys + s * t + 0.5))
        else:
            s = (xe - xs) / dy
            for d in range(dy + 1):
                t = dy - d if flip else d
                v.append(t + ys)
                u.append(int(xs + s * t + 0.5))
    starts = []
    for j in range(1, len(u)):                                       # crossings of pixel columns
        if u[j] == u[j - 1]:
            continue
        xd = (u[j] if u[j] < u[j - 1] else u[j] - 1)
        xd = (xd + 0.5) / scale - 0.5
        if math.floor(xd) != xd or xd < 0 or xd > w - 1:
            continue
        yd = (v[j] if v[j] < v[j - 1] else v[j - 1])
        yd = (yd + 0.5) / scale - 0.5
        yd = math.ceil(min(max(yd, 0.0), float(h)))
        starts.append(int(xd) * h + int(yd))
    a = sorted(starts + [h * w])
    diffs, p = [], 0
    for t in a:
        diffs.append(t - p)
        p = t
    counts, j = [diffs[0]], 1
    while j < len(diffs):                                            # merge zero-length runs
        if diffs[j] > 0:
            counts.append(diffs[j])
            j += 1
        else:
            j += 1
            if j < len(diffs):
                counts[-1] += diffs[j]
                j += 1
    return rle_decode({"size": [h, w], "counts": counts})


def segmentation_to_mask(segm, h: int, w: int) -> np.ndarray:
    """The (h, w) uint8 mask of a COCO annotation's segmentation (a list of polygons or an RLE dict)."""
    if isinstance(segm, list):
        mask = np.zeros((h, w), dtype=np.uint8)
        for polygon in segm:
            mask |= polygon_to_mask(polygon, h, w)
        return mask
    if isinstance(segm, dict):
        mask = rle_decode(segm)
        if mask.shape != (h, w):
            raise ValueError(f"RLE size {list(mask.shape)} differs from the image's [{h}, {w}]")
        return mask
    raise ValueError(f"a segmentation must be a list of polygons or an RLE dict, got {type(segm).__name__}")
