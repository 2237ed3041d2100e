"""Writing detection sets to disk: images as PNG, annotations in the COCO or YOLO layout.

    save_image(path, image, bit_depth=8)       (C, H, W) float in [0, 1] -> grayscale or RGB PNG/JPEG
    write_coco_split(root, split, dataset)     root/{split}/<name> + root/annotations/instances_{split}.json
    write_yolo_split(root, split, dataset)     root/images/{split}/<name> + root/labels/{split}/<stem>.txt
    write_yolo_yaml(root, class_names)         root/data.yaml as ultralytics reads it

A dataset here is anything with __len__, __getitem__ -> (image, target) in the shared sample format
(train/detect/__init__.py) and class_names. COCO category ids are 1..K (index + 1), bbox [x, y, w, h],
area = mask pixels when a mask is known (else w * h), segmentation = the instance's compressed RLE (the
target mask restricted to the box, so instances whose grown boxes overlap would share pixels; SyntheticIR's
never do). YOLO lines are "class cx cy w h", normalised, 6 decimals, as ultralytics writes them.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .coco_masks import rle_encode

__all__ = ["save_image", "write_coco_split", "write_yolo_split", "write_yolo_yaml"]


def save_image(path: str, image: np.ndarray, bit_depth: int = 8) -> None:
    """Writes a (C, H, W) image in [0, 1] (C = 1 or 3) as PNG (8 or 16 bits; 16 for C = 1 only) or JPEG."""
    from PIL import Image  # Pillow: loaded only when images are written

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"save_image: expected a (C, H, W) image with C = 1 or 3, got shape {image.shape}")
    if bit_depth not in (8, 16) or (bit_depth == 16 and image.shape[0] != 1):
        raise ValueError(f"save_image: bit_depth must be 8, or 16 for one channel; got {bit_depth} with "
                         f"{image.shape[0]} channels")
    x = np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0)
    if bit_depth == 16:
        pil = Image.fromarray((x[0] * 65535 + 0.5).astype(np.uint16))
    else:
        pixels = (x * 255 + 0.5).astype(np.uint8)
        pil = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # zlib level 1: noisy sensor images hardly compress, and level 6 costs ~4x the time (lossless either way)
    pil.save(path, **({"compress_level": 1} if path.lower().endswith(".png") else {}))


def _atomic_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)                                            # a reader never sees half a file


def write_coco_split(root: str, split: str, dataset, bit_depth: int = 8) -> str:
    """Writes the images and root/annotations/instances_{split}.json; returns the json's path."""
    os.makedirs(os.path.join(root, split), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, annotations = [], []
    for i in range(len(dataset)):
        image, target = dataset[i]
        name = target.get("file_name", f"{i:06d}.png")
        image_id = int(target.get("image_id", i + 1))
        h, w = image.shape[-2:]
        save_image(os.path.join(root, split, name), image, bit_depth=bit_depth)
        images.append({"id": image_id, "file_name": name, "height": int(h), "width": int(w)})
        mask = target.get("mask")
        for j, (box, label) in enumerate(zip(target["boxes"], target["labels"])):
            x1, y1, x2, y2 = (float(v) for v in box)
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            if "points" in target:
                ann["point"] = [float(v) for v in target["points"][j]]
            if mask is not None:
                inside = np.zeros((h, w), dtype=np.uint8)
                r0, r1 = int(np.floor(y1)), int(np.ceil(y2))
                c0, c1 = int(np.floor(x1)), int(np.ceil(x2))
                inside[r0:r1, c0:c1] = mask[r0:r1, c0:c1]
                ann["segmentation"] = rle_encode(inside)
                ann["area"] = float(inside.sum())
            annotations.append(ann)
    categories = [{"id": k + 1, "name": name, "supercategory": "object"}
                  for k, name in enumerate(dataset.class_names)]
    path = os.path.join(root, "annotations", f"instances_{split}.json")
    _atomic_json(path, {"images": images, "annotations": annotations, "categories": categories})
    return path


def write_yolo_split(root: str, split: str, dataset, bit_depth: int = 8) -> str:
    """Writes root/images/{split}/* and root/labels/{split}/*.txt (empty for an empty image); returns the
    labels folder."""
    image_dir = os.path.join(root, "images", split)
    label_dir = os.path.join(root, "labels", split)
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    for i in range(len(dataset)):
        image, target = dataset[i]
        name = target.get("file_name", f"{i:06d}.png")
        h, w = image.shape[-2:]
        save_image(os.path.join(image_dir, name), image, bit_depth=bit_depth)
        lines = []
        for box, label in zip(target["boxes"], target["labels"]):
            x1, y1, x2, y2 = (float(v) for v in box)
            lines.append(f"{int(label)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                         f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n")
        with open(os.path.join(label_dir, os.path.splitext(name)[0] + ".txt"), "w") as f:
            f.writelines(lines)
    return label_dir


def write_yolo_yaml(root: str, class_names: list[str]) -> str:
    """root/data.yaml: path, train/val image folders and the class names (YAML that ultralytics loads)."""
    lines = [f"path: {json.dumps(os.path.abspath(root))}", "train: images/train", "val: images/val", "names:"]
    lines += [f"  {k}: {json.dumps(name)}" for k, name in enumerate(class_names)]
    path = os.path.join(root, "data.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
