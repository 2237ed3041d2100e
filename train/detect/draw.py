"""Drawing detections on an image (what `tinyml detect predict` writes beside predictions.json).

    draw_boxes(image, boxes, labels=None, scores=None, path=None, class_names=None) -> (H, W, 3) uint8

The rectangle is drawn `margin` px outside the box (2 by default), so that a 1-3 px target stays
visible inside it; colour by class (a fixed palette); "name score" written above the box, or below it
when the box touches the top. Gray images are shown as RGB. With `path`, the picture is saved as PNG.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["draw_boxes", "PALETTE"]

PALETTE = ((255, 56, 56), (50, 205, 50), (30, 144, 255), (255, 178, 29), (207, 55, 255), (0, 212, 187),
           (255, 112, 31), (132, 56, 255), (255, 149, 200), (146, 204, 23))


def _to_rgb(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"draw_boxes: image must be (H, W) or (C, H, W) with C = 1 or 3, "
                         f"got shape {x.shape}")
    if x.dtype != np.uint8:
        x = (np.clip(np.nan_to_num(x.astype(np.float32), nan=0.0), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(x, 3, axis=0).transpose(1, 2, 0) if x.shape[0] == 1
                                else x.transpose(1, 2, 0))


def draw_boxes(image: np.ndarray, boxes, labels=None, scores=None, path: str | None = None,
               class_names: list[str] | None = None, margin: int = 2, line_width: int = 1) -> np.ndarray:
    """Draws xyxy pixel boxes (n, 4) on a float image in [0, 1] (or uint8); labels (n,) pick colours
    and names, scores (n,) are printed with two decimals. Returns the picture; saves it when path is given."""
    from PIL import Image, ImageDraw, ImageFont  # Pillow: loaded only when pictures are drawn

    rgb = _to_rgb(image)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    n = len(boxes)
    for name, values in (("labels", labels), ("scores", scores)):
        if values is not None and len(values) != n:
            raise ValueError(f"draw_boxes: {n} boxes but {len(values)} {name}")
    if not np.isfinite(boxes).all():
        bad = boxes[~np.isfinite(boxes).all(1)][:3].tolist()
        raise ValueError(f"draw_boxes: boxes must be finite, got {bad}")
    pil = Image.fromarray(rgb)
    canvas = ImageDraw.Draw(pil)
    font = ImageFont.load_default()
    h, w = rgb.shape[:2]
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        label = int(labels[k]) if labels is not None else 0
        colour = PALETTE[label % len(PALETTE)]
        # pixels x1 .. x2 - 1 hold the object; the outline runs `margin` px outside them
        left, top = int(np.floor(x1)) - margin, int(np.floor(y1)) - margin
        right, bottom = int(np.ceil(x2)) - 1 + margin, int(np.ceil(y2)) - 1 + margin
        canvas.rectangle([left, top, right, bottom], outline=colour, width=line_width)
        text = []
        if labels is not None:
            text.append(class_names[label] if class_names is not None and 0 <= label < len(class_names)
                        else str(label))
        if scores is not None:
            text.append(f"{float(scores[k]):.2f}")
        if text:
            words = " ".join(text)
            tw, th = canvas.textbbox((0, 0), words, font=font)[2:]
            ty = top - th - 1 if top - th - 1 >= 0 else min(bottom + 2, max(h - th, 0))
            tx = min(max(left, 0), max(w - tw, 0))
            canvas.text((tx, ty), words, fill=colour, font=font)
    out = np.asarray(pil)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        pil.save(path, format="PNG")
    return out
