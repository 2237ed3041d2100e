"""Why ultralytics YOLOv8n learns nothing on the synthetic infrared set (docs/detection.md, "Session 12"):
one batch of training images through its v8DetectionLoss at initialisation, reporting how many anchors its
task-aligned assigner makes positive and how large their target scores are.

    python bench/detect.py --minutes 0.1 --only yolov8n --out DIR      # writes DIR/data_yolo (any budget)
    python bench/detect_peer_assigner.py DIR/data_yolo [--arch yolov8n-p2] [--ultralytics-path PATH]

The assigner's alignment metric is score^0.5 * IoU^6; its soft class targets are that metric normalised by
its largest value per ground-truth box times the box's largest IoU. For a 1-9 px box the IoU with the
initial predicted boxes is a few percent, so the targets come out near 1e-9 and the box loss, weighted by
them, near 1e-8: nothing is learned but background. Prints the batch's targets, positives, the sum and the
largest of the target scores, and the three loss parts. Benchmark peer only (never a tinyml dependency).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np


def load_batch(root: str, n: int):
    import torch
    from PIL import Image

    files = sorted(glob.glob(os.path.join(root, "images", "train", "*.png")))[:n]
    if not files:
        raise SystemExit(f"{root}: no images/train/*.png (a YOLO-layout set, as bench/detect.py writes)")
    images, index, classes, boxes = [], [], [], []
    for i, path in enumerate(files):
        pixels = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
        images.append(torch.from_numpy(pixels).permute(2, 0, 1))
        stem = path.replace(os.sep + "images" + os.sep, os.sep + "labels" + os.sep).rsplit(".", 1)[0]
        label = stem + ".txt"
        with open(label) as f:
            for line in f:
                c, x, y, w, h = map(float, line.split())
                index.append(i), classes.append([c]), boxes.append([x, y, w, h])
    return {"img": torch.stack(images), "batch_idx": torch.tensor(index, dtype=torch.float32),
            "cls": torch.tensor(classes), "bboxes": torch.tensor(boxes)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="a YOLO-layout folder (bench/detect.py's OUT/data_yolo)")
    p.add_argument("--arch", default="yolov8n", help="ultralytics model yaml stem (yolov8n, yolov8n-p2)")
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ultralytics-path", help="a folder to put first on sys.path for ultralytics")
    args = p.parse_args()
    if args.ultralytics_path:
        sys.path.insert(0, args.ultralytics_path)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from detect_workers import _patch_torchvision_nms

    torch.manual_seed(args.seed)
    _patch_torchvision_nms()
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.loss import v8DetectionLoss

    batch = load_batch(args.data, args.images)
    model = DetectionModel(f"{args.arch}.yaml", nc=1, verbose=False)
    model.args = argparse.Namespace(box=7.5, cls=0.5, dfl=1.5)  # ultralytics' default loss gains
    criterion = v8DetectionLoss(model)
    seen = {}
    assign = criterion.assigner.forward

    def recording(*a, **k):
        out = assign(*a, **k)
        target_scores, fg_mask = out[2], out[3]
        seen.update(positives=int(fg_mask.sum()), score_sum=float(target_scores.sum()),
                    score_max=float(target_scores.max()))
        return out

    criterion.assigner.forward = recording
    _, parts = criterion(model(batch["img"]), batch)
    parts = parts.items() if isinstance(parts, dict) else zip(("box", "cls", "dfl"), parts)
    sides = batch["bboxes"][:, 2:].amax(1).numpy() * batch["img"].shape[-1]
    print(f"{args.arch}: {len(sides)} targets of {sides.min():.1f}-{sides.max():.1f} px in {args.images} "
          "images; "
          f"{seen['positives']} positive anchors; target scores sum {seen['score_sum']:.3g}, largest "
          f"{seen['score_max']:.3g}; loss parts " + ", ".join(f"{k} {float(v):.3g}" for k, v in parts))


if __name__ == "__main__":
    main()
