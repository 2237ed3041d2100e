"""Small-object detection on the synthetic infrared set (issue #13's goals), tinyml vs ultralytics YOLOv8n.

    python bench/detect.py                     # 10-minute budgets (the issue's); --minutes 2 for a quick one
    python bench/detect.py --minutes 3 --parallel 2 --only nwd+bce,yolov8n
    python bench/detect.py --minutes 2 --only nwd+bce --set crop=0 --set strides=[2,4,8,16]   # a variant
    python bench/detect.py --parallel 2 --only nwd+bce,centernet@s1 --set centernet@s1:heatmap_stride=1
        # NAME@TAG runs NAME under its own name; --set RUN:KEY=VALUE sets KEY for that run only
    python bench/detect.py --only sahi --sahi-model RUN_FOLDER --tta hv     # SAHI on a saved run, no training

Data: SyntheticIR (train/detect/synthetic.py), 400 training images of 256 x 256 and 100 held-out ones (the
val split: images 400..499 of the seed's stream, never trained on), written in the COCO layout for tinyml
and the YOLO layout for ultralytics (the same pixels). Every model is scored on the held-out images by
models/detection/metrics.py's coco_evaluate (pycocotools' numbers), from detections at conf 0.001, IoU 0.6,
max 300 per image, at imgsz 256. `--tta hvt` also scores every tinyml model with test-time augmentation (the
mean over the 8 flipped / transposed views, `predict(..., tta=)`), as the row RUN+hvt; the `default` run is
scored plain and with its own tta (hv) when --tta is not given.

Runs, each in a worker process of its own on --threads threads (OMP_NUM_THREADS, torch.set_num_threads),
with the same budget: --minutes of `--clock cpu` (default: process CPU time / threads, i.e. minutes of that
many fully busy cores, so a budget buys the same work on a loaded machine; `--clock wall` for wall time):
    default     `tinyml detect train` with no flags (nothing pinned: CenterNet tiny at heatmap stride 1, 64 px
                crops, EMA 0.999 / tau 500; scored plain and with its TTA hv); `--set KEY=VALUE`: a DetectRun
                setting of every tinyml run
    nwd+bce     tinyml Detector tiny (`--arch yolo` pinned, hence 128 px crops and EMA 0.9999 / tau 500: NWD
                boxes, C = the mean box size, BCE, signed sides)
    ciou+bce    the same with the CIoU box loss          -> NWD vs CIoU, AP50 on targets under 8 px
    nwd+focal   sigmoid focal loss for the classes       -> ATFL vs focal vs BCE
    nwd+atfl    EFLNet's adaptive threshold focal loss;  ciou+focal: CIoU boxes with focal classes
    centernet   models/detection/centernet.py's stride-4 heatmap head, its historic row (`--arch centernet
                --heatmap-stride 4`, 128 px crops, EMA 0.9999 pinned; its own losses)
    yolov8n     ultralytics YOLOv8n from scratch (yolov8n.yaml), imgsz 256, batch 16, nbs=16 (a step per
                batch: the issue's calibration), workers=0, its `time` budget (re-planned epochs, as ours);
                ultralytics' trainer clock is swapped for the same CPU clock under --clock cpu
    yolov8n-p2  the same with ultralytics' P2 variant (yolov8-p2.yaml at scale n: a stride-4 level added,
                strides 4-32), ultralytics' own configuration for small objects
    sahi        the default run's model (nwd+bce's in an older --out; --sahi-model RUN: any saved run folder,
                then nothing is trained) on 512 x 512 held-out images (SyntheticIR seed + 1): full-image
                inference (letterboxed to the run's img, 256) vs SAHI (img px slices, overlap 0.2, plus the
                full image, GREEDYNMM/IoS), plain and, with --tta, with test-time augmentation
The tinyml rows pin the settings they were measured with (bench/detect_workers.py's TINYML_RUNS), so they
stay what they were when `tinyml detect train`'s defaults move; the tinyml / yolov8n line compares the
`default` run (nwd+bce when only that ran).

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
from detect_workers import TINYML_RUNS, WORKERS, base_run, run_settings  # noqa: F401 (run_settings: tests)

ULTRALYTICS_RUNS = ("yolov8n", "yolov8n-p2")
ALL = (*TINYML_RUNS, *ULTRALYTICS_RUNS, "sahi")


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
    p.add_argument("--sahi-model", metavar="RUN", help="the `tinyml detect train` run folder SAHI scores "
                   "(default: this bench's default run)")
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
    if args.sahi_model:
        args.sahi_model = os.path.abspath(args.sahi_model)
        if not os.path.isfile(os.path.join(args.sahi_model, "checkpoint.safetensors")):
            p.error(f"--sahi-model {args.sahi_model}: no checkpoint.safetensors there (a run folder)")
    os.makedirs(args.out, exist_ok=True)
    args.out = os.path.abspath(args.out)
    training = [n for n in chosen if n != "sahi"]
    paths = prepare(args) if training else {}  # SAHI alone makes its own 512 px images
    base = {"minutes": args.minutes, "clock": args.clock, "threads": args.threads, "batch": args.batch,
            "seed": args.seed, "out": args.out, "sahi_images": args.sahi_images,
            "ultralytics_path": args.ultralytics_path, "tta": args.tta, "sahi_model": args.sahi_model,
            **paths,
            "overrides": {k: v for k, v in args.set if isinstance(k, str)}, "run_overrides": {}}
    for (run, key), value in [(k, v) for k, v in args.set if not isinstance(k, str)]:
        if run not in chosen or base_run(run) not in TINYML_RUNS:
            p.error(f"--set {run}:{key}=...: {run!r} is not a tinyml run of --only {chosen}")
        base["run_overrides"].setdefault(run, {})[key] = value
    if training:
        print(f"bench/detect.py: {args.train} train / {args.val} held-out images of 256 px; budget "
              f"{args.minutes:g} min ({args.clock} clock, {args.threads} threads) per run; runs {training}, "
              f"{args.parallel} at a time{'; tinyml settings ' + str(dict(args.set)) if args.set else ''}",
              flush=True)
    else:
        print(f"bench/detect.py: SAHI only ({args.sahi_model or 'this --out'}'s model), no training",
              flush=True)
    pending, running, done = list(training), [], {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            kind = "ultralytics" if base_run(name) in ULTRALYTICS_RUNS else "tinyml"
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
    rows = []
    if any(done[n] for n in done if n != "sahi"):
        rows = _training_rows(done, paths, args)
    if done.get("sahi"):
        s = done["sahi"]
        print(f"\nSAHI on {len(s['truth'])} held-out 512 x 512 images ({s['arch']} model {s['model']}, conf "
              "0.25): targets <= 4 px")
        for mode in s["modes"]:
            r = recall(s["truth"], s[mode])
            rows.append({"run": f"sahi:{mode}", "model": s["model"], **r, "seconds": s["seconds"][mode]})
            print(f"  {mode:<9} recall@IoU0.5 {r['recall_iou50']:.4f}  "
                  f"recall@3px {r['recall_centre3px']:.4f}  "
                  f"({r['targets']} targets; {s['seconds'][mode]:.1f}s inference)")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"rows": rows, "args": vars(args)}, f, indent=1)


def _training_rows(done: dict, paths: dict, args) -> list[dict]:
    from tinyml.train.detect.data import CocoDetection
    from tinyml.train.detect.evaluate import category_ids_of, ground_truth

    val = CocoDetection(paths["coco"], "val")
    gt = ground_truth([val[i][1] for i in range(len(val))], category_ids_of(val), val.class_names)
    rows = []
    print(f"\nheld-out: {len(val)} images, {len(gt['annotations'])} targets; budget {args.minutes:g} min "
          f"({args.clock} clock) on {args.threads} threads each")
    print(f"{'run':<14}{'AP50':>7}{'AP':>7}{'AP_small':>9}{'AP50<8px':>9}{'steps':>7}{'epochs':>7}"
          f"{'img/s':>8}{'img/cpu-s x' + str(args.threads):>15}")
    for name in [n for n in done if n != "sahi" and done[n]]:
        r = done[name]
        m = score(r["results"], gt)
        per_wall = r["images"] / max(r["train_wall_s"], 1e-9)
        per_cpu = r["images"] / max(r["train_cpu_s"] / args.threads, 1e-9)
        epochs = r["images"] / args.train
        rows.append({"run": name, **m, "epochs": epochs, "images_per_s": per_wall,
                     "images_per_cpu_s": per_cpu, "settings": r.get("settings"),
                     **{k: r[k] for k in ("steps", "images", "train_wall_s", "train_cpu_s", "run_wall_s")}})
        print(f"{name:<14}{m['AP50']:7.4f}{m['AP']:7.4f}{m['AP_small']:9.4f}{m['AP50_under8px']:9.4f}"
              f"{r['steps']:7d}{epochs:7.2f}{per_wall:8.2f}{per_cpu:15.2f}")
        if r.get("results_tta") is not None:  # the same model, test-time augmentation
            tta = r.get("tta") or args.tta
            t = score(r["results_tta"], gt)
            rows.append({**rows[-1], "run": f"{name}+{tta}", **t})
            print(f"{name + '+' + tta:<14}{t['AP50']:7.4f}{t['AP']:7.4f}{t['AP_small']:9.4f}"
                  f"{t['AP50_under8px']:9.4f}")
    ours = next((n for n in ("default", "nwd+bce") if done.get(n)), None)
    for peer in [p for p in ULTRALYTICS_RUNS if ours and done.get(p)]:
        a, b = (next(x for x in rows if x["run"] == n) for n in (ours, peer))
        with_tta = next((x for x in rows if x["run"].startswith(ours + "+")), None)
        extra = f" ({with_tta['AP50']:.4f} with {with_tta['run'][len(ours) + 1:]})" if with_tta else ""
        rate = lambda x: x["images"] / max(x["train_cpu_s"], 1e-9)  # noqa: E731
        ratio = rate(a) / max(rate(b), 1e-12)
        print(f"tinyml ({ours}) / {peer}: AP50 {a['AP50']:.4f}{extra} vs {b['AP50']:.4f}; training "
              f"throughput ratio ({peer} time / tinyml time per image, CPU) {ratio:.3f}")
    return rows


if __name__ == "__main__":
    main()
