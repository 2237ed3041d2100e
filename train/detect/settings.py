"""`tinyml detect train`'s settings: DetectRun, the defaults that depend on the architecture, their
resolution, and the run record (detect.json) that --resume and readers use.

    spec = DetectRun(out="runs/ir").resolved()    # crop 64, ema_decay 0.999 (CenterNet at heatmap stride 1)
    DetectRun(out="x", arch="yolo").resolved()    # crop 128, ema_decay 0.9999 (the Detector's defaults)

The default is the best setting measured for issue #13's 10-minute runs (docs/detection.md): CenterNet at
heatmap stride 1 on crops of a quarter of --img, offsets and sizes regressed on the 3 x 3 cells around each
centre (reg_radius 1), vertical flips beside the horizontal ones (vflip 0.5), 30 % of the crops placed
anywhere in the image rather than around targets (crop_anywhere 0.3), a short weight EMA (decay 0.999, tau
500) and flip test-time augmentation hv at validation. Two settings have no single default, because the
measurements behind them were made per architecture, and are resolved (None -> a number) once, before
training:

    crop       a quarter of img for CenterNet at heatmap stride 1 (64 at img 256), half of img otherwise (the
               Detector's measured default, and CenterNet at stride 2 / 4); rounded down to a multiple of
               the largest stride (16), 0 (whole images) when that leaves nothing
    ema_decay  0.999 for CenterNet (its ~7000-step runs: a memory of ~1000 steps, inside the end of the
               cosine schedule), 0.9999 for the Detector (measured with it on ~2900-step runs)

detect.json holds the resolved values. A record written before these defaults existed (no "tta" key) is
read with the values such runs had (LEGACY: the Detector, heatmap stride 4, crop half of img, EMA 0.9999,
validation every epoch without TTA), so an old run folder resumes and predicts as before.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace

from tinyml.models.detection.targets import check_tta
from tinyml.models.detection.yolo import BOX_LOSSES, CLS_LOSSES, HEAD_WIDTHS

from ..runs import UsageError
from ..trainer import CHECKPOINT

__all__ = ["DetectRun", "RUN_FILE", "MODEL_SIZES", "ARCH_NAMES", "EMA_DECAY", "LEGACY", "write_run_record",
           "read_run_record", "upgrade_run_record", "default_crop"]

RUN_FILE = "detect.json"
MODEL_SIZES = tuple(HEAD_WIDTHS)  # tiny, small
ARCH_NAMES = ("yolo", "centernet")
STRIDES = (2, 4, 8, 16, 32)
EMA_DECAY = {"centernet": 0.999, "yolo": 0.9999}  # ema_decay=None resolves to the architecture's
# what a run recorded before the architecture-dependent defaults had (detect.json without "tta")
LEGACY = {"arch": "yolo", "heatmap_stride": 4, "ema_decay": 0.9999, "eval_every": 1, "tta": ""}
PER_INVOCATION = ("out", "resume", "progress", "time_limit", "time_clock", "cpu_threads")


def default_crop(img: int, largest_stride: int, fraction: int) -> int:
    """img // fraction rounded down to a multiple of the largest stride; 0 (whole images) below it."""
    side = img // fraction // largest_stride * largest_stride
    return side if side >= largest_stride else 0


@dataclass
class DetectRun:
    out: str
    data: str | None = None  # None: the synthetic infrared set, written to out/data
    model: str = "tiny"
    arch: str = "centernet"  # centernet: the heatmap head (CenterNet); yolo: the anchor-free Detector
    img: int = 256
    epochs: int = 30
    batch: int = 16
    lr: float = 0.002
    box_loss: str = "nwd"  # arch="yolo" only
    cls_loss: str = "bce"  # arch="yolo" only
    seed: int = 0
    resume: bool = False
    time_limit: float | None = None  # minutes of this invocation (training + evaluations)
    time_clock: str = "wall"  # the limit's clock: wall time, or "cpu": process CPU seconds / cpu_threads
    cpu_threads: int = 2
    eval_every: int | str = "auto"  # epochs between validations (and checkpoints); "auto": loop.py's rule
    synthetic_train: int = 400
    synthetic_val: int = 100
    synthetic_size: int = 256
    augment: bool = True
    on_error: str = "raise"  # a bad image or label file: raise, or skip it and report the count
    progress: bool = True
    strides: tuple = (4, 8, 16)  # the Detector's levels (2 adds a stride-2 level from the stem)
    crop: int | None = None  # train on crop x crop windows of the img-scaled images; 0 = whole images;
    #                          None: resolved (a quarter of img for CenterNet at heatmap stride 1, else half)
    ema: bool = True  # evaluate, checkpoint for inference and predict with an EMA of the weights
    ema_decay: float | None = None  # None: resolved (EMA_DECAY of the architecture)
    ema_tau: float = 500.0  # the EMA's ramp d (1 - exp(-updates / tau)), in steps
    scale_jitter: tuple | None = None  # resize every training sample by U(lo, hi); None: never
    min_candidates: int = 1  # the assigner's fallback: gts with fewer anchors inside get the k nearest
    reg_max: int = 16  # DFL bins per box side (distances 0 .. reg_max - 1 cells)
    box_shift: float = 0.25  # cells a predicted box side may stop short of its anchor (Detector's box_shift)
    heatmap_stride: int = 1  # arch="centernet": the heatmap's stride (4, 2 or 1)
    reg_radius: int = 1  # arch="centernet": offsets and sizes regressed on the (2r+1)^2 cells around a centre
    vflip: float = 0.5  # probability of a vertical flip of a training sample (horizontal: 0.5, always)
    crop_anywhere: float = 0.3  # probability that a training crop is placed anywhere, not around targets
    nwd_c: float | str = "auto"  # NWD's C (pixels) of the NWD box loss; auto: mean_object_size(train, img)
    assign_nwd_c: float = 12.8  # the assigner's NWD overlap constant C in pixels
    tta: str = "hv"  # test-time augmentation of validation, the run's default for predict / eval ("": none)

    def default_crop(self) -> int:
        """What crop=None resolves to (module docstring); 0: whole images."""
        quarter = self.arch == "centernet" and int(self.heatmap_stride) == 1
        return default_crop(self.img, max(int(s) for s in self.strides), 4 if quarter else 2)

    def resolved(self) -> DetectRun:
        """A copy with crop and ema_decay filled in (module docstring); the values given are kept."""
        crop = self.default_crop() if self.crop is None else self.crop
        decay = EMA_DECAY.get(self.arch, EMA_DECAY["yolo"]) if self.ema_decay is None else self.ema_decay
        return replace(self, crop=crop, ema_decay=decay, tta="" if self.tta == "none" else self.tta)

    @property
    def train_crop(self) -> int | None:
        """The training window's side in pixels, or None for whole images (crop 0, or img too small)."""
        return (self.default_crop() if self.crop is None else self.crop) or None

    def check(self) -> None:
        """UsageError for settings that cannot work, before anything is read or written."""
        if self.model not in MODEL_SIZES:
            raise UsageError(f"--model {self.model!r}: expected one of {', '.join(MODEL_SIZES)}")
        if self.arch not in ARCH_NAMES:
            raise UsageError(f"--arch {self.arch!r}: expected one of {', '.join(ARCH_NAMES)}")
        if self.arch == "centernet" and (self.box_loss, self.cls_loss) != ("nwd", "bce"):
            raise UsageError(f"--box-loss {self.box_loss} / --cls-loss {self.cls_loss}: these flags belong "
                             "to --arch yolo; --arch centernet (the default) has its own losses (focal "
                             "heatmap, L1 size and offset)")
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
        if int(self.reg_radius) != self.reg_radius or not 0 <= self.reg_radius <= 4:
            raise UsageError(f"--reg-radius {self.reg_radius}: expected 0 to 4 cells")
        if not 0.0 <= self.vflip <= 1.0:
            raise UsageError(f"--vflip {self.vflip}: expected a probability from 0 to 1")
        if not 0.0 <= self.crop_anywhere <= 1.0:
            raise UsageError(f"--crop-anywhere {self.crop_anywhere}: expected a probability from 0 to 1")
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
        decay = EMA_DECAY["yolo"] if self.ema_decay is None else self.ema_decay
        if not 0.0 < decay < 1.0 or not self.ema_tau > 0:
            raise UsageError(f"--ema-decay {self.ema_decay} / --ema-tau {self.ema_tau}: expected a decay in "
                             "(0, 1) and tau > 0 steps")
        if self.eval_every != "auto" and (isinstance(self.eval_every, (str, bool, float))
                                          or int(self.eval_every) < 1):
            raise UsageError(f"--eval-every {self.eval_every!r}: expected a positive number of epochs or "
                             "'auto'")
        try:
            check_tta("--tta", "" if self.tta == "none" else self.tta)
        except ValueError as e:
            raise UsageError(f"{e} ('none': no test-time augmentation)") from None
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


def write_run_record(spec: DetectRun) -> None:
    """out/detect.json: the run's settings (resolved: spec.resolved()), without the per-invocation ones."""
    os.makedirs(spec.out, exist_ok=True)
    path = os.path.join(spec.out, RUN_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        record = {k: v for k, v in asdict(spec.resolved()).items() if k not in PER_INVOCATION}
        json.dump(record, f, indent=1)
    os.replace(tmp, path)


def read_run_record(out: str) -> dict:
    """out/detect.json as written (upgrade_run_record gives the settings of an older one); {} if none."""
    path = os.path.join(out, RUN_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def upgrade_run_record(record: dict) -> dict:
    """The settings a run record stands for: a record written before the architecture-dependent defaults
    (no "tta" key) gets LEGACY's values for the keys it lacks and its crop None resolved as then (half of
    img); one without "reg_radius" (before session 14) regressed the centre cells alone (reg_radius 0) and
    never flipped vertically (vflip 0); one without "crop_anywhere" (before session 16) kept every crop on
    its targets (0); a newer one is returned as it is."""
    if record and "reg_radius" not in record:
        record = {"vflip": 0.0, **record, "reg_radius": 0}
    if record and "crop_anywhere" not in record:
        record = {**record, "crop_anywhere": 0.0}
    if not record or "tta" in record:
        return record
    out = {**LEGACY, **record}
    if out.get("crop") is None:
        strides = out.get("strides") or (4, 8, 16)
        out["crop"] = default_crop(int(out.get("img", 256)), max(int(s) for s in strides), 2)
    return out
