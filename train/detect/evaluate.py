"""Evaluating a detector on a dataset: COCO box AP (models/detection/metrics.py's coco_evaluate, equal to
pycocotools) and the infrared small-target Pd / Fa, as `tinyml detect eval` and training's validation do.

    preds = predict_dataset(model, dataset, img=256)       per image (boxes, scores, labels) in its pixels
    metrics = evaluate_detector(model, dataset, img=256)   {"AP", "AP50", ..., "AP_small", "Pd", "Fa", ...}
    print(format_metrics(metrics))                          the COCO summary table, then Pd / Fa

Images are letterboxed to img x img for the model and its boxes mapped back to the image's own pixels
(transforms.unletterbox_boxes), so a dataset of any image size is scored in its own coordinates. tta: the
detectors' test-time augmentation, "" (none) by default; training's validation passes the run's setting,
`tinyml detect eval` the run's (load_detector's info["tta"]) unless --tta is given.

Ground truth: the dataset's targets as it reads them (COCO crowd annotations left out, boxes clipped to
the image), area = the mask's pixels inside the box where the dataset has masks, else w h; categories are
the dataset's own ids (category_ids for a COCO set, label + 1 for a YOLO set, as write_coco_split numbers
them). Detections for AP are kept down to score `ap_conf` (0.001, ultralytics' val).

Pd / Fa (irstd_metrics) are computed from boxes, since a box detector predicts no mask: the predicted map
of an image is its detections of score >= `pd_conf` (0.25, predict's default) filled in, the truth is the
dataset's mask where it has one, else its boxes filled in. Pd = targets whose centroid has a predicted
component within 3 px / targets; Fa = pixels of predicted components that detect nothing / pixels.
"""
from __future__ import annotations

import numpy as np
from tinyml.models.detection.metrics import COCO_STAT_NAMES, coco_evaluate, irstd_metrics

from .augment import letterbox, unletterbox_boxes

__all__ = ["predict_dataset", "ground_truth", "category_ids_of", "coco_results", "boxes_to_mask",
           "evaluate_detector", "format_metrics", "predict_images"]

AP_CONF = 0.001  # detections kept for AP (ultralytics' val conf); a higher floor cuts the PR curve short
PD_CONF = 0.25  # detections that count as found for Pd / Fa (predict's default threshold)


def category_ids_of(dataset) -> list[int]:
    """The dataset's category id of each label: a COCO set's own ids, else 1..K (write_coco_split's)."""
    ids = getattr(dataset, "category_ids", None)
    return [int(i) for i in ids] if ids is not None else list(range(1, len(dataset.class_names) + 1))


def predict_images(model, images: list[np.ndarray], img: int, conf: float, iou: float = 0.6,
                   max_det: int = 300, tta: str = "") -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """model.predict on (C, H, W) images letterboxed to img x img; boxes mapped back to each image's
    pixels. tta: the detectors' test-time augmentation letters ("h", "hv", "hvt"; "" none)."""
    boxed = [letterbox(np.asarray(image, np.float32), None, img) for image in images]
    batch = np.stack([b[0] for b in boxed])  # (B, C, img, img)
    out = []
    preds = model.predict(batch, conf, iou, max_det, **({"tta": tta} if tta else {}))
    for (boxes, scores, labels), (_, t), image in zip(preds, boxed, images):
        out.append((unletterbox_boxes(boxes, t["letterbox"], image.shape[-2:]), scores, labels))
    return out


def predict_dataset(model, dataset, img: int, batch: int = 8, conf: float = AP_CONF, iou: float = 0.6,
                    max_det: int = 300, on_batch=None, tta: str = "") -> list[tuple[dict, tuple]]:
    """[(target, (boxes (n, 4) xyxy, scores (n,), labels (n,)))] for every image of the dataset, in order;
    on_batch(done, total) after each batch (progress)."""
    out = []
    for start in range(0, len(dataset), batch):
        samples = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        preds = predict_images(model, [s[0] for s in samples], img, conf, iou, max_det, tta)
        out.extend((t, p) for (_, t), p in zip(samples, preds))
        if on_batch is not None:
            on_batch(len(out), len(dataset))
    return out


def ground_truth(targets: list[dict], category_ids: list[int], class_names: list[str]) -> dict:
    """COCO ground-truth json (images, annotations, categories) from dataset targets."""
    images, annotations = [], []
    for t in targets:
        h, w = (int(v) for v in t["orig_size"])
        images.append({"id": t["image_id"], "file_name": t.get("file_name", str(t["image_id"])),
                       "height": h, "width": w})
        mask = t.get("mask")
        for box, label in zip(np.asarray(t["boxes"], np.float64).reshape(-1, 4), t["labels"]):
            x1, y1, x2, y2 = (float(v) for v in box)
            area = (x2 - x1) * (y2 - y1)
            if mask is not None:  # the object's pixels, as write_coco_split's RLE area
                inside = mask[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))]
                area = float(inside.sum()) or area
            annotations.append({"id": len(annotations) + 1, "image_id": t["image_id"],
                                "category_id": category_ids[int(label)], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": area, "iscrowd": 0})
    categories = [{"id": cid, "name": name} for cid, name in zip(category_ids, class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_results(image_id, boxes, scores, labels, category_ids: list[int]) -> list[dict]:
    """COCO results entries of one image: bbox [x, y, w, h] in pixels, score, the dataset's category id."""
    out = []
    for (x1, y1, x2, y2), s, c in zip(np.asarray(boxes, np.float64).reshape(-1, 4), scores, labels):
        out.append({"image_id": image_id, "category_id": category_ids[int(c)],
                    "bbox": [round(float(x1), 3), round(float(y1), 3), round(float(x2 - x1), 3),
                             round(float(y2 - y1), 3)], "score": round(float(s), 5)})
    return out


def boxes_to_mask(boxes, h: int, w: int) -> np.ndarray:
    """(h, w) uint8 with every pixel that a box [x1, y1, x2, y2] touches set (at least one per box)."""
    mask = np.zeros((h, w), np.uint8)
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        c0, r0 = int(np.clip(np.floor(x1), 0, w - 1)), int(np.clip(np.floor(y1), 0, h - 1))
        c1, r1 = max(int(np.ceil(x2)), c0 + 1), max(int(np.ceil(y2)), r0 + 1)
        mask[r0:r1, c0:c1] = 1
    return mask


def evaluate_detector(model, dataset, img: int, batch: int = 8, ap_conf: float = AP_CONF,
                      pd_conf: float = PD_CONF, iou: float = 0.6, on_batch=None, tta: str = "") -> dict:
    """COCO AP/AR (the twelve COCO_STAT_NAMES) and Pd / Fa of `model` on `dataset` (module docstring);
    also "images" and "targets" (the counts scored)."""
    if len(dataset) == 0:
        raise ValueError("evaluate_detector: the dataset has no images")
    pairs = predict_dataset(model, dataset, img, batch, ap_conf, iou, on_batch=on_batch, tta=tta)
    cats = category_ids_of(dataset)
    targets = [t for t, _ in pairs]
    results = []
    for t, (boxes, scores, labels) in pairs:
        results.extend(coco_results(t["image_id"], boxes, scores, labels, cats))
    coco = coco_evaluate(ground_truth(targets, cats, list(dataset.class_names)), results)
    metrics = {name: float(coco[name]) for name in COCO_STAT_NAMES}
    found, truth = [], []
    for t, (boxes, scores, _) in pairs:
        h, w = (int(v) for v in t["orig_size"])
        found.append(boxes_to_mask(boxes[scores >= pd_conf], h, w))
        truth.append(t["mask"] if "mask" in t else boxes_to_mask(t["boxes"], h, w))
    ir = irstd_metrics(found, truth)
    metrics.update(Pd=float(ir["Pd"]), Fa=float(ir["Fa"]), pd_conf=pd_conf, images=len(pairs),
                   targets=int(sum(len(t["boxes"]) for t in targets)))
    return metrics


_TABLE = (("Precision", "AP", "0.50:0.95", "all", 100), ("Precision", "AP", "0.50", "all", 100),
          ("Precision", "AP", "0.75", "all", 100), ("Precision", "AP", "0.50:0.95", "small", 100),
          ("Precision", "AP", "0.50:0.95", "medium", 100), ("Precision", "AP", "0.50:0.95", "large", 100),
          ("Recall", "AR", "0.50:0.95", "all", 1), ("Recall", "AR", "0.50:0.95", "all", 10),
          ("Recall", "AR", "0.50:0.95", "all", 100), ("Recall", "AR", "0.50:0.95", "small", 100),
          ("Recall", "AR", "0.50:0.95", "medium", 100), ("Recall", "AR", "0.50:0.95", "large", 100))


def format_metrics(metrics: dict) -> str:
    """pycocotools' summarize() lines for the twelve COCO numbers, then Pd / Fa."""
    lines = []
    for (title, short, iou, area, md), name in zip(_TABLE, COCO_STAT_NAMES):
        lines.append(f" {'Average ' + title:<18} ({short}) @[ IoU={iou:<9} | area={area:>6s} | "
                     f"maxDets={md:>3d} ] = {metrics[name]:0.3f}")
    lines.append(f" Pd (targets found, score >= {metrics.get('pd_conf', PD_CONF)}) = {metrics['Pd']:.4f}   "
                 f"Fa (false-alarm pixels / pixels) = {metrics['Fa']:.3e}")
    return "\n".join(lines)
