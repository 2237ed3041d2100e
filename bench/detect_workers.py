"""bench/detect.py's runs and workers: the settings of every tinyml run, and the code each worker process runs
(a tinyml training, the ultralytics YOLOv8n peer, SAHI against full-image inference). bench/detect.py's
docstring gives the definitions; this file holds what runs in the worker processes.

The tinyml runs (TINYML_RUNS) pin what they were measured as, so that a change of `tinyml detect train`'s
defaults does not change them: "default" pins nothing (it is `tinyml detect train`'s defaults, now CenterNet
at heatmap stride 1, crop 64, EMA 0.999, TTA hv, regression on 3 x 3 cells, vertical flips); the loss rows
pin the Detector (arch "yolo", which resolves to crop 128 and EMA 0.9999), their losses and no vertical
flips (as measured); "centernet" pins its historic stride-4 row (crop 128, EMA 0.9999, offsets and sizes
regressed on the centre cells alone, no vertical flips).
"""
from __future__ import annotations

import json
import os
import sys
import time

TINYML_RUNS = {
    "default": {},  # `tinyml detect train` with no flags
    "nwd+bce": {"arch": "yolo", "box_loss": "nwd", "cls_loss": "bce", "vflip": 0.0},
    "ciou+bce": {"arch": "yolo", "box_loss": "ciou", "cls_loss": "bce", "vflip": 0.0},
    "nwd+focal": {"arch": "yolo", "box_loss": "nwd", "cls_loss": "focal", "vflip": 0.0},
    "nwd+atfl": {"arch": "yolo", "box_loss": "nwd", "cls_loss": "atfl", "vflip": 0.0},
    "ciou+focal": {"arch": "yolo", "box_loss": "ciou", "cls_loss": "focal", "vflip": 0.0},
    "centernet": {"arch": "centernet", "heatmap_stride": 4, "ema_decay": 0.9999, "reg_radius": 0,
                  "vflip": 0.0},
}


def base_run(name: str) -> str:
    """The run a name stands for: "nwd+bce@c96" is nwd+bce under its own name (and --set nwd+bce@c96:...)."""
    return name.split("@", 1)[0]


def run_settings(cfg: dict) -> dict:
    """The DetectRun settings of tinyml run cfg["name"]: the bench's (batch, img 256, seed, no validation),
    the run's pinned ones (TINYML_RUNS), then --set KEY=VALUE, then --set RUN:KEY=VALUE for that run."""
    settings = dict(batch=cfg["batch"], img=256, seed=cfg["seed"], epochs=1000, eval_every=1000,
                    progress=False, **TINYML_RUNS[base_run(cfg["name"])])
    settings.update(cfg.get("overrides", {}))
    settings.update(cfg.get("run_overrides", {}).get(cfg["name"], {}))
    return settings


# ---- workers (each in its own process) ---------------------------------------------------------------------
def worker_tinyml(cfg: dict) -> dict:
    from tinyml.train.detect import loop
    from tinyml.train.detect.data import CocoDetection
    from tinyml.train.detect.evaluate import category_ids_of, coco_results, predict_dataset
    from tinyml.train.detect.run import DetectRun, train_detector

    # the bench scores the held-out images itself below; the run's own validation would score them twice
    loop.DetectTrainer.evaluate_now = lambda self, run=None: None
    settings = run_settings(cfg)
    spec = DetectRun(out=os.path.join(cfg["out"], cfg["name"]), data=cfg["coco"], time_limit=cfg["minutes"],
                     time_clock=cfg["clock"], cpu_threads=cfg["threads"], **settings).resolved()
    t0 = time.perf_counter()
    s = train_detector(spec, log=lambda *a: None)
    wall = time.perf_counter() - t0
    val = CocoDetection(cfg["coco"], "val")
    cats = category_ids_of(val)
    # plain, and with --tta; the default run with its own tta when --tta is not given
    tta = cfg.get("tta") or (spec.tta if base_run(cfg["name"]) == "default" else "")
    scored = {}
    for mode in ("", tta) if tta else ("",):  # plain, then with test-time augmentation (--tta)
        results = scored[mode] = []
        for t, (b, sc, lb) in predict_dataset(s["model"], val, spec.img, batch=8, tta=mode):  # img 256
            results.extend(coco_results(t["image_id"], b, sc, lb, cats))
    return {"results": scored[""], "results_tta": scored.get(tta) if tta else None, "tta": tta,
            "steps": s["step"], "images": s["images"], "settings": {k: v for k, v in vars(spec).items()
                                                                    if k in ("arch", "crop", "ema_decay")},
            "train_wall_s": s["train_seconds"], "train_cpu_s": s["train_cpu_seconds"], "run_wall_s": wall,
            "stopped": s["stopped"]}


def _patch_torchvision_nms() -> None:
    """torchvision's CPU ops do not load with this torch; its import needs torchvision::nms/qnms to exist."""
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

    def nms(boxes, scores, iou_threshold):  # torchvision.ops.nms: stable descending scores, drop IoU > thr
        order = torch.argsort(scores, descending=True, stable=True)
        b = boxes[order]
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        inter = (torch.minimum(b[:, None, 2:], b[None, :, 2:]) -
                 torch.maximum(b[:, None, :2], b[None, :, :2])).clamp(min=0).prod(-1)
        iou = inter / (area[:, None] + area[None, :] - inter)
        keep = torch.ones(len(b), dtype=torch.bool)
        for i in range(len(b)):
            if keep[i]:
                keep[i + 1:] &= ~(iou[i, i + 1:] > iou_threshold)
        return order[keep]

    lib.impl("nms", nms, "CPU")
    _patch_torchvision_nms.lib = lib  # the library must outlive this call
    import torchvision.ops

    torchvision.ops.nms = torchvision.ops.boxes.nms = nms


class _CpuClock:
    """The time module, with time() = process CPU seconds / threads (ultralytics' `time` budget clock)."""

    def __init__(self, threads: int):
        self.threads = threads

    def time(self):
        return time.process_time() / self.threads

    def __getattr__(self, name):
        return getattr(time, name)


def worker_ultralytics(cfg: dict) -> dict:
    if cfg.get("ultralytics_path"):
        sys.path.insert(0, cfg["ultralytics_path"])
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch

    torch.set_num_threads(cfg["threads"])
    _patch_torchvision_nms()
    import ultralytics.engine.trainer as trainer_module
    from ultralytics import YOLO

    if cfg["clock"] == "cpu":
        trainer_module.time = _CpuClock(cfg["threads"])
    stats = {"images": 0, "wall": 0.0, "cpu": 0.0}

    def epoch_start(trainer):
        stats["_w"], stats["_c"], stats["_b"] = time.perf_counter(), time.process_time(), 0

    def batch_end(trainer):
        stats["_b"] += 1

    def epoch_end(trainer):  # on_train_epoch_end: after the epoch's steps, before its validation
        stats["wall"] += time.perf_counter() - stats["_w"]
        stats["cpu"] += time.process_time() - stats["_c"]
        # full batches, except the epoch's last one (the remainder), when the epoch ran to its end
        stats["images"] += min(stats["_b"] * trainer.batch_size, len(trainer.train_loader.dataset))

    arch = cfg["name"].split("@", 1)[0]  # yolov8n or yolov8n-p2: the model yaml ultralytics resolves
    model = YOLO(f"{arch}.yaml")
    model.add_callback("on_train_epoch_start", epoch_start)
    model.add_callback("on_train_batch_end", batch_end)
    model.add_callback("on_train_epoch_end", epoch_end)
    t0 = time.perf_counter()
    model.train(data=os.path.join(cfg["yolo"], "data.yaml"), epochs=1000, time=cfg["minutes"] / 60, imgsz=256,
                batch=cfg["batch"], nbs=cfg["batch"], workers=0, device="cpu", plots=False, amp=False,
                val=False,
                project=cfg["out"], name=cfg["name"], exist_ok=True, pretrained=False, seed=cfg["seed"],
                verbose=False)
    wall = time.perf_counter() - t0
    last = os.path.join(cfg["out"], cfg["name"], "weights", "last.pt")
    trained = YOLO(last)
    with open(os.path.join(cfg["coco"], "annotations", "instances_val.json")) as f:
        ids = {im["file_name"]: im["id"] for im in json.load(f)["images"]}
    folder = os.path.join(cfg["yolo"], "images", "val")
    results = []
    for name in sorted(os.listdir(folder)):
        r = trained.predict(os.path.join(folder, name), imgsz=256, conf=0.001, iou=0.6, max_det=300,
                            device="cpu", verbose=False)[0]
        for (x1, y1, x2, y2), s, c in zip(r.boxes.xyxy.tolist(), r.boxes.conf.tolist(), r.boxes.cls.tolist()):
            results.append({"image_id": ids[name], "category_id": int(c) + 1, "score": float(s),
                            "bbox": [x1, y1, x2 - x1, y2 - y1]})
    return {"results": results, "images": stats["images"], "train_wall_s": stats["wall"],
            "train_cpu_s": stats["cpu"], "run_wall_s": wall, "steps": -(-stats["images"] // cfg["batch"])}


def sahi_model(cfg: dict) -> str:
    """The run folder SAHI scores: --sahi-model, else this bench's default run (nwd+bce in older --out)."""
    if cfg.get("sahi_model"):
        return cfg["sahi_model"]
    for name in ("default", "nwd+bce"):
        if os.path.exists(os.path.join(cfg["out"], name, "checkpoint.safetensors")):
            return os.path.join(cfg["out"], name)
    raise FileNotFoundError(f"sahi: no trained run in {cfg['out']} (default or nwd+bce); train one in the "
                            "same invocation (--only default,sahi) or give --sahi-model RUN_FOLDER")


def worker_sahi(cfg: dict) -> dict:
    """Full-image inference vs SAHI on 512 x 512 images, plain and, with --tta, with test-time
    augmentation."""
    from tinyml.train.detect.evaluate import predict_images
    from tinyml.train.detect.predict import predict_image
    from tinyml.train.detect.run import load_detector
    from tinyml.train.detect.synthetic import SyntheticIR

    folder = sahi_model(cfg)
    model, info = load_detector(folder)
    img, tta = int(info["img"]), cfg.get("tta") or ""
    modes = [("full", ""), ("sahi", "")] + ([(f"full+{tta}", tta), (f"sahi+{tta}", tta)] if tta else [])
    ds = SyntheticIR(cfg["sahi_images"], size=512, seed=cfg["seed"] + 1)
    out = {mode: [] for mode, _ in modes}
    out["truth"] = []
    seconds = {mode: 0.0 for mode, _ in modes}
    for i in range(len(ds)):
        image, t = ds[i]
        out["truth"].append(t["boxes"].tolist())
        for mode, views in modes:
            t0 = time.perf_counter()
            if mode.startswith("full"):
                b, s, _ = predict_images(model, [image], img, conf=0.25, tta=views)[0]
            else:
                b, s, _ = predict_image(model, image, img, conf=0.25, slice_size=img, overlap=0.2, batch=8,
                                        tta=views)
            seconds[mode] += time.perf_counter() - t0
            out[mode].append((b.tolist(), s.tolist()))
    return {**out, "seconds": seconds, "modes": [m for m, _ in modes], "model": folder,
            "arch": info.get("arch", "yolo"), "img": img}


WORKERS = {"tinyml": worker_tinyml, "ultralytics": worker_ultralytics, "sahi": worker_sahi}


