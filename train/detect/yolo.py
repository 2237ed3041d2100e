"""The ultralytics YOLO layout: root/images/{split}/*.png|jpg and root/labels/{split}/<stem>.txt.

    YoloDetection(root, split, class_names=None, on_error="raise", channels=None)

A label line is "class cx cy w h" (a box, normalised to [0, 1] by the image's width and height) or
"class x1 y1 x2 y2 ... xn yn" (a polygon, normalised, n >= 3, as ultralytics' segment labels: its box is
the polygon's bounds and its mask the polygon rasterised as pycocotools does). Class names come from
`class_names`, else root/data.yaml's `names` (a list `[a, b]`, a block of `- a` items or of `0: a`
pairs), else they are "0".."K-1" for the largest id K-1 found. Images are sorted by path; image_id is
the position in that order and points are box centres. An image with no label file, or an empty one, is
a background image; a label file with no image is a missing image. Errors: dataset_base.py.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np

from .coco_masks import polygon_to_mask
from .dataset_base import IMAGE_EXTENSIONS, BadFile, DetectionDataset, probe_image

__all__ = ["YoloDetection", "read_yolo_names"]


def read_yolo_names(path: str) -> list[str] | None:
    """The `names` of an ultralytics data.yaml, or None when it has none; reads the three usual forms."""
    with open(path) as f:
        lines = f.read().splitlines()
    unquote = lambda s: s.strip().strip("'\"")  # noqa: E731
    for i, line in enumerate(lines):
        if not line.startswith("names:"):
            continue
        rest = line[len("names:"):].split("#")[0].strip()
        if rest.startswith("["):
            return [unquote(s) for s in rest.strip("[]").split(",") if s.strip()]
        names: dict[int, str] = {}
        for item in lines[i + 1:]:
            if not item.startswith((" ", "\t")) or not item.strip():
                break
            body = item.strip()
            if body.startswith("- "):
                names[len(names)] = unquote(body[2:])
            elif ":" in body:
                key, value = body.split(":", 1)
                try:
                    names[int(key)] = unquote(value)
                except ValueError:
                    raise ValueError(f"{path}: names entry {body!r} is not 'index: name'") from None
        if sorted(names) != list(range(len(names))):
            raise ValueError(f"{path}: names must be indexed 0..K-1, got indices {sorted(names)}")
        return [names[k] for k in range(len(names))]
    return None


class YoloDetection(DetectionDataset):
    """YOLO-format detection set (see the module docstring); on_error and channels as in dataset_base.py."""

    format_name = "yolo"

    def __init__(self, root: str, split: str = "train", class_names: list[str] | None = None,
                 on_error: str = "raise", channels: int | None = None):
        super().__init__(root, split, on_error, channels)
        self.image_dir = os.path.join(root, "images", split)
        self.label_dir = os.path.join(root, "labels", split)
        if not os.path.isdir(self.image_dir):
            raise FileNotFoundError(f"YOLO image folder {self.image_dir} does not exist")
        yaml_path = os.path.join(root, "data.yaml")
        if class_names is None and os.path.isfile(yaml_path):
            class_names = read_yolo_names(yaml_path)
        known = None if class_names is None else len(class_names)
        images = sorted(f for f in os.listdir(self.image_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not os.path.isdir(self.label_dir):
            warnings.warn(f"{self.label_dir} does not exist: all {len(images)} images of {self.image_dir} "
                          f"are background images", stacklevel=2)
            label_files = []
        else:
            label_files = sorted(f for f in os.listdir(self.label_dir) if f.endswith(".txt"))
        stems = {os.path.splitext(f)[0] for f in images}
        orphans = [f for f in label_files if os.path.splitext(f)[0] not in stems]
        for f in orphans:
            path = os.path.join(self.label_dir, f)
            self._handle(path, BadFile(f"label file {path} has no image {os.path.splitext(f)[0]}.* in "
                                       f"{self.image_dir}", FileNotFoundError))
        largest = -1
        for name in images:
            label = os.path.join(self.label_dir, os.path.splitext(name)[0] + ".txt")
            try:
                record = self._record(os.path.join(self.image_dir, name), label, known)
            except BadFile as error:
                self._handle(label, error)
                continue
            record["image_id"] = len(self.records)
            largest = max([largest] + record["labels"])
            self.records.append(record)
        if class_names is None:
            class_names = [str(k) for k in range(largest + 1)]
        self.class_names = list(class_names)
        self.has_masks = any(record["polygons"] for record in self.records)
        self._finish(len(images) + len(orphans))

    def _record(self, image_path: str, label: str, known: int | None) -> dict:
        channels = probe_image(image_path)[2]
        boxes, labels, polygons = [], [], []
        lines = []
        if os.path.isfile(label):
            try:
                with open(label) as f:
                    lines = f.read().splitlines()
            except UnicodeDecodeError:
                raise BadFile(f"label file {label} is not text") from None
        for n, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5 and (len(parts) < 7 or len(parts) % 2 == 0):
                raise BadFile(f"{label}:{n}: expected 'class cx cy w h' or 'class x1 y1 ... xn yn' (a "
                              f"polygon, n >= 3), got {len(parts)} fields: {line.strip()!r}")
            try:
                values = [float(v) for v in parts]
            except ValueError:
                raise BadFile(f"{label}:{n}: not all fields are numbers: {line.strip()!r}") from None
            if not all(math.isfinite(v) for v in values):
                raise BadFile(f"{label}:{n}: a field is not finite: {line.strip()!r}")
            cls = values[0]
            if cls != int(cls) or cls < 0 or (known is not None and cls >= known):
                accepted = f"0..{known - 1}" if known else "a non-negative integer"
                raise BadFile(f"{label}:{n}: unknown class id {parts[0]} (the dataset's class ids are "
                              f"{accepted})")
            if len(parts) == 5:
                cx, cy, w, h = values[1:]
                box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
                polygon = None
            else:
                polygon = values[1:]
                box = [min(polygon[0::2]), min(polygon[1::2]), max(polygon[0::2]), max(polygon[1::2])]
            box = self._check_box(label, f"line {n} (normalised coordinates)", box, 1.0, 1.0)
            if box is None:
                continue
            boxes.append(box)
            labels.append(int(cls))
            polygons.append(polygon)
        return {"path": image_path, "file_name": os.path.basename(image_path), "boxes": boxes,
                "labels": labels, "polygons": [p for p in polygons if p is not None],
                "channels": channels}

    def _target(self, record: dict, h: int, w: int) -> dict:
        boxes = np.asarray(record["boxes"], dtype=np.float64).reshape(-1, 4) * [w, h, w, h]
        target = {"boxes": boxes.astype(np.float32), "labels": np.asarray(record["labels"], dtype=np.int64),
                  "points": ((boxes[:, :2] + boxes[:, 2:]) / 2).astype(np.float32),
                  "image_id": record["image_id"], "file_name": record["file_name"], "orig_size": (h, w)}
        if self.has_masks and self.masks:
            mask = np.zeros((h, w), dtype=np.uint8)
            for polygon in record["polygons"]:
                mask |= polygon_to_mask(np.asarray(polygon) * np.tile([w, h], len(polygon) // 2), h, w)
            target["mask"] = mask
        return target
