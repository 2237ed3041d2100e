"""Small-object detection on the synthetic infrared set (issue #13's goals), tinyml vs ultralytics YOLOv8n.

    python bench/detect.py                     # 10-minute budgets (the issue's); --minutes 2 for a quick one
    python bench/detect.py --minutes 3 --parallel 2 --only nwd+bce,yolov8n
    python bench/detect.py --minutes 2 --only nwd+bce --set crop=0 --set strides=[2,4,8,16]   # a variant
    python bench/detect.py --parallel 2 --only nwd+bce,centernet@s1 --set centernet@s1:heatmap_stride=1
        # NAME@TAG runs NAME under its own name; --set RUN:KEY=VALUE sets KEY for that run only

Data: SyntheticIR (train/detect/synthetic.py), 400 training images of 256 x 256 and 100 held-out ones (the
val split: images 400..499 of the seed's stream, never trained on), written in the COCO layout for tinyml
and the YOLO layout for ultralytics (the same pixels). Every model is scored on the held-out images by
models/detection/metrics.py's coco_evaluate (pycocotools' numbers), from detections at conf 0.001, IoU 0.6,
max 300 per image, at imgsz 256. `--tta hvt` also scores every tinyml model with test-time augmentation (the
mean over the 8 flipped / transposed views, `predict(..., tta=)`), as the row RUN+hvt.

Runs, each in a worker process of its own on --threads threads (OMP_NUM_THREADS, torch.set_num_threads),
with the same budget: --minutes of `--clock cpu` (default: process CPU time / threads, i.e. minutes of that
many fully busy cores, so a budget buys the same work on a loaded machine; `--clock wall` for wall time):
    nwd+bce     tinyml Detector tiny (`tinyml detect train` defaults: NWD boxes, C = the mean box size, BCE,
                signed sides, 128 px crops, EMA; `--set KEY=VALUE`: a DetectRun setting of every tinyml run)
    ciou+bce    the same with the CIoU box loss          -> NWD vs CIoU, AP50 on targets under 8 px
    nwd+focal   sigmoid focal loss for the classes       -> ATFL vs focal vs BCE
    nwd+atfl    EFLNet's adaptive threshold focal loss;  ciou+focal: CIoU boxes with focal classes
    centernet   models/detection/centernet.py's stride-4 heatmap head (`--arch centernet`, its own losses)
    yolov8n     ultralytics YOLOv8n from scratch (yolov8n.yaml), imgsz 256, batch 16, nbs=16 (a step per
                batch: the issue's calibration), workers=0, its `time` budget (re-planned epochs, as ours);
                ultralytics' trainer clock is swapped for the same CPU clock under --clock cpu
    sahi        the nwd+bce model on 512 x 512 held-out images (SyntheticIR seed + 1): full-image inference
                (letterboxed to 256) vs SAHI (256 px slices, overlap 0.2, plus the full image, GREEDYNMM/IoS)

"AP50 <8px": AP50 with ground truth of max side >= 8 px ignored (marked crowd, as COCO ignores crowds:
detections on them count neither way). Recall <= 4 px: ground-truth boxes of max side <= 4 matched one to one
by a detection of score >= 0.25 with IoU >= 0.5 (greedy by score), and by centre distance <= 3 px.
Training images/s: images through training steps / wall seconds of those steps (data loading included,
evaluation excluded), and per CPU-second x threads (the same on an idle machine).

ultralytics is a benchmark peer only: `pip install ultralytics` (or --ultralytics-path DIR holding it). Its
torchvision (0.28 for torch 2.13) fails to import with the CPU-only torch wheel ("operator torchvision::nms
does not exist"): the worker defines torchvision::nms (a greedy NMS in torch, torchvision's semantics) before
importing it; nothing else of torchvision is used.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

from detect_scoring import recall, score

TINYML_RUNS = {"nwd+bce": ("nwd", "bce"), "ciou+bce": ("ciou", "bce"), "nwd+focal": ("nwd", "focal"),
               "nwd+atfl": ("nwd", "atfl"), "ciou+focal": ("ciou", "focal"), "centernet": ("nwd", "bce")}
ARCH = {"centernet": "centernet"}  # the others are the anchor-free Detector ("yolo")
ALL = (*TINYML_RUNS, "yolov8n", "sahi")


def base_run(name: str) -> str:
    """The run a name stands for: "nwd+bce@c96" is nwd+bce under its own name (and --set nwd+bce@c96:...)."""
    return name.split("@", 1)[0]


def run_settings(cfg: dict) -> dict:
    """The DetectRun settings of tinyml run cfg["name"]: the run's losses and arch, then --set KEY=VALUE,
    then --set RUN:KEY=VALUE for that run."""
    kind = base_run(cfg["name"])
    box, cls = TINYML_RUNS[kind]
    settings = dict(batch=cfg["batch"], img=256, box_loss=box, cls_loss=cls, seed=cfg["seed"], epochs=1000,
                    eval_every=1000, progress=False, arch=ARCH.get(kind, "yolo"))
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
                     time_clock=cfg["clock"], cpu_threads=cfg["threads"], **settings)
    t0 = time.perf_counter()
    s = train_detector(spec, log=lambda *a: None)
    wall = time.perf_counter() - t0
    val = CocoDetection(cfg["coco"], "val")
    cats = category_ids_of(val)
    scored, tta = {}, cfg.get("tta") or ""
    for mode in ("", tta) if tta else ("",):  # plain, then with test-time augmentation (--tta)
        results = scored[mode] = []
        for t, (b, sc, lb) in predict_dataset(s["model"], val, spec.img, batch=8, tta=mode):  # img 256
            results.extend(coco_results(t["image_id"], b, sc, lb, cats))
    return {"results": scored[""], "results_tta": scored.get(tta) if tta else None, "steps": s["step"],
            "images": s["images"],
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

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_epoch_start", epoch_start)
    model.add_callback("on_train_batch_end", batch_end)
    model.add_callback("on_train_epoch_end", epoch_end)
    t0 = time.perf_counter()
    model.train(data=os.path.join(cfg["yolo"], "data.yaml"), epochs=1000, time=cfg["minutes"] / 60, imgsz=256,
                batch=cfg["batch"], nbs=cfg["batch"], workers=0, device="cpu", plots=False, amp=False,
                val=False,
                project=cfg["out"], name="yolov8n", exist_ok=True, pretrained=False, seed=cfg["seed"],
                verbose=False)
    wall = time.perf_counter() - t0
    last = os.path.join(cfg["out"], "yolov8n", "weights", "last.pt")
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


def worker_sahi(cfg: dict) -> dict:
    from tinyml.train.detect.evaluate import predict_images
    from tinyml.train.detect.predict import predict_image
    from tinyml.train.detect.run import load_detector
    from tinyml.train.detect.synthetic import SyntheticIR

    model, info = load_detector(os.path.join(cfg["out"], "nwd+bce"))
    ds = SyntheticIR(cfg["sahi_images"], size=512, seed=cfg["seed"] + 1)
    out = {"full": [], "sahi": [], "truth": []}
    seconds = {"full": 0.0, "sahi": 0.0}
    for i in range(len(ds)):
        image, t = ds[i]
        out["truth"].append(t["boxes"].tolist())
        for mode in ("full", "sahi"):
            t0 = time.perf_counter()
            if mode == "full":
                b, s, _ = predict_images(model, [image], 256, conf=0.25)[0]
            else:
                b, s, _ = predict_image(model, image, 256, conf=0.25, slice_size=256, overlap=0.2, batch=8)
            seconds[mode] += time.perf_counter() - t0
            out[mode].append((b.tolist(), s.tolist()))
    return {**out, "seconds": seconds}


WORKERS = {"tinyml": worker_tinyml, "ultralytics": worker_ultralytics, "sahi": worker_sahi}


# ---- the driver --------------------------------------------------------------------------------------------
def prepare(args) -> dict:
    from tinyml.train.detect.synthetic import write_synthetic_ir

    paths = {"coco": os.path.join(args.out, "data_coco"), "yolo": os.path.join(args.out, "data_yolo")}
    for fmt, root in paths.items():
        if not os.path.isdir(root):
            write_synthetic_ir(root, args.train, args.val, size=256, seed=args.seed, fmt=fmt)
    return paths


def _override(text: str) -> tuple:
    """[RUN:]KEY=VALUE with VALUE parsed as JSON where it parses (numbers, true/false, lists), else a string;
    a RUN prefix (a name of --only) applies it to that run alone."""
    from dataclasses import fields

    from tinyml.train.detect.run import DetectRun

    run, colon, rest = text.partition(":")
    if colon and "=" not in run:
        key, value = _override(rest)
        return (run, key), value
    key, sep, value = text.partition("=")
    known = {f.name for f in fields(DetectRun)} - {"out", "data", "time_limit", "time_clock", "cpu_threads"}
    if not sep or key not in known:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE with KEY one of {sorted(known)}")
    with contextlib.suppress(json.JSONDecodeError):
        return key, json.loads(value)
    return key, value


def launch(kind: str, cfg: dict, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": str(threads)}
    result = os.path.join(cfg["out"], f"{cfg['name']}.json")
    log = open(os.path.join(cfg["out"], f"{cfg['name']}.log"), "w")
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", kind, "--config",
                             json.dumps(cfg), "--result", result], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per run (default 10)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parallel", type=int, default=1, help="runs at a time (each on --threads threads)")
    p.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    for flag, n in (("--train", 400), ("--val", 100), ("--batch", 16), ("--seed", 0), ("--sahi-images", 40)):
        p.add_argument(flag, type=int, default=n)
    p.add_argument("--out", default="bench-detect")
    p.add_argument("--ultralytics-path", help="a folder to put first on sys.path for ultralytics")
    p.add_argument("--tta", default="", metavar="LETTERS", help="also score the tinyml runs with test-time "
                   "augmentation (h, v, t: flips / transpose; hvt: all 8 views), as the rows RUN+LETTERS")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=_override,
                   help="a DetectRun setting of the tinyml runs, VALUE as JSON (crop=128); repeatable")
    for flag, choices in (("--worker", sorted(WORKERS)), ("--config", None), ("--result", None)):
        p.add_argument(flag, choices=choices, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        out = WORKERS[args.worker](json.loads(args.config))
        with open(args.result, "w") as f:
            json.dump(out, f)
        return
    if args.tta:
        from tinyml.models.detection.targets import check_tta

        try:
            check_tta("--tta", args.tta)
        except ValueError as e:
            p.error(str(e))
    chosen = [n for n in args.only.split(",") if n]
    if unknown := sorted({base_run(n) for n in chosen} - set(ALL)):
        p.error(f"--only: unknown runs {unknown}; choose from {ALL}")
    os.makedirs(args.out, exist_ok=True)
    args.out = os.path.abspath(args.out)
    paths = prepare(args)
    base = {"minutes": args.minutes, "clock": args.clock, "threads": args.threads, "batch": args.batch,
            "seed": args.seed, "out": args.out, "sahi_images": args.sahi_images,
            "ultralytics_path": args.ultralytics_path, "tta": args.tta, **paths,
            "overrides": {k: v for k, v in args.set if isinstance(k, str)}, "run_overrides": {}}
    for (run, key), value in [(k, v) for k, v in args.set if not isinstance(k, str)]:
        if run not in chosen or base_run(run) not in TINYML_RUNS:
            p.error(f"--set {run}:{key}=...: {run!r} is not a tinyml run of --only {chosen}")
        base["run_overrides"].setdefault(run, {})[key] = value
    training = [n for n in chosen if n != "sahi"]
    print(f"bench/detect.py: {args.train} train / {args.val} held-out images of 256 px; budget "
          f"{args.minutes:g} min ({args.clock} clock, {args.threads} threads) per run; runs {training}, "
          f"{args.parallel} at a time{'; tinyml settings ' + str(dict(args.set)) if args.set else ''}",
          flush=True)
    pending, running, done = list(training), [], {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            kind = "ultralytics" if base_run(name) == "yolov8n" else "tinyml"
            running.append((name, launch(kind, {**base, "name": name}, args.threads), time.perf_counter()))
        time.sleep(2)
        for item in list(running):
            name, proc, t0 = item
            if proc.poll() is not None:
                running.remove(item)
                done[name] = _read(args.out, name, proc.returncode)
                print(f"  {name}: finished in {time.perf_counter() - t0:.0f}s wall (rc {proc.returncode})",
                      flush=True)
    if "sahi" in chosen:
        proc = launch("sahi", {**base, "name": "sahi"}, args.threads)
        proc.wait()
        done["sahi"] = _read(args.out, "sahi", proc.returncode)
    report(done, paths, args)


def _read(out: str, name: str, rc: int) -> dict | None:
    path = os.path.join(out, f"{name}.json")
    if rc != 0 or not os.path.exists(path):
        print(f"  {name} failed (rc {rc}); see {os.path.join(out, name + '.log')}")
        return None
    with open(path) as f:
        return json.load(f)


def report(done: dict, paths: dict, args) -> None:
    from tinyml.train.detect.data import CocoDetection
    from tinyml.train.detect.evaluate import category_ids_of, ground_truth

    val = CocoDetection(paths["coco"], "val")
    gt = ground_truth([val[i][1] for i in range(len(val))], category_ids_of(val), val.class_names)
    rows = []
    print(f"\nheld-out: {len(val)} images, {len(gt['annotations'])} targets; budget {args.minutes:g} min "
          f"({args.clock} clock) on {args.threads} threads each")
    print(f"{'run':<11}{'AP50':>7}{'AP':>7}{'AP_small':>9}{'AP50<8px':>9}{'steps':>7}{'epochs':>7}"
          f"{'img/s':>8}{'img/cpu-s x' + str(args.threads):>15}")
    for name in [n for n in done if n != "sahi" and done[n]]:
        r = done[name]
        m = score(r["results"], gt)
        per_wall = r["images"] / max(r["train_wall_s"], 1e-9)
        per_cpu = r["images"] / max(r["train_cpu_s"] / args.threads, 1e-9)
        epochs = r["images"] / args.train
        rows.append({"run": name, **m, "epochs": epochs, "images_per_s": per_wall,
                     "images_per_cpu_s": per_cpu,
                     **{k: r[k] for k in ("steps", "images", "train_wall_s", "train_cpu_s", "run_wall_s")}})
        print(f"{name:<11}{m['AP50']:7.4f}{m['AP']:7.4f}{m['AP_small']:9.4f}{m['AP50_under8px']:9.4f}"
              f"{r['steps']:7d}{epochs:7.2f}{per_wall:8.2f}{per_cpu:15.2f}")
        if r.get("results_tta") is not None:  # the same model, test-time augmentation (--tta)
            t = score(r["results_tta"], gt)
            rows.append({**rows[-1], "run": f"{name}+{args.tta}", **t})
            print(f"{name + '+' + args.tta:<11}{t['AP50']:7.4f}{t['AP']:7.4f}{t['AP_small']:9.4f}"
                  f"{t['AP50_under8px']:9.4f}")
    if "nwd+bce" in done and "yolov8n" in done and done["nwd+bce"] and done["yolov8n"]:
        a, b = (next(x for x in rows if x["run"] == n) for n in ("nwd+bce", "yolov8n"))
        rate = lambda x: x["images"] / max(x["train_cpu_s"], 1e-9)  # noqa: E731
        print(f"tinyml / yolov8n: AP50 {a['AP50']:.4f} vs {b['AP50']:.4f}; training throughput ratio "
              f"(yolov8n time / tinyml time per image, CPU) {rate(a) / max(rate(b), 1e-12):.3f}")
    if done.get("sahi"):
        s = done["sahi"]
        print(f"\nSAHI on {len(s['truth'])} held-out 512 x 512 images (nwd+bce model, conf 0.25): "
              "targets <= 4 px")
        for mode in ("full", "sahi"):
            r = recall(s["truth"], s[mode])
            print(f"  {mode:<5} recall@IoU0.5 {r['recall_iou50']:.4f}  "
                  f"recall@3px {r['recall_centre3px']:.4f}  "
                  f"({r['targets']} targets; {s['seconds'][mode]:.1f}s inference)")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"rows": rows, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
