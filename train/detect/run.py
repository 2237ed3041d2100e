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
augmentation: horizontal flips (0.5), scale jitter x[0.75, 1.33], mosaic (0.5, at native scale so that
1-2 px targets stay 1-2 px), letterbox to img. The Detector is set up for targets of a few pixels:
strides 4 / 8 / 16 (a P2 level), the nearest-anchor fallback, NWD overlap in the assigner, box prior 1
cell (models/detection/yolo.py says why each); --box-loss nwd by default. arch="centernet" trains
models/detection/centernet.py's CenterNet (stride-4 heatmaps, its own losses) instead.

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

from tinyml.models.detection.centernet import CenterNet
from tinyml.models.detection.yolo import BOX_LOSSES, CLS_LOSSES, HEAD_WIDTHS, Detector

import tinyml

from ..checkpoint import load_checkpoint
from ..runs import CLIError, UsageError
from ..trainer import CHECKPOINT, TrainConfig
from .augment import AugmentedDataset
from .data import open_detection_dataset
from .evaluate import category_ids_of
from .loop import DetectTrainer, EpochSampler

__all__ = ["DetectRun", "train_detector", "load_detector", "prepare_data", "build_detector", "RUN_FILE",
           "MODEL_SIZES"]

RUN_FILE = "detect.json"
MODEL_SIZES = tuple(HEAD_WIDTHS)  # tiny, small
ARCHITECTURES = {"yolo": Detector, "centernet": CenterNet}
MAX_STRIDE = 16
AUGMENT = {"hflip": 0.5, "scale": (0.75, 1.33), "mosaic": 0.5}


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
        if self.img < MAX_STRIDE or self.img % MAX_STRIDE:
            raise UsageError(f"--img {self.img}: must be a multiple of the detector's largest stride "
                             f"{MAX_STRIDE}")
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


def build_detector(num_classes: int, in_channels: int, spec: DetectRun):
    """The Detector set up for small targets (module docstring), or CenterNet at stride 4, seeded."""
    tinyml.manual_seed(spec.seed)
    if spec.arch == "centernet":
        return CenterNet(num_classes=num_classes, size=spec.model, in_channels=in_channels, stride=4)
    return Detector(num_classes=num_classes, size=spec.model, in_channels=in_channels, strides=(4, 8, 16),
                    box_loss=spec.box_loss, cls_loss=spec.cls_loss, nearest_fallback=True,
                    assign_overlap="nwd", box_prior=1.0)


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
    train_view = AugmentedDataset(train, spec.img, train=True, seed=spec.seed, **augment)
    model = build_detector(len(train.class_names), train.in_channels, spec)
    sampler = EpochSampler(train_view, spec.batch, seed=spec.seed)
    data_id = os.path.abspath(spec.data) if spec.data else {**_synthetic_manifest(spec)}
    augment_json = {k: list(v) if isinstance(v, tuple) else v for k, v in augment.items()}
    extra = {"arch": spec.arch, "detector": model.config, "class_names": list(train.class_names),
             "category_ids": category_ids, "img": spec.img, "data": data_id, "augment": augment_json}
    time_limit = spec.time_limit * 60 if spec.time_limit is not None else None
    clock = time.perf_counter
    if spec.time_clock == "cpu":  # minutes of cpu_threads busy cores: the same work on a loaded machine
        def clock():
            return time.process_time() / spec.cpu_threads
    config = train_config(spec, sampler.steps_per_epoch)
    trainer = DetectTrainer(model, sampler, val, config, out_dir=spec.out, extra_state=extra, img=spec.img,
                            time_limit=time_limit, eval_batch=spec.batch, clock=clock)
    write_run_record(spec)
    name = "Detector" if spec.arch == "yolo" else "CenterNet"
    losses = (f"box loss {spec.box_loss}, cls loss {spec.cls_loss}" if spec.arch == "yolo" else
              "heatmap focal + L1 size / offset losses")
    log(f"tinyml detect train: {name} {spec.model} ({sum(p.numel() for p in model.parameters()):,} "
        f"parameters), {len(train.class_names)} class(es) {train.class_names}, {len(train)} train / "
        f"{len(val)} val images at {spec.img} px, batch {spec.batch}, {spec.epochs} epochs of "
        f"{sampler.steps_per_epoch} steps, {losses}"
        f"{', time limit %g min' % spec.time_limit if spec.time_limit is not None else ''} -> {spec.out}")
    summary = trainer.fit(resume=spec.resume)
    summary["model_config"] = model.config
    summary["model"] = model
    return summary


def load_detector(path: str):
    """(Detector in eval mode, the run's info: class_names, category_ids, img, detector config, data) from a
    run folder or its checkpoint.safetensors."""
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
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise CLIError(f"--ckpt {path}: the weights do not fit the saved detector config "
                       f"({str(e).splitlines()[0]})") from None
    model.eval()
    return model, {**info, "step": int(state["step"])}
