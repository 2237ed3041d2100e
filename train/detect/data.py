"""Detection datasets on disk, in the two layouts `tinyml detect` reads, and the batch collation.

    CocoDetection(root, split)            root/{split}/*.png|jpg + root/annotations/instances_{split}.json
    YoloDetection(root, split)            root/images/{split}/* + root/labels/{split}/*.txt (yolo.py)
    open_detection_dataset(root, split)   whichever of the two the folder holds
    collate(samples)                      -> (images (B, C, H, W) float32, [target, ...])

A sample is (image, target): image float32 (C, H, W) in [0, 1]; target a dict with boxes (n, 4) float32
xyxy in pixels, labels (n,) int64 in 0..K-1, points (n, 2) float32 (x, y), mask (H, W) uint8 where the
annotations carry masks, image_id, file_name, orig_size (H, W). Errors and repairs: dataset_base.py.

COCO: category ids, sorted, map to labels 0..K-1 (dataset.category_ids[k] is label k's id, class_names
their names); image ids are kept. Crowd annotations (iscrowd = 1) are left out, as ultralytics' COCO
converter does. An annotation's "point" [x, y] (written by write_synthetic_ir) is its point, else its
box centre. Masks: polygons rasterised and RLEs decoded as pycocotools does (coco_masks.py), united per
image; images of a set with masks and none of their own get an all-zero mask.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .coco_masks import segmentation_to_mask
from .dataset_base import BadFile, DetectionDataset, load_image, probe_image
from .yolo import YoloDetection

__all__ = ["CocoDetection", "YoloDetection", "open_detection_dataset", "collate", "load_image"]


def _number(value, path: str, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadFile(f"{path}: {where}: {what} must be a number, got {value!r}")
    return float(value)


class CocoDetection(DetectionDataset):
    """COCO-format detection set: images in root/{split}/, annotations in
    root/annotations/instances_{split}.json.

    on_error="raise"|"skip" and channels=None|1|3 as in dataset_base.py."""

    format_name = "coco"

    def __init__(self, root: str, split: str = "train", on_error: str = "raise", channels: int | None = None):
        super().__init__(root, split, on_error, channels)
        self.annotation_file = os.path.join(root, "annotations", f"instances_{split}.json")
        if not os.path.isfile(self.annotation_file):
            raise FileNotFoundError(f"COCO annotation file {self.annotation_file} does not exist")
        try:
            with open(self.annotation_file) as f:
                coco = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{self.annotation_file} is not valid JSON: {e}") from None
        lists = isinstance(coco, dict) and all(
            isinstance(coco.get(k), list) for k in ("images", "categories"))
        if not lists:
            raise ValueError(f"{self.annotation_file} must be a JSON object with 'images' and 'categories' "
                             f"lists (and 'annotations')")
        jf = self.annotation_file
        try:
            categories = sorted(coco["categories"], key=lambda c: c["id"])
            self.category_ids = [int(c["id"]) for c in categories]
            self.class_names = [str(c.get("name", c["id"])) for c in categories]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{jf}: every category needs an integer 'id' (and a 'name')") from None
        if len(set(self.category_ids)) != len(self.category_ids):
            raise ValueError(f"{jf}: duplicate category ids in {self.category_ids}")
        label_of = {cid: k for k, cid in enumerate(self.category_ids)}
        by_image: dict = {}
        images = {}
        for entry in coco["images"]:
            if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
                raise ValueError(f"{jf}: every image needs 'id' and 'file_name', got {str(entry)[:200]}")
            images[entry["id"]] = entry
            by_image[entry["id"]] = []
        for ann in coco.get("annotations", []):
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            if image_id not in by_image:
                ann_id = ann.get("id") if isinstance(ann, dict) else ann
                self._handle(jf, BadFile(f"{jf}: annotation id {ann_id!r} refers to image_id {image_id!r}, "
                                         f"which 'images' does not list"))
                continue
            by_image[image_id].append(ann)
        self.has_masks = any(isinstance(a, dict) and "segmentation" in a and not a.get("iscrowd", 0)
                             for a in coco.get("annotations", []))
        for image_id, entry in images.items():
            path = self._image_path(entry["file_name"])
            try:
                self.records.append(self._record(path, entry, by_image[image_id], label_of))
            except BadFile as error:
                self._handle(path, error)
        self._finish(len(images))

    def _image_path(self, file_name: str) -> str:
        inside = os.path.join(self.root, self.split, file_name)
        if os.path.isfile(inside) or not os.path.isfile(os.path.join(self.root, file_name)):
            return inside
        return os.path.join(self.root, file_name)                     # file_name already holds the folder

    def _record(self, path: str, entry: dict, annotations: list, label_of: dict) -> dict:
        if not os.path.isfile(path):
            raise BadFile(f"image {path} (image id {entry['id']} of {self.annotation_file}) does not exist",
                          FileNotFoundError)
        height, width, channels = probe_image(path)
        if "width" in entry and "height" in entry:
            said = (_number(entry["height"], self.annotation_file, f"image id {entry['id']}", "height"),
                    _number(entry["width"], self.annotation_file, f"image id {entry['id']}", "width"))
            if said != (height, width):
                raise BadFile(f"image {path} is {width}x{height} (width x height) but {self.annotation_file} "
                              f"says {said[1]:g}x{said[0]:g}")
        boxes, labels, points, segms = [], [], [], []
        for ann in annotations:
            where = f"annotation id {ann.get('id')}"
            if ann.get("iscrowd", 0):
                continue
            if ann.get("category_id") not in label_of:
                raise BadFile(f"{self.annotation_file}: {where} (image {path}) has category_id "
                              f"{ann.get('category_id')!r}, not one of the categories {self.category_ids}")
            bbox = ann.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise BadFile(f"{self.annotation_file}: {where} (image {path}): bbox must be [x, y, w, h], "
                              f"got {bbox!r}")
            x, y, w, h = (_number(v, self.annotation_file, where, "bbox") for v in bbox)
            box = self._check_box(path, where, [x, y, x + w, y + h], width, height)
            if box is None:
                continue
            point = ann.get("point")
            if point is not None:
                if not isinstance(point, list) or len(point) != 2:
                    raise BadFile(f"{self.annotation_file}: {where}: point must be [x, y], got {point!r}")
                point = [_number(v, self.annotation_file, where, "point") for v in point]
            boxes.append(box)
            labels.append(label_of[ann["category_id"]])
            points.append(point if point is not None else [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            segms.append((where, ann.get("segmentation")))
        return {"path": path, "file_name": entry["file_name"], "image_id": entry["id"], "boxes": boxes,
                "labels": labels, "points": points, "segmentations": segms, "size": (height, width),
                "channels": channels}

    def _target(self, record: dict, h: int, w: int) -> dict:
        if record["size"] != (h, w):                     # the file was replaced after the dataset was built
            raise ValueError(f"image {record['path']} is {w}x{h} (width x height) but was "
                             f"{record['size'][1]}x{record['size'][0]} when the dataset was built")
        target = {"boxes": np.asarray(record["boxes"], dtype=np.float32).reshape(-1, 4),
                  "labels": np.asarray(record["labels"], dtype=np.int64),
                  "points": np.asarray(record["points"], dtype=np.float32).reshape(-1, 2),
                  "image_id": record["image_id"], "file_name": record["file_name"], "orig_size": (h, w)}
        if self.has_masks and self.masks:
            mask = np.zeros((h, w), dtype=np.uint8)
            for where, segm in record["segmentations"]:
                if segm is None or segm == []:
                    continue
                try:
                    mask |= segmentation_to_mask(segm, h, w)
                except ValueError as e:
                    raise ValueError(f"{self.annotation_file}: {where} (image {record['path']}): "
                                     f"{e}") from None
            target["mask"] = mask
        return target


def open_detection_dataset(root: str, split: str = "train", **kwargs):
    """CocoDetection when root/annotations/instances_{split}.json exists, YoloDetection when
    root/images/{split}/ does; keyword arguments go to the dataset."""
    coco = os.path.join(root, "annotations", f"instances_{split}.json")
    yolo = os.path.join(root, "images", split)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    if os.path.isfile(coco):
        return CocoDetection(root, split, **kwargs)
    if os.path.isdir(yolo):
        return YoloDetection(root, split, **kwargs)
    found = sorted(os.listdir(root))[:20]
    raise ValueError(f"{root} holds neither a COCO set (looked for {coco} with images in "
                     f"{os.path.join(root, split)}/) nor a YOLO set (looked for {yolo}/ with labels in "
                     f"{os.path.join(root, 'labels', split)}/); it holds {found}")


def collate(samples) -> tuple[np.ndarray, list[dict]]:
    """(images (B, C, H, W) float32, targets): stacks same-sized images (resize first, e.g. letterbox)."""
    samples = list(samples)
    if not samples:
        raise ValueError("collate: got no samples")
    shapes = [np.shape(image) for image, _ in samples]
    if any(len(s) != 3 for s in shapes) or len(set(shapes)) != 1:
        names = [t.get("file_name", i) for i, (_, t) in enumerate(samples)]
        raise ValueError(f"collate: images must all be (C, H, W) of one shape, got "
                         f"{list(zip(names, shapes))[:8]}; letterbox them to one size first (augment.py)")
    images = np.stack([np.asarray(image, dtype=np.float32) for image, _ in samples])
    return images, [target for _, target in samples]
