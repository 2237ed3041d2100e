"""`tinyml detect train` as a function: data, detector, DetectTrainer, run folder.

    spec = DetectRun(out="runs/ir", epochs=30)          # no data: the synthetic infrared set, written to
    summary = train_detector(spec)                      # runs/ir/data in the COCO layout, seeded
    model, info = load_detector("runs/ir")              # the trained detector (eval mode) and its run info

A run folder holds detect.json (the run's settings: what --resume repeats), data/ (the synthetic set, when
no --data was given), checkpoint.safetensors (model config + weights, AdamW moments, schedule, sampler
position, RNG, and the settings, checked on resume), metrics.jsonl (losses and their cls / box / dfl
parts, lr, images/s per step; val AP50 / AP / AP75 / AP_small / AR100 / Pd / Fa per evaluation) and
loss.png (losses and validation curves).

The settings (settings.py): the default is CenterNet (models/detection/centernet.py, its own heatmap focal and
L1 size / offset losses, regressed on the 3 x 3 cells around each centre) at heatmap stride 1 on crops of a
quarter of img, vertical flips (vflip 0.5), a weight EMA of decay 0.999 and flip test-time augmentation "hv"
at validation, the best setting measured for 10-minute runs; arch="yolo" trains the Detector (crop half of
img, EMA decay 0.9999: its measured defaults). DetectRun.resolved() fills in those architecture-dependent
values; detect.json and the checkpoint record them.

Training recipe (ultralytics' for short runs, where it has one): AdamW, lr 0.002 (its optimizer="auto" choice
for short runs), betas (0.9, 0.999), weight decay 5e-4 on weights only, gradient clipping at 10, linear warmup
over one epoch (at most 100 steps), cosine decay to lr / 100 at the last step (lrf 0.01); an EMA of the
weights (ultralytics' ModelEMA, ramp tau 500 steps: ema.py) is what is evaluated, and what load_detector
returns; augmentation: horizontal and vertical flips (0.5 each; --vflip), mosaic (0.5, at native scale so that
1-2 px targets stay 1-2 px), no scale jitter by default (bilinear resampling smears a 1 px target into a 2 x 2
blob of a quarter of its contrast), and training on crop x crop windows (the detector being fully
convolutional; validation and predict see whole images), 30 % of them placed anywhere in the image and the
rest around its targets (crop_anywhere 0.3: the clutter far from every target is trained on as background,
not only the clutter next to one); the next batch is built on a worker thread while a
step trains (loop.py's EpochSampler prefetch: the same batches, ~3-12 % more steps per second). Validation
(COCO AP, Pd / Fa, with the run's test-time augmentation) runs every eval_every epochs, by default "auto"
(loop.py's auto_eval_epochs: a small share of the run), and at the last step. The Detector is set up for
targets of a few pixels: strides 4 / 8 / 16 (a P2 level; 2 / 4 / 8 / 16 with --strides), the nearest-anchor
fallback on the finest level, NWD overlap in the assigner, box prior 1 cell, signed box sides of box_shift
0.25 cells (a 1 px box beside its nearest stride-4 anchor can be coded) (models/detection/yolo.py says why
each); --box-loss nwd by default, with NWD's constant C = nwd_c "auto": the training boxes' mean sqrt(w h) at
img (the NWD paper's rule; 4.67 px on the synthetic set); the assigner's NWD overlap keeps C = assign_nwd_c =
12.8. docs/detection.md gives the measurements behind these defaults.

Resume is bit-exact: N epochs straight and N/2 epochs + --resume to N give the same weights (the
sampler's permutation and augmentation are functions of (seed, epoch, index), the Trainer restores the
rest), as far as the kernels are deterministic: on several threads csrc/conv.cpp's weight gradient adds
per-thread partial sums whose split depends on timing, so runs differ in the last bits (~1e-7) there; on
one thread (tinyml.set_num_threads(1)) they are identical. With a time limit the run re-plans its epochs
to the limit after every epoch (ultralytics' `time`), which depends on the clock, so such a run is not
reproducible.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from tinyml.models.detection.centernet import CenterNet
from tinyml.models.detection.yolo import Detector

import tinyml

from ..checkpoint import load_checkpoint
from ..runs import CLIError
from ..trainer import CHECKPOINT, TrainConfig
from .augment import AugmentedDataset
from .data import open_detection_dataset
from .dataset_base import probe_image
from .ema import ModelEMA
from .evaluate import category_ids_of
from .loop import DetectTrainer, EpochSampler
from .settings import MODEL_SIZES, RUN_FILE, DetectRun, read_run_record, upgrade_run_record, write_run_record

__all__ = ["DetectRun", "train_detector", "load_detector", "prepare_data", "build_detector",
           "resumed_detector", "mean_object_size", "RUN_FILE", "MODEL_SIZES", "read_run_record",
           "upgrade_run_record", "write_run_record"]

ARCHITECTURES = {"yolo": Detector, "centernet": CenterNet}
TRAIN_IMAGE_CACHE = 1 << 30  # bytes of decoded training images kept in memory
AUGMENT = {"hflip": 0.5, "mosaic": 0.5}  # + DetectRun.vflip, and scale jitter when DetectRun.scale_jitter set


def _synthetic_manifest(spec: DetectRun) -> dict:
    return {"generator": "SyntheticIR", "n_train": spec.synthetic_train, "n_val": spec.synthetic_val,
            "size": spec.synthetic_size, "seed": spec.seed, "format": "coco"}


def prepare_data(spec: DetectRun, log=print):
    """(train, val) datasets; without spec.data, the synthetic set is written to out/data first (kept when
    a previous run wrote the same one)."""
    root = spec.data
    if root is None:
        from .synthetic import write_synthetic_ir

        root = os.path.join(spec.out, "data")
        manifest_path = os.path.join(root, "synthetic.json")
        wanted = _synthetic_manifest(spec)
        have = None
        if os.path.isfile(manifest_path):
            with open(manifest_path) as f:
                have = json.load(f)
        if have != wanted:
            log(f"writing the synthetic infrared set ({spec.synthetic_train} train + {spec.synthetic_val} "
                f"val images of {spec.synthetic_size}x{spec.synthetic_size}, seed {spec.seed}) to {root}")
            write_synthetic_ir(root, spec.synthetic_train, spec.synthetic_val, size=spec.synthetic_size,
                               seed=spec.seed, fmt="coco")
            with open(manifest_path, "w") as f:
                json.dump(wanted, f)
    train = open_detection_dataset(root, "train", on_error=spec.on_error)
    if len(train) == 0:
        raise CLIError(f"--data {root}: the train split has no images")
    try:
        val = open_detection_dataset(root, "val", on_error=spec.on_error, channels=train.in_channels)
    except (ValueError, FileNotFoundError) as e:
        why = str(e).splitlines()[0]
        raise CLIError(f"--data {root}: a val split is needed for validation ({why})") from None
    if list(val.class_names) != list(train.class_names) and val.format_name == train.format_name == "coco":
        raise CLIError(f"--data {root}: the val split's categories {val.class_names} differ from the train "
                       f"split's {train.class_names}")
    if len(val) == 0:
        raise CLIError(f"--data {root}: the val split has no images")
    if len(train.class_names) == 0:
        raise CLIError(f"--data {root}: no classes (the train split has no labels and no class names)")
    return train, val


def mean_object_size(dataset, img: int) -> float:
    """The mean absolute size sqrt(w h) of the dataset's boxes, in pixels at the scale the model sees them
    (letterboxed to img: x img / max(H, W)), from the annotations (image headers only for the YOLO layout's
    normalised boxes). The NWD paper's choice of C. 12.8 (its AI-TOD value) for a set without boxes."""
    sizes = []
    for record in dataset.records:
        boxes = np.asarray(record["boxes"], np.float64).reshape(-1, 4)
        if not len(boxes):
            continue
        h, w = record["size"] if "size" in record else probe_image(record["path"])[:2]
        if dataset.format_name == "yolo":  # its records hold normalised x1 y1 x2 y2
            boxes = boxes * [w, h, w, h]
        sizes.append(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) * img / max(h, w))
    return float(np.concatenate(sizes).mean()) if sizes else 12.8


def build_detector(num_classes: int, in_channels: int, spec: DetectRun, nwd_c: float | None = None):
    """The Detector set up for small targets (module docstring), or CenterNet, seeded; nwd_c: the resolved
    box-loss C when spec.nwd_c is "auto" (12.8 if neither is given)."""
    tinyml.manual_seed(spec.seed)
    if spec.arch == "centernet":
        return CenterNet(num_classes=num_classes, size=spec.model, in_channels=in_channels,
                         stride=spec.heatmap_stride, reg_radius=spec.reg_radius)
    return Detector(num_classes=num_classes, size=spec.model, in_channels=in_channels,
                    strides=tuple(spec.strides),
                    box_loss=spec.box_loss, cls_loss=spec.cls_loss, nearest_fallback=True,
                    assign_overlap="nwd", box_prior=1.0, min_candidates=spec.min_candidates,
                    reg_max=spec.reg_max, box_shift=spec.box_shift,
                    nwd_constant=nwd_c or (12.8 if spec.nwd_c == "auto" else float(spec.nwd_c)),
                    assign_nwd_constant=spec.assign_nwd_c)


def resumed_detector(spec: DetectRun, fresh):
    """(model, config) to resume spec.out with: the model as its checkpoint's config builds it (from_config
    reads a config of older code as that code built it, e.g. CenterNet's unused PAN bottom-up modules) and
    that config as saved, which the checkpoint's must equal; `fresh` is what the settings build now, and any
    difference beyond what from_config fills in for older code is refused, naming it."""
    path = os.path.join(spec.out, CHECKPOINT)
    saved = (load_checkpoint(path).get("extra") or {}).get("detector")
    if not isinstance(saved, dict):
        return fresh, fresh.config
    model = ARCHITECTURES[spec.arch].from_config(saved)
    built_only = getattr(type(model), "OLDER_CONFIG", {})  # filled in for older code, not settings
    differ = sorted(k for k in set(model.config) | set(fresh.config)
                    if k not in built_only and model.config.get(k) != fresh.config.get(k))
    if differ:
        raise ValueError(f"checkpoint {path} comes from another configuration (differs in: "
                         f"{', '.join('detector.' + k for k in differ)})")
    return model, saved


def train_config(spec: DetectRun, steps_per_epoch: int) -> TrainConfig:
    max_steps = spec.epochs * steps_per_epoch
    return TrainConfig(max_steps=max_steps, lr=spec.lr, min_lr=spec.lr * 0.01,
                       warmup_steps=min(steps_per_epoch, 100), weight_decay=5e-4, betas=(0.9, 0.999),
                       grad_clip=10.0, eval_interval=steps_per_epoch, log_interval=1,
                       progress=spec.progress)  # eval_interval: DetectTrainer sets it from eval_every


def train_detector(spec: DetectRun, log=print) -> dict:
    """Trains (or, with spec.resume, continues) the run in spec.out; returns the Trainer's summary plus
    "val" (the last evaluation), "best_ap50", "epochs", "images_per_s", "model_config"."""
    spec.check()
    spec = spec.resolved()  # crop and ema_decay as numbers (settings.py)
    train, val = prepare_data(spec, log)
    train.cache_images(TRAIN_IMAGE_CACHE)  # decoded once, not on every sample (dataset_base.py)
    train.masks = False  # neither head reads masks in training; decoding them per sample costs time
    category_ids = category_ids_of(train)
    augment = AUGMENT if spec.augment else {"hflip": 0.0}
    if spec.augment:
        augment = {**augment, "vflip": spec.vflip,
                   "scale": tuple(spec.scale_jitter) if spec.scale_jitter else None}
    crop = spec.train_crop
    if crop is not None:  # windows of the images at the scale the model sees them at img
        augment = {**augment, "crop": crop, "fit": spec.img,
                   "crop_anywhere": spec.crop_anywhere if spec.augment else 0.0}
    train_view = AugmentedDataset(train, crop or spec.img, train=True, seed=spec.seed, **augment)
    nwd_c = mean_object_size(train, spec.img) if spec.nwd_c == "auto" else float(spec.nwd_c)
    model = build_detector(len(train.class_names), train.in_channels, spec, nwd_c)
    model_config = model.config
    if spec.resume:
        model, model_config = resumed_detector(spec, model)
    ema = ModelEMA(model, spec.ema_decay, spec.ema_tau) if spec.ema else None
    sampler = EpochSampler(train_view, spec.batch, seed=spec.seed, prefetch=True)  # builds a batch ahead
    data_id = os.path.abspath(spec.data) if spec.data else {**_synthetic_manifest(spec)}
    augment_json = {k: list(v) if isinstance(v, tuple) else v for k, v in augment.items()}
    extra = {"arch": spec.arch, "detector": model_config, "class_names": list(train.class_names),
             "category_ids": category_ids, "img": spec.img, "data": data_id, "augment": augment_json,
             "ema": {"decay": spec.ema_decay, "tau": spec.ema_tau} if ema else None}
    time_limit = spec.time_limit * 60 if spec.time_limit is not None else None
    clock = time.perf_counter
    if spec.time_clock == "cpu":  # minutes of cpu_threads busy cores: the same work on a loaded machine
        def clock():
            return time.process_time() / spec.cpu_threads
    config = train_config(spec, sampler.steps_per_epoch)
    side = crop or spec.img  # a validation's cost in epochs of training (loop.py's auto_eval_epochs)
    eval_cost = 2 ** len(spec.tta) * len(val) * spec.img ** 2 / (3 * len(train) * side ** 2)
    trainer = DetectTrainer(model, sampler, val, config, out_dir=spec.out, extra_state=extra, img=spec.img,
                            time_limit=time_limit, eval_batch=spec.batch, clock=clock, ema=ema,
                            eval_every=spec.eval_every, eval_cost=eval_cost, tta=spec.tta)
    write_run_record(spec)
    name = "Detector" if spec.arch == "yolo" else "CenterNet"
    c = f" (C = {nwd_c:.3g} px)" if spec.box_loss == "nwd" else ""
    losses = (f"box loss {spec.box_loss}{c}, cls loss {spec.cls_loss}" if spec.arch == "yolo" else
              "heatmap focal + L1 size / offset losses")
    crop = f" (trained on {crop} px crops)" if crop else ""
    stride = f" (heatmap stride {spec.heatmap_stride})" if spec.arch == "centernet" else ""
    averaged = f"EMA {spec.ema_decay:g}" if ema else "no EMA"
    log(f"tinyml detect train: {name} {spec.model}{stride} ({sum(p.numel() for p in model.parameters()):,} "
        f"parameters), {len(train.class_names)} class(es) {train.class_names}, {len(train)} train / "
        f"{len(val)} val images at {spec.img} px{crop}, batch {spec.batch}, {spec.epochs} epochs of "
        f"{sampler.steps_per_epoch} steps, {losses}, {averaged}, validation {trainer.cadence()} with tta "
        f"{spec.tta or 'none'}"
        f"{', time limit %g min' % spec.time_limit if spec.time_limit is not None else ''} -> {spec.out}")
    try:
        summary = trainer.fit(resume=spec.resume)
    finally:
        sampler.close()
    if ema is not None:  # what the run's evaluations scored and load_detector returns
        model.load_state_dict(ema.state_dict_for_model())
    summary["model_config"] = model.config
    summary["model"] = model
    return summary


def load_detector(path: str, weights: str = "ema"):
    """(the detector in eval mode, the run's info: arch, class_names, category_ids, img, detector config,
    data, step, tta) from a run folder or its checkpoint.safetensors. weights: "ema" (the average the run
    evaluated, or the trained weights of a run without EMA) or "trained" (the optimizer's own last weights).

    info["tta"] is the run's test-time augmentation ("" for runs made before it was a setting). It is not
    applied by itself: predict_source / predict_dataset / evaluate_detector default to tta="" (plain
    inference, as before); pass tta=info["tta"] for the run's (what `tinyml detect predict` / `eval` do
    unless --tta is given)."""
    if weights not in ("ema", "trained"):
        raise ValueError(f"load_detector: weights={weights!r}, expected 'ema' or 'trained'")
    ckpt = os.path.join(path, CHECKPOINT) if os.path.isdir(path) else path
    if not os.path.exists(ckpt):
        raise FileNotFoundError(f"--ckpt {path}: no {CHECKPOINT} there (a `tinyml detect train` run folder "
                                "or its checkpoint file)")
    state = load_checkpoint(ckpt)
    info = state.get("extra") or {}
    if "detector" not in info:
        raise CLIError(f"--ckpt {path}: {ckpt} is a tinyml checkpoint but not of a detector "
                       "(`tinyml detect train` runs only)")
    arch = info.get("arch", "yolo")
    if arch not in ARCHITECTURES:
        raise CLIError(f"--ckpt {path}: unknown detector architecture {arch!r} (known: "
                       f"{', '.join(ARCHITECTURES)})")
    model = ARCHITECTURES[arch].from_config(info["detector"])
    use_ema = weights == "ema" and state.get("ema")
    chosen = state["ema"]["weights"] if use_ema else state["model"]  # the EMA, as evaluated
    try:
        model.load_state_dict(chosen, strict=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise CLIError(f"--ckpt {path}: the weights do not fit the saved detector config "
                       f"({str(e).splitlines()[0]})") from None
    model.eval()
    return model, {**info, "step": int(state["step"]), "tta": str(state.get("tta") or "")}
