"""`tinyml detect predict` as a function: a trained detector over an image or a folder of images.

    results = predict_source(model, info, "scenes/", out="preds", slice_size=128, overlap=0.2)

writes out/predictions.json (COCO results: image_id, category_id, bbox [x, y, w, h] in the image's pixels,
score) and out/<image stem>.png (the image with its boxes drawn, train/detect/draw.py), and returns the
results list.

image_id: the id that a COCO annotation file gives the image when one knows it (`annotations` given, or
the image lying in a COCO set's split folder root/<split>/, beside root/annotations/instances_<split>.json),
else the file name. category_id: the training set's (its COCO ids, or 1..K for a YOLO or synthetic set).

Without slicing each image is letterboxed to the run's img x img (scaled to fit) and its boxes mapped back.
With slice_size, SAHI (models/detection/sahi.py's sliced_predict): overlapping slice_size x slice_size
crops at native resolution plus a full-image pass (letterboxed as above), each letterboxed to img (a slice
of img px is not rescaled), run through the model `batch` crops at a time, merged by GREEDYNMM over IoS
0.5 (sahi's defaults).

tta: test-time augmentation letters (h, v, t; "" none), applied to every image or slice. The functions
default to "" (plain inference); the run's setting is load_detector's info["tta"], which `tinyml detect
predict` passes unless --tta is given.
"""
from __future__ import annotations

import json
import os

import numpy as np
from tinyml.models.detection.sahi import sliced_predict

from .dataset_base import IMAGE_EXTENSIONS, load_image
from .draw import draw_boxes
from .evaluate import coco_results, predict_images

__all__ = ["list_images", "known_image_ids", "predict_image", "predict_source"]


def list_images(source: str) -> list[str]:
    """The image files of `source`: the file itself, or the images in the folder (sorted, not recursive)."""
    if os.path.isfile(source):
        if not source.lower().endswith(IMAGE_EXTENSIONS):
            raise ValueError(f"--source {source}: not an image file (expected one of "
                             f"{', '.join(IMAGE_EXTENSIONS)})")
        return [source]
    if not os.path.isdir(source):
        raise FileNotFoundError(f"--source {source}: no such file or folder")
    files = sorted(os.path.join(source, f) for f in os.listdir(source)
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise ValueError(f"--source {source}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def known_image_ids(paths: list[str], annotations: str | None = None) -> dict[str, object]:
    """{image path: COCO image id} for the images a COCO annotation file knows: `annotations`, else each
    image's root/annotations/instances_<split>.json when it lies in root/<split>/."""
    files = {}
    if annotations is not None:
        files = {os.path.abspath(annotations): None}
    else:
        for p in paths:
            folder = os.path.dirname(os.path.abspath(p))
            split = os.path.basename(folder)
            guess = os.path.join(os.path.dirname(folder), "annotations", f"instances_{split}.json")
            if os.path.isfile(guess):
                files[guess] = folder
    by_name: dict[tuple, object] = {}
    for path, folder in files.items():
        try:
            with open(path) as f:
                coco = json.load(f)
            entries = coco["images"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"annotation file {path} cannot be read as COCO json ({e})") from None
        for entry in entries:
            if isinstance(entry, dict) and "file_name" in entry and "id" in entry:
                by_name[folder, entry["file_name"]] = entry["id"]
                by_name[folder, os.path.basename(entry["file_name"])] = entry["id"]
    out = {}
    for p in paths:
        folder = os.path.dirname(os.path.abspath(p))
        for key in ((folder, os.path.basename(p)), (None, os.path.basename(p))):
            if key in by_name:
                out[p] = by_name[key]
                break
    return out


def predict_image(model, image: np.ndarray, img: int, conf: float = 0.25, iou: float = 0.6,
                  max_det: int = 300, slice_size: int | None = None, overlap: float = 0.2, batch: int = 8,
                  tta: str = ""):
    """(boxes (n, 4) xyxy, scores (n,), labels (n,)) of one (C, H, W) image in its own pixels."""
    if slice_size is None:
        return predict_images(model, [image], img, conf, iou, max_det, tta)[0]

    def predict_crops(crops):  # sliced_predict hands (B, h, w, C) crops
        return predict_images(model, [c.transpose(2, 0, 1) for c in crops], img, conf, iou, max_det, tta)

    boxes, scores, labels = sliced_predict(image.transpose(1, 2, 0), predict_crops, slice_size, slice_size,
                                           overlap, overlap, perform_standard_pred=True, batch_size=batch)
    order = np.argsort(-scores, kind="stable")[:max_det]
    return (boxes[order].astype(np.float32), scores[order].astype(np.float32), labels[order].astype(np.int64))


def predict_source(model, info: dict, source: str, out: str, img: int | None = None, conf: float = 0.25,
                   iou: float = 0.6, max_det: int = 300, slice_size: int | None = None, overlap: float = 0.2,
                   batch: int = 8, annotations: str | None = None, draw: bool = True,
                   log=print, tta: str = "") -> list[dict]:
    """Predicts every image of `source` (module docstring); returns the COCO results written."""
    img = int(img or info["img"])
    paths = list_images(source)
    ids = known_image_ids(paths, annotations)
    category_ids, names = info["category_ids"], info["class_names"]
    os.makedirs(out, exist_ok=True)
    results = []
    for k, path in enumerate(paths):
        image, _ = load_image(path, model.in_channels)
        boxes, scores, labels = predict_image(model, image, img, conf, iou, max_det, slice_size, overlap,
                                              batch, tta)
        image_id = ids.get(path, os.path.basename(path))
        results.extend(coco_results(image_id, boxes, scores, labels, category_ids))
        if draw:
            draw_boxes(image, boxes, labels, scores, path=os.path.join(out, os.path.splitext(
                os.path.basename(path))[0] + ".png"), class_names=names)
        log(f"{k + 1}/{len(paths)} {path}: {len(scores)} detection(s)")
    tmp = os.path.join(out, f"predictions.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(results, f)
    os.replace(tmp, os.path.join(out, "predictions.json"))
    return results
