"""`tinyml distill --resume`: the plan of a distillation run continued from its folder, as `tinyml train
--resume` does for training (train/runs.py).

    plan = resume_plan("runs/student", {"steps": 4000})     # flags given now; the rest from run.json

run.json's "distill" record keeps every setting that defines the run (PLAN_FIELDS). Flags not
repeated keep those values; a repeated one that differs is refused, naming both. --steps may grow
(the learning-rate decay stretches to the new end, as in `tinyml train`), and --eval-interval,
--eval-iters and --device may change. The Trainer restores the student, optimizer, schedule,
sampler and RNG state from checkpoint.safetensors, so the continued run is bit-exact with one run
straight through: the token files (train.bin, val.bin) and the teacher's generations of sequence-level
KD (sequences.npy) are read back from the folder, not made again.
"""
from __future__ import annotations

import os
from dataclasses import replace

from ..checkpoint import RESUME_MUST_MATCH, load_checkpoint
from ..runs import RUN_FILE, UsageError, read_run
from ..trainer import CHECKPOINT

# the DistillPlan fields that define a run: recorded at the start, fixed on resume
PLAN_FIELDS = ("teacher", "student", "method", "data", "batch_size", "lr", "temperature", "alpha", "seed",
               "init", "sequences", "gen_temperature", "candidates")
MAY_CHANGE = ("steps", "eval_interval", "eval_iters")
SEQUENCES_FILE = "sequences.npy"


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def recorded_plan(out: str) -> tuple[dict, int]:
    """(the run's recorded plan fields and steps, the checkpoint's step)."""
    if not (os.path.isfile(os.path.join(out, CHECKPOINT)) and os.path.isfile(os.path.join(out, RUN_FILE))):
        raise UsageError(f"--resume: no distillation run to continue in {out} (expected {CHECKPOINT} and "
                         f"{RUN_FILE})")
    record = read_run(out)
    plan = (record.get("distill") or {}).get("plan")
    if plan is None:
        raise UsageError(f"--resume: {out}/{RUN_FILE} has no distillation plan (a `tinyml distill` run from "
                         "before resume existed, or not a distillation run); start a new --out")
    steps = (record.get("flags") or {}).get("steps", record.get("steps"))
    return {**plan, "steps": steps}, int(load_checkpoint(os.path.join(out, CHECKPOINT))["step"])


def resume_plan(out: str, given: dict, make_plan):
    """make_plan(**fields) built from the recorded plan with `given` (flags given now, None = not
    given) applied; UsageError for a run-defining flag that differs or --steps below the checkpoint."""
    was, step = recorded_plan(out)
    given = {k: v for k, v in given.items() if v is not None}
    if given.get("teacher") is not None:
        given["teacher"] = os.path.abspath(given["teacher"])
    if given.get("data") is not None:
        given["data"] = os.path.abspath(given["data"])
    conflicts = [f"{_flag(k)} {given[k]} (the run has {was.get(k)})" for k in PLAN_FIELDS
                 if k in given and given[k] != was.get(k)]
    if conflicts:
        raise UsageError(f"--resume: {out} was started with other settings: {'; '.join(conflicts)}. "
                         "A resumed run keeps them; only --steps, --eval-interval, --eval-iters and --device "
                         "may change")
    fields = {**{k: was.get(k) for k in PLAN_FIELDS}, **{k: given[k] for k in MAY_CHANGE if k in given}}
    fields.setdefault("steps", was["steps"])
    if fields["steps"] < step:
        raise UsageError(f"--steps {fields['steps']}: the checkpoint in {out} is already at step {step}; "
                         f"pass --steps {step} or more (more extends the run and stretches its learning-rate "
                         "decay)")
    return make_plan(**fields, out=out, resume=True, **{k: given[k] for k in ("progress",) if k in given})


def trained_config(out: str, config):
    """`config` with the optimization settings the run was trained with (RESUME_MUST_MATCH) from its
    checkpoint: warmup is a tenth of the original --steps, which a longer resume must not change."""
    saved = load_checkpoint(os.path.join(out, CHECKPOINT)).get("train_config") or {}
    history = {k: tuple(saved[k]) if k == "betas" else saved[k] for k in RESUME_MUST_MATCH if k in saved}
    return replace(config, **history)
