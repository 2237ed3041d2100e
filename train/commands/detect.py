"""Small-object detection (issue #13): train a detector, predict with it, score it.

  tinyml detect train [--data DIR] --model tiny|small --img 256 --epochs N --batch B --out DIR
                      [--arch centernet|yolo] [--heatmap-stride 1|2|4] [--tta hv|none|...] [--resume]
                      [--time-limit MIN] [--eval-every N|auto] [--crop PX] [--no-ema] [--ema-decay D]
                      [--scale-jitter LO,HI]   (--arch yolo: [--box-loss ciou|giou|nwd]
                      [--cls-loss bce|focal|atfl|varifocal] [--strides 4,8,16] [--nwd-c PX]
                      [--box-shift CELLS])
      Defaults: CenterNet at heatmap stride 1 on crops of a quarter of --img, EMA decay 0.999, validation
      with flip TTA hv (the best setting measured); --arch yolo: the Detector, crops of half of --img,
      EMA decay 0.9999.
      DIR in the COCO layout (DIR/{train,val}/*.png|jpg + DIR/annotations/instances_{train,val}.json) or
      ultralytics' YOLO layout (DIR/images/{train,val}/, DIR/labels/{train,val}/*.txt); with no --data,
      a seeded synthetic infrared small-target set is written to OUT/data and trained on. The run folder
      keeps checkpoint.safetensors, metrics.jsonl (losses, val AP50/AP/AP_small, Pd/Fa) and loss.png;
      --resume continues it bit-exactly (flags not repeated keep the run's values; --epochs may grow).
  tinyml detect predict --ckpt RUN --source IMG_OR_DIR [--slice 128 --overlap 0.2] [--conf 0.25] --out DIR
      DIR/predictions.json (COCO results) and DIR/<image>.png with the boxes drawn; --slice: SAHI;
      --tta: the run's test-time augmentation by default, --tta none for plain inference.
  tinyml detect eval --ckpt RUN --data DIR [--split val] [--tta LETTERS|none]
      the COCO AP table (pycocotools' summary) and the infrared Pd / Fa.

Guide: docs/detection.md.
"""
from __future__ import annotations

import argparse

from .. import argtypes as at

NAME = "detect"
HELP = "train / predict / evaluate a small-object detector (synthetic infrared set by default)"
MODELS = ("tiny", "small")
ARCHS = ("centernet", "yolo")
BOX_LOSSES = ("ciou", "giou", "nwd")
CLS_LOSSES = ("bce", "focal", "atfl", "varifocal")
# run-defining flags of `detect train` (argparse dests) with their defaults; on --resume, those not given
# keep the run's values (detect.json)
# (crop and ema_decay None: resolved per architecture by DetectRun.resolved(), train/detect/settings.py)
TRAIN_DEFAULTS = {"data": None, "model": "tiny", "arch": "centernet", "img": 256, "epochs": 30, "batch": 16,
                  "lr": 0.002, "box_loss": "nwd", "cls_loss": "bce", "seed": 0, "eval_every": "auto",
                  "synthetic_train": 400, "synthetic_val": 100, "synthetic_size": 256, "on_error": "raise",
                  "strides": (4, 8, 16), "crop": None, "ema": True, "ema_decay": None, "ema_tau": 500.0,
                  "scale_jitter": None, "min_candidates": 1, "reg_max": 16, "heatmap_stride": 1,
                  "reg_radius": 1, "vflip": 0.5, "crop_anywhere": 0.3, "box_shift": 0.25, "nwd_c": "auto",
                  "assign_nwd_c": 12.8, "tta": "hv"}
RESUME_FREE = ("epochs", "eval_every", "tta")  # may change on --resume; the rest define what is trained


def add_arguments(p) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # the docstring's usage lines as written
    sub = p.add_subparsers(dest="detect_command", parser_class=type(p), metavar="{train,predict,eval}")
    t = sub.add_parser("train", help="train a detector", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=__doc__.split("\n  tinyml detect predict")[0])
    t.add_argument("--data", type=at.existing_path, help="dataset folder, COCO or YOLO layout (default: the "
                   "synthetic infrared set, written to OUT/data)")
    t.add_argument("--model", choices=MODELS, help="detector size (default tiny: YOLOv8n widths, P2-P4)")
    t.add_argument("--arch", choices=ARCHS, help="centernet (default): a heatmap head for point-like targets "
                   "(its own losses; --heatmap-stride); yolo: the anchor-free DFL Detector on strides 4/8/16 "
                   "(--box-loss, --cls-loss)")
    t.add_argument("--img", type=at.positive_int, help="training and validation image size, a multiple of 16 "
                   "(default 256)")
    t.add_argument("--epochs", type=at.positive_int,
                   help="epochs (default 30); on --resume, more extends the run")
    t.add_argument("--batch", type=at.positive_int, help="images per step (default 16)")
    t.add_argument("--lr", type=at.positive_float, help="peak AdamW learning rate (default 0.002)")
    t.add_argument("--box-loss", choices=BOX_LOSSES, help="--arch yolo: box regression loss (default nwd)")
    t.add_argument("--cls-loss", choices=CLS_LOSSES, help="--arch yolo: classification loss (default bce; "
                   "atfl: EFLNet's adaptive threshold focal loss)")
    t.add_argument("--seed", type=at.seed, help="seed of the weights, the data order, augmentation and the "
                   "synthetic set (default 0)")
    t.add_argument("--eval-every", type=_eval_every, metavar="N|auto",
                   help="epochs between validations and checkpoints, and always at the end (default auto: "
                   "at most ~10 in a run and their compute ~10%% of the training's, re-planned under "
                   "--time-limit)")
    t.add_argument("--tta", type=_tta, metavar="LETTERS|none",
                   help="test-time augmentation of the validations, and the run's default for predict / "
                   "eval: letters of h (horizontal flip), v (vertical flip), t (transpose) (default hv; "
                   "none: off)")
    t.add_argument("--time-limit", type=at.positive_float, metavar="MIN",
                   help="stop after MIN minutes, evaluated and checkpointed; the epochs are re-planned after "
                   "each one to end at the limit")
    t.add_argument("--synthetic-train", type=at.positive_int,
                   help="synthetic training images (default 400)")
    t.add_argument("--synthetic-val", type=at.positive_int,
                   help="synthetic validation images (default 100)")
    t.add_argument("--synthetic-size", type=at.bounded_int(64, 4096),
                   help="synthetic image size (default 256)")
    t.add_argument("--skip-bad-files", dest="on_error", action="store_const", const="skip", default=None,
                   help="leave out images with bad or missing label files (counted and reported) instead of "
                   "stopping at the first")
    t.add_argument("--no-augment", dest="augment", action="store_false",
                   help="letterbox only: no flips, scale jitter or mosaic")
    t.add_argument("--scale-jitter", type=_scale_range, metavar="LO,HI",
                   help="resize every training sample by a factor drawn from U(LO, HI) (default off: "
                   "resampling smears 1-2 px targets; 0.75,1.33 was the earlier default)")
    t.add_argument("--min-candidates", type=at.bounded_int(1, 64), metavar="K",
                   help="the assigner's fallback: a box with fewer than K anchor centres inside also gets "
                   "the K anchors of the finest level nearest its centre (default 1: the nearest only)")
    t.add_argument("--heatmap-stride", type=int, choices=(1, 2, 4),
                   help="--arch centernet: the heatmap's stride (default 1; 2 and 1 fuse the stem's features "
                   "and the image)")
    t.add_argument("--reg-radius", type=at.bounded_int(0, 4), metavar="R",
                   help="--arch centernet: offsets and sizes are regressed on the (2R+1) x (2R+1) heatmap "
                   "cells around each centre, Gaussian-weighted, so a peak one cell off still points at the "
                   "centre (default 1; 0: the centre cell alone, as CenterNet)")
    t.add_argument("--vflip", type=at.bounded_float(0.0, 1.0), metavar="P",
                   help="probability of flipping a training sample vertically (default 0.5; horizontal flips "
                   "0.5 always; --no-augment: none)")
    t.add_argument("--reg-max", type=at.bounded_int(3, 64), metavar="R",
                   help="DFL bins per box side: distances of 0 to R - 1 cells of each level (default 16)")
    t.add_argument("--box-shift", type=at.bounded_float(0.0, 1.0), metavar="CELLS",
                   help="signed box sides: a predicted side may stop up to CELLS short of its anchor point, "
                   "so boxes of 1-2 px near (not around) an anchor can be coded (default 0.25: 1 px at "
                   "stride 4; 0: boxes contain their anchor, as ultralytics')")
    t.add_argument("--nwd-c", type=_nwd_c, metavar="PX|auto",
                   help="NWD's constant C for --box-loss nwd, in pixels: exp(-W2 / C) (default auto: the "
                   "training boxes' mean sqrt(w h) at --img, the NWD paper's rule; it used 12.8 on AI-TOD)")
    t.add_argument("--assign-nwd-c", type=at.positive_float, metavar="PX",
                   help="NWD's constant C of the assigner's overlap, in pixels (default 12.8)")
    t.add_argument("--strides", type=_strides, metavar="S,S,...",
                   help="the detector's levels, increasing powers of two from 2 to 32 (default 4,8,16; "
                   "2,4,8,16 adds a stride-2 level)")
    t.add_argument("--crop", type=at.nonnegative_int, metavar="PX",
                   help="train on PX x PX windows of the images, scaled as for --img (a target kept whole "
                   "where it fits, cut ones clipped or dropped); validation sees whole images (default: a "
                   "quarter of --img for centernet at --heatmap-stride 1, else half, a multiple of 16; 0: "
                   "train on whole images)")
    t.add_argument("--crop-anywhere", type=at.bounded_float(0.0, 1.0), metavar="P",
                   help="probability that a training crop is placed anywhere in the image (targets or not) "
                   "instead of around its targets, so that the clutter far from every target is trained on "
                   "as background (default 0.3; 0: every crop holds a target where one fits)")
    t.add_argument("--no-ema", dest="ema", action="store_const", const=False, default=None,
                   help="evaluate and save the trained weights instead of their moving average")
    t.add_argument("--ema-tau", type=at.positive_float, metavar="STEPS",
                   help="the EMA's warmup: decay d (1 - exp(-updates / tau)) (default 500)")
    t.add_argument("--ema-decay", type=at.bounded_float(0.0, 0.999999, open_lo=True),
                   help="the EMA's decay d (default 0.999 for centernet, 0.9999 for yolo)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--out", type=at.folder_to_create, default="tinyml-detect", help="run folder "
                   "(default ./tinyml-detect)")
    pr = sub.add_parser("predict", help="detect objects in an image or a folder of images")
    pr.add_argument("--ckpt", type=at.existing_path, required=True, help="run folder (or its checkpoint)")
    pr.add_argument("--source", type=at.existing_path, required=True,
                    help="an image file or a folder of images")
    pr.add_argument("--out", type=at.folder_to_create, default="tinyml-predict",
                    help="folder for predictions.json and the drawn PNGs (default ./tinyml-predict)")
    pr.add_argument("--img", type=at.positive_int, help="model input size (default: the run's)")
    pr.add_argument("--conf", type=at.probability, default=0.25, help="score threshold (default 0.25)")
    pr.add_argument("--iou", type=at.probability, default=0.6, help="NMS IoU threshold (default 0.6)")
    pr.add_argument("--max-det", type=at.positive_int, default=300, help="detections per image (default 300)")
    pr.add_argument("--slice", type=at.positive_int,
                    help="SAHI: slices of this many px (plus a full-image pass)")
    pr.add_argument("--overlap", type=at.bounded_float(0.0, 0.95), default=0.2,
                    help="SAHI slice overlap ratio (default 0.2)")
    pr.add_argument("--batch", type=at.positive_int, default=8, help="slices per model call (default 8)")
    pr.add_argument("--annotations", type=at.existing_file,
                    help="a COCO annotation file whose image ids to use (default: the one of the COCO set "
                    "the images lie in, if any)")
    pr.add_argument("--no-draw", dest="draw", action="store_false", help="write predictions.json only")
    pr.add_argument("--tta", type=_tta, metavar="LETTERS|none",
                    help="test-time augmentation: the mean over flipped / transposed views, letters of h "
                         "(horizontal flip), v (vertical flip), t (transpose); hvt: all 8; none: off "
                         "(default: the run's --tta)")
    e = sub.add_parser("eval", help="COCO AP and Pd/Fa of a trained detector on a dataset split")
    e.add_argument("--ckpt", type=at.existing_path, required=True, help="run folder (or its checkpoint)")
    e.add_argument("--data", type=at.existing_path, required=True, help="dataset folder, COCO or YOLO layout")
    e.add_argument("--split", default="val", help="split to score (default val)")
    e.add_argument("--img", type=at.positive_int, help="model input size (default: the run's)")
    e.add_argument("--batch", type=at.positive_int, default=8, help="images per model call (default 8)")
    e.add_argument("--save-json", metavar="FILE", help="also write the metrics to FILE as JSON")
    e.add_argument("--tta", type=_tta, metavar="LETTERS|none",
                   help="test-time augmentation as in predict (h, v, t; hvt: all 8 views; none: off; "
                   "default: the run's --tta)")


def run(args) -> int:
    command = getattr(args, "detect_command", None)
    if command is None:
        from ..runs import UsageError

        raise UsageError("a subcommand is needed: train, predict or eval")
    return {"train": _train, "predict": _predict, "eval": _eval}[command](args)


def _train(args) -> int:
    import os

    from ..detect.run import DetectRun, read_run_record, train_detector, upgrade_run_record
    from ..progress import require_matplotlib
    from ..runs import UsageError

    given = {k: getattr(args, k) for k in TRAIN_DEFAULTS if getattr(args, k, None) is not None}
    if given.get("scale_jitter") is False:  # --scale-jitter off (None means "not given" above)
        given["scale_jitter"] = None
    if given.get("data") is not None:
        given["data"] = os.path.abspath(given["data"])
    # an older run's record reads with the values it ran with (settings.py's LEGACY)
    before = upgrade_run_record(read_run_record(args.out)) if args.resume else {}
    if args.resume:
        changed = [f"--{k.replace('_', '-')} {given[k]} (the run has {before[k]})" for k in given
                   if k not in RESUME_FREE and k in before and _norm(given[k]) != _norm(before[k])]
        if changed:
            raise UsageError(f"--resume: these flags differ from the run's: {'; '.join(changed)}")
    settings = {**TRAIN_DEFAULTS, **{k: v for k, v in before.items() if k in TRAIN_DEFAULTS}, **given}
    augment = before.get("augment", True) if args.resume and args.augment else args.augment
    require_matplotlib()
    spec = DetectRun(out=args.out, resume=args.resume, time_limit=args.time_limit, augment=augment,
                     **settings)
    s = train_detector(spec)
    v = s["val"] or {}
    rate = s["images_per_s"]
    print(f"done: step {s['step']} (epoch {s['epochs']:g}, {s['stopped']}); {s['train_seconds']:.1f}s "
          f"training ({rate:.1f} images/s), {s['eval_seconds']:.1f}s evaluation")
    if v:
        print(f"val: AP50 {v['AP50']:.4f}, AP {v['AP']:.4f}, AP_small {v['AP_small']:.4f}, Pd {v['Pd']:.4f}, "
              f"Fa {v['Fa']:.3e} ({v['images']} images, {v['targets']} targets)")
    for what, name in (("checkpoint", "checkpoint.safetensors"), ("metrics", "metrics.jsonl"),
                       ("plot", "loss.png")):
        print(f"  {what + ':':<12}{args.out}/{name}")
    print(f"predict with: tinyml detect predict --ckpt {args.out} --source IMAGES --out PREDICTIONS")
    return 130 if s["stopped"] == "interrupted" else 0


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def _nwd_c(text: str):
    """--nwd-c 4.7 -> 4.7; auto -> "auto" (the training boxes' mean size)."""
    return "auto" if text == "auto" else at.positive_float(text)


def _scale_range(text: str):
    """--scale-jitter 0.75,1.33 -> (0.75, 1.33); off -> False (resolved to None: no jitter)."""
    if text == "off":
        return False
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers) or 'off', got {text!r}") from None
    if not 0 < lo <= hi < float("inf"):
        raise argparse.ArgumentTypeError(f"expected 0 < LO <= HI, got {text!r}")
    return lo, hi


def _strides(text: str) -> tuple:
    """--strides 4,8,16 -> (4, 8, 16): increasing values from 2, 4, 8, 16, 32."""
    try:
        strides = tuple(int(v, 10) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if (len(strides) < 2 or any(v not in (2, 4, 8, 16, 32) for v in strides)
            or list(strides) != sorted(set(strides))):
        raise argparse.ArgumentTypeError(f"expected two or more increasing values from 2,4,8,16,32, "
                                         f"got {text!r}")
    return strides


def _eval_every(text: str):
    """--eval-every 5 -> 5; auto -> "auto"."""
    return "auto" if text == "auto" else at.positive_int(text)


def _tta(text: str) -> str:
    """--tta hv -> "hv"; none -> "" (no test-time augmentation)."""
    from tinyml.models.detection.targets import check_tta

    if text == "none":
        return ""
    try:
        return check_tta("--tta", text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--tta: ")) from None


def _predict(args) -> int:
    from ..detect.predict import predict_source
    from ..detect.run import load_detector

    model, info = load_detector(args.ckpt)
    tta = info["tta"] if args.tta is None else args.tta  # the run's unless --tta is given
    results = predict_source(model, info, args.source, args.out, img=args.img, conf=args.conf,
                             iou=args.iou, max_det=args.max_det, slice_size=args.slice, overlap=args.overlap,
                             batch=args.batch, annotations=args.annotations, draw=args.draw, tta=tta)
    drawn = " and the drawn PNGs" if args.draw else ""
    print(f"{len(results)} detections (tta {tta or 'none'}) -> {args.out}/predictions.json{drawn}")
    return 0


def _eval(args) -> int:
    import json

    from ..detect.data import open_detection_dataset
    from ..detect.evaluate import category_ids_of, evaluate_detector, format_metrics
    from ..detect.run import load_detector
    from ..runs import CLIError

    model, info = load_detector(args.ckpt)
    dataset = open_detection_dataset(args.data, args.split, channels=model.in_channels)
    if len(dataset.class_names) != model.num_classes:
        raise CLIError(f"--data {args.data}: {len(dataset.class_names)} classes {dataset.class_names}, but "
                       f"the detector in {args.ckpt} has {model.num_classes} {info['class_names']}")
    if category_ids_of(dataset) != list(info["category_ids"]):
        print(f"note: the dataset's category ids {category_ids_of(dataset)} differ from the training set's "
              f"{info['category_ids']}; labels are matched by position")
    tta = info["tta"] if args.tta is None else args.tta  # the run's unless --tta is given
    m = evaluate_detector(model, dataset, int(args.img or info["img"]), args.batch, tta=tta)
    m["tta"] = tta
    print(f"{args.data} ({args.split}): {m['images']} images, {m['targets']} targets; "
          f"model step {info['step']}; tta {tta or 'none'}")
    print(format_metrics(m))
    if args.save_json:
        with open(args.save_json, "w") as f:
            json.dump(m, f, indent=1)
    return 0
