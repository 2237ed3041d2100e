"""AP50 by target size and by post-processing setting, for detectors trained by bench/detect.py.

    python bench/detect_bands.py bench-detect/ciou+bce bench-detect/nwd+bce          # the bench's settings
    python bench/detect_bands.py bench-detect/ciou+bce --iou 0.3,0.5,0.6,0.7 --max-det 300,1000
    python bench/detect_bands.py bench-detect/centernet --tta none,h,hv,hvt   # test-time augmentation
    python bench/detect_bands.py bench-detect/centernet --weights ema,trained  # the EMA vs the last weights

Each RUN is a `tinyml detect train` run folder (bench/detect.py leaves one per tinyml run in its --out);
the held-out images are the COCO set beside it (RUN/../data_coco, or --data). For every (NMS IoU, max
detections) pair the detector predicts on the held-out images at the run's img (or --img) from score --conf
up (bench/detect.py scores at conf 0.001, IoU 0.6, max 300) and models/detection/metrics.py's
coco_evaluate scores:
    AP50, AP            all targets
    AP50<8px            targets of max side >= 8 px marked crowd (ignored), as bench/detect.py's column
    1-2, 3-4, 5-6, 7-9  AP50 with the targets whose max side (rounded to whole pixels) is outside the band
                        marked crowd: detections on them count neither way
--tta: the detectors' test-time augmentation (`predict(..., tta=)`: the mean over flipped / transposed views,
letters h, v, t; "none" for plain inference), one setting per comma-separated value.
--weights: the checkpoint's EMA of the weights (what the run evaluated; `load_detector`'s default) and / or
the optimizer's last weights ("trained"), shown as RUN[trained].
--localization adds, per target side (1, 2, 3-4 px), the fraction of targets with a detection of score
>= 0.05 centred within 1.5 px, the fraction with one of IoU >= 0.5, and the width of the nearest (found) one.
No training happens here and nothing is timed: the model's inference settings are what varies.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

BANDS = ((1, 2), (3, 4), (5, 6), (7, 9))


def only_sizes(gt: dict, lo: float, hi: float) -> dict:
    """The ground truth with every box whose rounded max side is outside [lo, hi] marked crowd."""
    def outside(a):
        side = round(max(a["bbox"][2], a["bbox"][3]))
        return int(not lo <= side <= hi)

    return {**gt, "annotations": [{**a, "iscrowd": outside(a)} for a in gt["annotations"]]}


def band_scores(results: list, gt: dict) -> dict:
    from tinyml.models.detection.metrics import coco_evaluate

    every = coco_evaluate(gt, results)
    row = {"AP50": every["AP50"], "AP": every["AP"],
           "AP50<8px": coco_evaluate(only_sizes(gt, 0, 7), results)["AP50"]}
    for lo, hi in BANDS:
        row[f"{lo}-{hi}"] = coco_evaluate(only_sizes(gt, lo, hi), results)["AP50"]
    row["targets"] = {f"{lo}-{hi}": sum(not only_sizes(gt, lo, hi)["annotations"][i]["iscrowd"]
                                        for i in range(len(gt["annotations"]))) for lo, hi in BANDS}
    return row


def localization(preds: list, score: float = 0.05, near: float = 1.5) -> dict:
    """Per target side s (max side rounded: 1, 2, 3-4): the fraction of targets with a detection of score >=
    `score` centred within `near` px ("found"), with one of IoU >= 0.5 ("boxed"), and the mean width of the
    nearest detection of the found ones. preds: [(target, (boxes, scores, labels))] as predict_dataset's."""
    out = {}
    for name, lo, hi in (("1", 1, 1), ("2", 2, 2), ("3-4", 3, 4)):
        found, boxed, widths, total = 0, 0, [], 0
        for t, (b, s, _) in preds:
            g = np.asarray(t["boxes"], np.float64).reshape(-1, 4)
            side = np.maximum(g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]).round()
            b = np.asarray(b, np.float64).reshape(-1, 4)[np.asarray(s) >= score]
            for gb in g[(side >= lo) & (side <= hi)]:
                total += 1
                if not len(b):
                    continue
                inter = np.clip(np.minimum(b[:, 2:], gb[2:]) - np.maximum(b[:, :2], gb[:2]), 0, None).prod(1)
                union = (b[:, 2:] - b[:, :2]).prod(1) + (gb[2:] - gb[:2]).prod() - inter
                dist = np.linalg.norm((b[:, :2] + b[:, 2:] - gb[:2] - gb[2:]) / 2, axis=1)
                boxed += bool((inter / union >= 0.5).any())
                if dist.min() <= near:
                    found += 1
                    widths.append(float((b[dist.argmin(), 2:] - b[dist.argmin(), :2]).mean()))
        out[name] = {"targets": total, "found": found / max(total, 1), "boxed": boxed / max(total, 1),
                     "width": float(np.mean(widths)) if widths else float("nan")}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="`tinyml detect train` run folders")
    p.add_argument("--data", help="the held-out COCO set (default: RUN/../data_coco)")
    p.add_argument("--split", default="val")
    p.add_argument("--img", type=int, help="model input size (default: the run's)")
    p.add_argument("--conf", type=float, default=0.001)
    p.add_argument("--iou", default="0.6", help="NMS IoU thresholds, comma-separated (default 0.6)")
    p.add_argument("--max-det", default="300", help="detections per image, comma-separated (default 300)")
    p.add_argument("--tta", default="none", help="test-time augmentations, comma-separated: none or letters "
                   "of h, v, t (default none)")
    p.add_argument("--localization", action="store_true",
                   help="also print found / boxed / width per target side, at the first setting")
    p.add_argument("--weights", default="ema", help="ema, trained or both, comma-separated (default ema)")
    p.add_argument("--save-json", metavar="FILE")
    args = p.parse_args()
    from tinyml.train.detect.data import CocoDetection
    from tinyml.train.detect.evaluate import category_ids_of, coco_results, ground_truth, predict_dataset
    from tinyml.train.detect.run import load_detector

    ious = [float(v) for v in args.iou.split(",")]
    max_dets = [int(v) for v in args.max_det.split(",")]
    ttas = ["" if v == "none" else v for v in args.tta.split(",")]
    rows = []
    print(f"{'run':<28}{'tta':>5}{'iou':>5}{'maxdet':>7}{'AP50':>7}{'AP':>7}{'<8px':>7}"
          + "".join(f"{f'{lo}-{hi}':>7}" for lo, hi in BANDS) + f"{'dets':>8}")
    for run, weights in [(r, w) for r in args.runs for w in args.weights.split(",")]:
        data = args.data or os.path.join(os.path.dirname(os.path.abspath(run)), "data_coco")
        val = CocoDetection(data, args.split)
        cats = category_ids_of(val)
        gt = ground_truth([val[i][1] for i in range(len(val))], cats, val.class_names)
        model, info = load_detector(run, weights=weights)
        name = os.path.basename(os.path.normpath(run)) + ("" if weights == "ema" else f"[{weights}]")
        for tta, iou, max_det in [(t, i, m) for t in ttas for i in ious for m in max_dets]:
            results = []
            preds = predict_dataset(model, val, args.img or info["img"], batch=8, conf=args.conf, iou=iou,
                                    max_det=max_det, tta=tta)
            for t, (b, s, lb) in preds:
                results.extend(coco_results(t["image_id"], b, s, lb, cats))
            if args.localization and (iou, max_det) == (ious[0], max_dets[0]):  # per tta
                for side, v in localization(preds).items():
                    print(f"  {side} px ({v['targets']}): found within 1.5 px {v['found']:.2f}, IoU >= "
                          f"0.5 {v['boxed']:.2f}, nearest width {v['width']:.2f} px (score >= 0.05)")
            r = band_scores(results, gt)
            rows.append({"run": run, "weights": weights, "tta": tta, "iou": iou, "max_det": max_det,
                         "detections": len(results), **r})
            print(f"{name:<28}{tta or '-':>5}{iou:5.2f}{max_det:7d}"
                  f"{r['AP50']:7.3f}{r['AP']:7.3f}{r['AP50<8px']:7.3f}"
                  + "".join(f"{r[f'{lo}-{hi}']:7.3f}" for lo, hi in BANDS) + f"{len(results):8d}",
                  flush=True)
    print("targets per band: " + ", ".join(f"{k} px: {v}" for k, v in rows[0]["targets"].items()))
    if args.save_json:
        with open(args.save_json, "w") as f:
            json.dump(rows, f, indent=1, default=lambda x: x.item() if isinstance(x, np.generic) else x)


if __name__ == "__main__":
    main()
