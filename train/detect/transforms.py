"""Geometric transforms of a detection sample (image, target), deterministic; augment.py draws their
parameters at random.

    resize_image(image, h, w)           bilinear, half-pixel centres (cv2 INTER_LINEAR, torch bilinear
                                        with align_corners=False, no antialias)
    resize_mask(mask, h, w)             nearest with half-pixel centres (torch "nearest-exact")
    letterbox(image, target, size)      keep the aspect ratio, fit in size x size, pad evenly (ultralytics'
                                        LetterBox: new = round(w * r), pads split with round(d -/+ 0.1));
                                        target["letterbox"] = (sx, sy, pad_x, pad_y) for the inverse
    unletterbox_boxes(boxes, letterbox, orig_size)   predictions back to the original image's pixels
    hflip / vflip(image, target)        mirror: x -> W - x (boxes swap x1 and x2)
    place(image, target, sx, sy, dx, dy, out_h, out_w, pad_value)
                                        the general move: resize by (sx, sy), put its top-left corner at
                                        (dx, dy) of an out_h x out_w canvas, crop what falls outside;
                                        scale jitter, crops and mosaic tiles are all this
    filter_boxes(target, before, ...)   which boxes survive a move (as ultralytics' box_candidates)

Coordinates: pixel i spans [i, i + 1); a map x -> sx * x + dx moves boxes, points and image alike, so a
box keeps covering its object's pixels. A box that leaves the canvas is clipped; it is dropped when less
than min_visible of its moved area remains or its clipped width or height is <= min_wh. ultralytics
uses area_thr = 0.1 and wh_thr = 2 px; min_wh defaults to 0 here because a 2 px floor would drop
exactly the 1-2 px targets this package is for. A point outside its clipped box is clipped into it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["resize_image", "resize_mask", "letterbox", "unletterbox_boxes", "hflip", "vflip", "place",
           "filter_boxes", "PER_OBJECT_KEYS"]

PER_OBJECT_KEYS = ("boxes", "labels", "points", "scr")   # target entries with one row per object


def _linear_taps(n_in: int, n_out: int):
    """Source indices i0, i1 and weight of i1 for each output position (half-pixel centres, edge-clamped)."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_image(image: np.ndarray, out_h: int, out_w: int, rows=None, cols=None) -> np.ndarray:
    """(C, H, W) -> (C, out_h, out_w), bilinear with half-pixel centres; rows / cols (slices of the output)
    compute only that window of it, with the same values (each output pixel reads its own four taps)."""
    c, h, w = image.shape
    rows, cols = rows or slice(0, out_h), cols or slice(0, out_w)
    if (h, w) == (out_h, out_w):
        return image[:, rows, cols].copy()
    r0, r1, ry = (t[rows] for t in _linear_taps(h, out_h))
    c0, c1, cx = (t[cols] for t in _linear_taps(w, out_w))
    lines = image[:, r0, :] * (1 - ry)[None, :, None] + image[:, r1, :] * ry[None, :, None]
    return (lines[:, :, c0] * (1 - cx) + lines[:, :, c1] * cx).astype(image.dtype)


def resize_mask(mask: np.ndarray, out_h: int, out_w: int, rows=None, cols=None) -> np.ndarray:
    """(H, W) -> (out_h, out_w), nearest neighbour with half-pixel centres (torch's nearest-exact); rows /
    cols (slices of the output) compute only that window of it."""
    h, w = mask.shape
    rows, cols = rows or slice(0, out_h), cols or slice(0, out_w)
    if (h, w) == (out_h, out_w):
        return mask[rows, cols].copy()
    src_rows = np.minimum(np.floor((np.arange(out_h)[rows] + 0.5) * (h / out_h)).astype(np.int64), h - 1)
    src_cols = np.minimum(np.floor((np.arange(out_w)[cols] + 0.5) * (w / out_w)).astype(np.int64), w - 1)
    return mask[src_rows[:, None], src_cols[None, :]]


def _copy_target(target: dict) -> dict:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in target.items()}


def _select(target: dict, keep: np.ndarray) -> dict:
    for key in PER_OBJECT_KEYS:
        if key in target:
            target[key] = target[key][keep]
    return target


def filter_boxes(target: dict, moved: np.ndarray, out_h: int, out_w: int, min_visible: float = 0.1,
                 min_wh: float = 0.0) -> dict:
    """Clips the moved boxes (n, 4) to the canvas and keeps those with clipped area >= min_visible x moved
    area and clipped width and height > min_wh; points are clipped into their boxes."""
    clipped = moved.copy()
    clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, out_w)
    clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, out_h)
    wh = clipped[:, 2:] - clipped[:, :2]
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    keep = (wh[:, 0] > min_wh) & (wh[:, 1] > min_wh) & (wh[:, 0] * wh[:, 1] >= min_visible * area - 1e-9)
    target["boxes"] = clipped.astype(np.float32)
    if "points" in target:
        p = target["points"]
        target["points"] = np.stack([np.clip(p[:, 0], clipped[:, 0], clipped[:, 2]),
                                     np.clip(p[:, 1], clipped[:, 1], clipped[:, 3])], 1).astype(np.float32)
    return _select(target, keep)


def place(image: np.ndarray, target: dict, sx: float, sy: float, dx: int, dy: int, out_h: int, out_w: int,
          pad_value: float = 0.0, min_visible: float = 0.1, min_wh: float = 0.0, canvas=None):
    """Resizes the image to (round(H sy), round(W sx)) and pastes it at integer offset (dx, dy) into an
    out_h x out_w canvas (a new one filled with pad_value, or `canvas` = (image, mask) to paste into);
    boxes, points and mask follow; boxes are filtered by filter_boxes. Returns (image, target)."""
    c, h, w = image.shape
    new_h, new_w = max(1, int(round(h * sy))), max(1, int(round(w * sx)))
    sx, sy = new_w / w, new_h / h                                   # the scale the pixels really get
    if canvas is None:
        out = np.full((c, out_h, out_w), pad_value, dtype=image.dtype)
        out_mask = np.zeros((out_h, out_w), dtype=np.uint8) if "mask" in target else None
    else:
        out, out_mask = canvas
    # the overlap of [dx, dx + new_w) with [0, out_w), in canvas and in resized coordinates: only that
    # window of the resized image is computed (a crop of a large image costs the crop, not the image)
    x0, x1 = max(dx, 0), min(dx + new_w, out_w)
    y0, y1 = max(dy, 0), min(dy + new_h, out_h)
    if x1 > x0 and y1 > y0:
        rows, cols = slice(y0 - dy, y1 - dy), slice(x0 - dx, x1 - dx)
        out[:, y0:y1, x0:x1] = resize_image(image, new_h, new_w, rows, cols)
        if out_mask is not None and "mask" in target:
            out_mask[y0:y1, x0:x1] = resize_mask(target["mask"], new_h, new_w, rows, cols)
    t = _copy_target(target)
    moved = t["boxes"].astype(np.float64) * [sx, sy, sx, sy] + [dx, dy, dx, dy]
    if "points" in t:
        t["points"] = (t["points"].astype(np.float64) * [sx, sy] + [dx, dy]).astype(np.float32)
    t = filter_boxes(t, moved, out_h, out_w, min_visible, min_wh)
    if out_mask is not None:
        t["mask"] = out_mask
    return out, t


def letterbox(image: np.ndarray, target: dict | None, size: int, pad_value: float = 114 / 255):
    """Fits the image in size x size keeping its aspect ratio (scaling up or down) and pads the rest with
    pad_value (ultralytics' gray 114); returns (image, target) with target["letterbox"] set."""
    c, h, w = image.shape
    r = min(size / h, size / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    left, top = int(round((size - new_w) / 2 - 0.1)), int(round((size - new_h) / 2 - 0.1))
    t = {"boxes": np.zeros((0, 4), np.float32)} if target is None else target
    out, t = place(image, t, new_w / w, new_h / h, left, top, size, size, pad_value, min_visible=0.0,
                   min_wh=-1.0)
    t["letterbox"] = (new_w / w, new_h / h, float(left), float(top))
    return out, t


def unletterbox_boxes(boxes: np.ndarray, letterbox: tuple, orig_size: tuple) -> np.ndarray:
    """Boxes (n, 4) xyxy in the letterboxed image -> the original image's pixels, clipped to it (as
    ultralytics' scale_boxes); letterbox = target["letterbox"], orig_size = (H, W)."""
    sx, sy, pad_x, pad_y = letterbox
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = (boxes - [pad_x, pad_y, pad_x, pad_y]) / [sx, sy, sx, sy]
    out[:, 0::2] = np.clip(out[:, 0::2], 0, orig_size[1])
    out[:, 1::2] = np.clip(out[:, 1::2], 0, orig_size[0])
    return out.astype(np.float32)


def hflip(image: np.ndarray, target: dict):
    """Mirrors left-right: x -> W - x."""
    w = image.shape[-1]
    t = _copy_target(target)
    b = t["boxes"]
    t["boxes"] = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1).astype(np.float32)
    if "points" in t:
        t["points"] = np.stack([w - t["points"][:, 0], t["points"][:, 1]], 1).astype(np.float32)
    if "mask" in t:
        t["mask"] = np.ascontiguousarray(t["mask"][:, ::-1])
    return np.ascontiguousarray(image[:, :, ::-1]), t


def vflip(image: np.ndarray, target: dict):
    """Mirrors top-bottom: y -> H - y."""
    h = image.shape[-2]
    t = _copy_target(target)
    b = t["boxes"]
    t["boxes"] = np.stack([b[:, 0], h - b[:, 3], b[:, 2], h - b[:, 1]], 1).astype(np.float32)
    if "points" in t:
        t["points"] = np.stack([t["points"][:, 0], h - t["points"][:, 1]], 1).astype(np.float32)
    if "mask" in t:
        t["mask"] = np.ascontiguousarray(t["mask"][::-1, :])
    return np.ascontiguousarray(image[:, ::-1, :]), t
