"""`tinyml detect train` as a function: data, detector, DetectTrainer, run folder.

    spec = DetectRun(out="runs/ir", epochs=30)          # no data: the synthetic infrared set, written to
    summary = train_detector(spec)                      # runs/ir/data in the COCO layout, seeded
    model, info = load_detector("runs/ir")              # the trained Detector (eval mode) and its run info

A run folder holds detect.json (the run's settings: what --resume repeats), data/ (the synthetic set, when
no --data was given), checkpoint.safetensors (model config + weights, AdamW moments, schedule, sampler
position, RNG, and the settings, checked on resume), metrics.jsonl (losses and their cls / box / dfl
parts, lr, images/s per step; val AP50 / AP / AP75 / AP_small / AR100 / Pd / Fa per evaluation) and
loss.png (losses and validation curves).

Training recipe (ultralytics' for short runs, where it has one): AdamW, lr 0.002 (its optimizer="auto"
choice for short runs), betas (0.9, 0.999), weight decay 5e-4 on weights only, gradient clipping at 10,
linear warmup over one epoch (at most 100 steps), cosine decay to lr / 100 at the last step (lrf 0.01);
an EMA of the weights (ultralytics' ModelEMA, decay 0.9999, ramp tau 500 steps: ema.py) is what is
evaluated, and what load_detector returns; augmentation: horizontal flips (0.5), mosaic (0.5, at native
scale so that 1-2 px targets stay 1-2 px), no scale jitter by default (bilinear resampling smears a 1 px
target into a 2 x 2 blob of a quarter of its contrast), and training on crop x crop windows (default half
of img: 4 times the steps per CPU-second, the detector being fully convolutional; validation and predict
see whole images). The Detector is set up for targets of a few pixels: strides 4 / 8 / 16 (a P2 level;
2 / 4 / 8 / 16 with --strides), the nearest-anchor fallback on the finest level, NWD overlap in the
assigner, box prior 1 cell, signed box sides of box_shift 0.25 cells (a 1 px box beside its nearest stride-4
anchor can be coded) (models/detection/yolo.py says why each); --box-loss nwd by default, with NWD's constant
C = nwd_c "auto": the training boxes' mean sqrt(w h) at img (the NWD paper's rule; 4.67 px on the synthetic
set); the assigner's NWD overlap keeps C = assign_nwd_c = 12.8.
arch="centernet" trains models/detection/centernet.py's CenterNet (heatmaps at heatmap_stride 4, 2 or 1,
its own losses).
docs/detection.md gives the measurements behind these defaults.

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
from dataclasses import asdict, dataclass

import numpy as np
from tinyml.models.detection.centernet import CenterNet
from tinyml.models.detection.yolo import BOX_LOSSES, CLS_LOSSES, HEAD_WIDTHS, Detector

import tinyml

from ..checkpoint import load_checkpoint
from ..runs import CLIError, UsageError
from ..trainer import CHECKPOINT, TrainConfig
from .augment import AugmentedDataset
from .data import open_detection_dataset
from .dataset_base import probe_image
from .ema import ModelEMA
from .evaluate import category_ids_of
from .loop import DetectTrainer, EpochSampler

__all__ = ["DetectRun", "train_detector", "load_detector", "prepare_data", "build_detector",
           "mean_object_size", "RUN_FILE", "MODEL_SIZES"]

RUN_FILE = "detect.json"
MODEL_SIZES = tuple(HEAD_WIDTHS)  # tiny, small
ARCHITECTURES = {"yolo": Detector, "centernet": CenterNet}
STRIDES = (2, 4, 8, 16, 32)
AUGMENT = {"hflip": 0.5, "mosaic": 0.5}  # + scale jitter when DetectRun.scale_jitter is set


@dataclass
class DetectRun:
    out: str
    data: str | None = None  # None: the synthetic infrared set, written to out/data
    model: str = "tiny"
    arch: str = "yolo"  # yolo: the anchor-free Detector; centernet: the stride-4 heatmap head (CenterNet)
    img: int = 256
    epochs: int = 30
    batch: int = 16
    lr: float = 0.002
    box_loss: str = "nwd"
    cls_loss: str = "bce"
    seed: int = 0
    resume: bool = False
    time_limit: float | None = None  # minutes of this invocation (training + evaluations)
    time_clock: str = "wall"  # the limit's clock: wall time, or "cpu": process CPU seconds / cpu_threads
    cpu_threads: int = 2
    eval_every: int = 1  # epochs between validations (and checkpoints)
    synthetic_train: int = 400
    synthetic_val: int = 100
    synthetic_size: int = 256
    augment: bool = True
    on_error: str = "raise"  # a bad image or label file: raise, or skip it and report the count
    progress: bool = True
    strides: tuple = (4, 8, 16)  # the Detector's levels (2 adds a stride-2 level from the stem)
    crop: int | None = None  # train on crop x crop windows of the img-scaled images: None = half of img
    #                          (rounded down to a multiple of the largest stride), 0 = whole images
    ema: bool = True  # evaluate, checkpoint for inference and predict with an EMA of the weights
    ema_decay: float = 0.9999
    ema_tau: float = 500.0  # the EMA's ramp d (1 - exp(-updates / tau)), in steps
    scale_jitter: tuple | None = None  # resize every training sample by U(lo, hi); None: never
    min_candidates: int = 1  # the assigner's fallback: gts with fewer anchors inside get the k nearest
    reg_max: int = 16  # DFL bins per box side (distances 0 .. reg_max - 1 cells)
    box_shift: float = 0.25  # cells a predicted box side may stop short of its anchor (Detector's box_shift)
    heatmap_stride: int = 4  # arch="centernet": the heatmap's stride (4, 2 or 1)
    nwd_c: float | str = "auto"  # NWD's C (pixels) of the NWD box loss; auto: mean_object_size(train, img)
    assign_nwd_c: float = 12.8  # the assigner's NWD overlap constant C in pixels

    @property
    def train_crop(self) -> int | None:
        """The training window's side in pixels, or None for whole images (crop 0, or img too small to
        halve)."""
        if self.crop is not None:
            return self.crop or None
        largest = max(int(s) for s in self.strides)
        half = self.img // 2 // largest * largest
        return half if half >= largest else None

    def check(self) -> None:
        """UsageError for settings that cannot work, before anything is read or written."""
        if self.model not in MODEL_SIZES:
            raise UsageError(f"--model {self.model!r}: expected one of {', '.join(MODEL_SIZES)}")
        if self.arch not in ARCHITECTURES:
            raise UsageError(f"--arch {self.arch!r}: expected one of {', '.join(ARCHITECTURES)}")
        if self.arch == "centernet" and (self.box_loss, self.cls_loss) != ("nwd", "bce"):
            raise UsageError(f"--box-loss {self.box_loss} / --cls-loss {self.cls_loss}: CenterNet has its "
                             "own losses (focal heatmap, L1 size and offset); these flags are for yolo")
        if self.box_loss not in BOX_LOSSES:
            raise UsageError(f"--box-loss {self.box_loss!r}: expected one of {', '.join(BOX_LOSSES)}")
        if self.cls_loss not in CLS_LOSSES:
            raise UsageError(f"--cls-loss {self.cls_loss!r}: expected one of {', '.join(CLS_LOSSES)}")
        strides = tuple(int(s) for s in self.strides)
        given = ",".join(map(str, strides))
        if (len(strides) < 2 or any(s not in STRIDES for s in strides)
                or list(strides) != sorted(set(strides))):
            raise UsageError(f"--strides {given}: expected two or more increasing values from "
                             f"{', '.join(map(str, STRIDES))}")
        if self.arch == "centernet" and strides != (4, 8, 16):
            raise UsageError(f"--strides {given}: for --arch yolo (CenterNet has --heatmap-stride)")
        if self.heatmap_stride not in (1, 2, 4):
            raise UsageError(f"--heatmap-stride {self.heatmap_stride}: expected 4, 2 or 1")
        largest = max(strides)
        if self.img < largest or self.img % largest:
            raise UsageError(f"--img {self.img}: must be a multiple of the detector's largest stride "
                             f"{largest}")
        if self.crop and (self.crop < largest or self.crop % largest or self.crop > self.img):
            raise UsageError(f"--crop {self.crop}: must be a multiple of the detector's largest stride "
                             f"{largest} and at most --img {self.img} (0: whole images)")
        if self.scale_jitter is not None:
            lo, hi = self.scale_jitter
            if not 0 < lo <= hi < float("inf"):
                raise UsageError(f"--scale-jitter {lo},{hi}: expected 0 < LO <= HI")
        if not 3 <= self.reg_max <= 64:
            raise UsageError(f"--reg-max {self.reg_max}: expected 3 to 64 bins (the box prior is 1 cell, "
                             "which needs reg_max > 2)")
        for flag, c in (("--nwd-c", self.nwd_c), ("--assign-nwd-c", self.assign_nwd_c)):
            if flag == "--nwd-c" and c == "auto":
                continue
            if isinstance(c, str) or not 0.0 < c < float("inf"):
                raise UsageError(f"{flag} {c}: NWD's constant C must be a positive number of pixels")
        if not 0.0 <= self.box_shift <= 1.0:
            raise UsageError(f"--box-shift {self.box_shift}: expected 0 to 1 cells")
        if not 0.0 < self.ema_decay < 1.0 or not self.ema_tau > 0:
            raise UsageError(f"--ema-decay {self.ema_decay} / --ema-tau {self.ema_tau}: expected a decay in "
                             "(0, 1) and tau > 0 steps")
        if self.time_clock not in ("wall", "cpu"):
            raise UsageError(f"time_clock {self.time_clock!r}: expected 'wall' or 'cpu'")
        if self.data is None and self.synthetic_size < 64:
            raise UsageError(f"--synthetic-size {self.synthetic_size}: the synthetic set needs images of at "
                             "least 64 px (9 px targets with their margins)")
        if self.data is not None and not os.path.isdir(self.data):
            raise UsageError(f"--data {self.data}: no such folder")
        ckpt = os.path.join(self.out, CHECKPOINT)
        if self.resume and not os.path.exists(ckpt):
            raise UsageError(f"--resume: {self.out} holds no checkpoint ({CHECKPOINT}) to resume from")
        if not self.resume and os.path.exists(ckpt):
            raise UsageError(f"--out {self.out} already holds a run ({CHECKPOINT}): add --resume to continue "
                             "it, or choose another --out")


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
                         stride=spec.heatmap_stride)
    return Detector(num_classes=num_classes, size=spec.model, in_channels=in_channels,
                    strides=tuple(spec.strides),
                    box_loss=spec.box_loss, cls_loss=spec.cls_loss, nearest_fallback=True,
                    assign_overlap="nwd", box_prior=1.0, min_candidates=spec.min_candidates,
                    reg_max=spec.reg_max, box_shift=spec.box_shift,
                    nwd_constant=nwd_c or (12.8 if spec.nwd_c == "auto" else float(spec.nwd_c)),
                    assign_nwd_constant=spec.assign_nwd_c)


def train_config(spec: DetectRun, steps_per_epoch: int) -> TrainConfig:
    max_steps = spec.epochs * steps_per_epoch
    return TrainConfig(max_steps=max_steps, lr=spec.lr, min_lr=spec.lr * 0.01,
                       warmup_steps=min(steps_per_epoch, 100), weight_decay=5e-4, betas=(0.9, 0.999),
                       grad_clip=10.0, eval_interval=spec.eval_every * steps_per_epoch, log_interval=1,
                       progress=spec.progress)


def write_run_record(spec: DetectRun) -> None:
    os.makedirs(spec.out, exist_ok=True)
    path = os.path.join(spec.out, RUN_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        per_invocation = ("out", "resume", "progress", "time_limit", "time_clock", "cpu_threads")
        record = {k: v for k, v in asdict(spec).items() if k not in per_invocation}
        json.dump(record, f, indent=1)
    os.replace(tmp, path)


def read_run_record(out: str) -> dict:
    path = os.path.join(out, RUN_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def train_detector(spec: DetectRun, log=print) -> dict:
    """Trains (or, with spec.resume, continues) the run in spec.out; returns the Trainer's summary plus
    "val" (the last evaluation), "best_ap50", "epochs", "images_per_s", "model_config"."""
    spec.check()
    train, val = prepare_data(spec, log)
    category_ids = category_ids_of(train)
    augment = AUGMENT if spec.augment else {"hflip": 0.0}
    if spec.augment:
        augment = {**augment, "scale": tuple(spec.scale_jitter) if spec.scale_jitter else None}
    crop = spec.train_crop
    if crop is not None:  # windows of the images at the scale the model sees them at img
        augment = {**augment, "crop": crop, "fit": spec.img}
    train_view = AugmentedDataset(train, crop or spec.img, train=True, seed=spec.seed, **augment)
    nwd_c = mean_object_size(train, spec.img) if spec.nwd_c == "auto" else float(spec.nwd_c)
    model = build_detector(len(train.class_names), train.in_channels, spec, nwd_c)
    ema = ModelEMA(model, spec.ema_decay, spec.ema_tau) if spec.ema else None
    sampler = EpochSampler(train_view, spec.batch, seed=spec.seed)
    data_id = os.path.abspath(spec.data) if spec.data else {**_synthetic_manifest(spec)}
    augment_json = {k: list(v) if isinstance(v, tuple) else v for k, v in augment.items()}
    extra = {"arch": spec.arch, "detector": model.config, "class_names": list(train.class_names),
             "category_ids": category_ids, "img": spec.img, "data": data_id, "augment": augment_json,
             "ema": {"decay": spec.ema_decay, "tau": spec.ema_tau} if ema else None}
    time_limit = spec.time_limit * 60 if spec.time_limit is not None else None
    clock = time.perf_counter
    if spec.time_clock == "cpu":  # minutes of cpu_threads busy cores: the same work on a loaded machine
        def clock():
            return time.process_time() / spec.cpu_threads
    config = train_config(spec, sampler.steps_per_epoch)
    trainer = DetectTrainer(model, sampler, val, config, out_dir=spec.out, extra_state=extra, img=spec.img,
                            time_limit=time_limit, eval_batch=spec.batch, clock=clock, ema=ema)
    write_run_record(spec)
    name = "Detector" if spec.arch == "yolo" else "CenterNet"
    c = f" (C = {nwd_c:.3g} px)" if spec.box_loss == "nwd" else ""
    losses = (f"box loss {spec.box_loss}{c}, cls loss {spec.cls_loss}" if spec.arch == "yolo" else
              "heatmap focal + L1 size / offset losses")
    crop = f" (trained on {crop} px crops)" if crop else ""
    log(f"tinyml detect train: {name} {spec.model} ({sum(p.numel() for p in model.parameters()):,} "
        f"parameters), {len(train.class_names)} class(es) {train.class_names}, {len(train)} train / "
        f"{len(val)} val images at {spec.img} px{crop}, batch {spec.batch}, {spec.epochs} epochs of "
        f"{sampler.steps_per_epoch} steps, {losses}"
        f"{', time limit %g min' % spec.time_limit if spec.time_limit is not None else ''} -> {spec.out}")
    summary = trainer.fit(resume=spec.resume)
    if ema is not None:  # what the run's evaluations scored and load_detector returns
        model.load_state_dict(ema.state_dict_for_model())
    summary["model_config"] = model.config
    summary["model"] = model
    return summary


def load_detector(path: str, weights: str = "ema"):
    """(Detector in eval mode, the run's info: class_names, category_ids, img, detector config, data) from a
    run folder or its checkpoint.safetensors. weights: "ema" (the average the run evaluated, or the trained
    weights of a run without EMA) or "trained" (the optimizer's own last weights)."""
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
    return model, {**info, "step": int(state["step"])}
