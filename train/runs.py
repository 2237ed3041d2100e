"""A run folder for `tinyml train`: how a start or a resume turns flags into a plan (`plan_run`),
checks it against the folder and the machine (`check_memory`), and the record of the run it
writes there (`write_run`, run.json).

A run folder holds run.json (the flags the run was started with, its model and data),
tokenizer.json, train.bin/val.bin (token ids; train/lm.py writes them), checkpoint.safetensors,
metrics.jsonl and loss.png (the Trainer's).

Resume (`--resume`): flags not repeated keep the values the run was started with (run.json).
The flags that define what is being trained (--config, --tokenizer, --vocab-size, --data,
--batch-size, --lr, --seed) must match the run, or the resume is refused, naming both values.
--steps may change: a larger value extends the run and its learning-rate schedule (the cosine
decay is stretched to end at the new --steps; warmup stays as it was), a value below the
checkpoint's step is refused. --eval-interval, --eval-iters, --device and --sample-tokens are free.

Nothing is written before `plan_run` and train/lm.py's `prepare_data` have checked everything they can.
"""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field, replace

from .checkpoint import RESUME_MUST_MATCH, load_checkpoint
from .presets import PRESETS, Preset
from .trainer import CHECKPOINT, TrainConfig

RUN_FILE = "run.json"
DEFAULT_BPE_VOCAB = 512
DEFAULT_SEED = 1337
BUNDLED = "shakespeare (bundled)"
# the flags that define a run (argparse dests), in the order a resume command repeats them
RUN_FLAGS = ("config", "steps", "batch_size", "lr", "eval_interval", "eval_iters", "data", "tokenizer",
             "vocab_size", "seed", "compile")
SWITCHES = ("compile",)  # RUN_FLAGS that take no value (given: True)
MUST_MATCH_ON_RESUME = ("config", "tokenizer", "vocab_size", "data", "batch_size", "lr", "seed")


class CLIError(Exception):
    """An error shown to the user as one line (exit status 1: the input or the run went wrong)."""


class UsageError(CLIError):
    """A flag value that cannot work here (exit status 2, as argparse's own errors)."""


@dataclass
class RunPlan:
    out: str
    resume: bool
    flags: dict  # the run-defining flags given at the start and on this resume (dest -> value)
    preset_name: str
    preset: Preset
    train: TrainConfig
    batch_size: int
    seed: int
    tokenizer: str
    vocab_size: int | None
    data: str | None  # absolute path, or None for the bundled Shakespeare
    start_step: int = 0
    record: dict = field(default_factory=dict)  # run.json as read on resume

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.out, CHECKPOINT)


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def plan_run(args) -> RunPlan:
    """Resolve every setting of the run from the flags (and, on --resume, run.json and the
    checkpoint); raise UsageError for anything that conflicts. Reads, never writes."""
    given = {d: getattr(args, d) for d in RUN_FLAGS if getattr(args, d) is not None}
    if given.get("data"):
        given["data"] = os.path.abspath(given["data"])
    ckpt = os.path.join(args.out, CHECKPOINT)
    if not args.resume:
        if os.path.exists(ckpt):
            raise UsageError(f"--out {args.out} already holds a checkpoint; pass --resume to continue that "
                             "run or another --out to start a new one")
        return _plan(args.out, given, resume=False)
    run_path = os.path.join(args.out, RUN_FILE)
    if not os.path.exists(ckpt) or not os.path.exists(run_path):
        raise UsageError(f"--resume: no run to continue in {args.out} (expected {CHECKPOINT} and {RUN_FILE})")
    record = _read_json(run_path)
    state = load_checkpoint(ckpt)
    step, saved = int(state["step"]), state.get("train_config") or {}
    started = record["flags"] if "flags" in record else _flags_of_old_record(record, saved)
    resolved = _plan(args.out, started, resume=True)
    conflicts = []
    for d in MUST_MATCH_ON_RESUME:
        was = {"config": resolved.preset_name, "tokenizer": resolved.tokenizer, "data": resolved.data,
               "vocab_size": resolved.vocab_size, "batch_size": resolved.batch_size, "lr": resolved.train.lr,
               "seed": resolved.seed}[d]
        if d in given and given[d] != was:
            shown = {"data": BUNDLED, "vocab_size": "no --vocab-size"}.get(d) if was is None else was
            conflicts.append(f"{flag(d)} {given[d]} (the run has {shown})")
    if conflicts:
        raise UsageError(f"--resume: {args.out} was started with other settings: {'; '.join(conflicts)}. "
                         f"A resumed run keeps them; only --steps, --eval-interval, --eval-iters, --device "
                         "and --sample-tokens may change")
    plan = _plan(args.out, {**started, **given}, resume=True)
    if plan.train.max_steps < step:
        raise UsageError(f"--steps {plan.train.max_steps}: the checkpoint in {args.out} is already at step "
                         f"{step}; pass --steps {step} or more (more extends the run and stretches its "
                         "learning-rate decay)")
    # what the run has already been trained with stays (the Trainer checks these again)
    history = {k: tuple(saved[k]) if k == "betas" else saved[k] for k in RESUME_MUST_MATCH if k in saved}
    return replace(plan, train=replace(plan.train, **history), start_step=step, record=record)


def _flags_of_old_record(record: dict, saved: dict) -> dict:
    # run.json written before it kept the flags: rebuild them from what it and the checkpoint hold
    flags = {"config": record.get("preset"), "tokenizer": record.get("tokenizer"), "seed": record.get("seed"),
             "batch_size": record.get("batch_size"), "steps": saved.get("max_steps"), "lr": saved.get("lr"),
             "data": None if record.get("data") == BUNDLED else record.get("data")}
    return {k: v for k, v in flags.items() if v is not None}


def _plan(out: str, flags: dict, resume: bool) -> RunPlan:
    name = flags.get("config", "baby")
    if name not in PRESETS:
        raise UsageError(f"--config {name!r}: unknown preset; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    tokenizer = flags.get("tokenizer", "char")
    if tokenizer != "bpe" and flags.get("vocab_size") is not None:
        raise UsageError(f"--vocab-size {flags['vocab_size']} applies to --tokenizer bpe only "
                         f"(this run's tokenizer is {tokenizer})")
    vocab = flags.get("vocab_size", DEFAULT_BPE_VOCAB) if tokenizer == "bpe" else None
    return RunPlan(out=out, resume=resume, flags=dict(flags), preset_name=name, preset=preset,
                   train=train_config(preset, flags), batch_size=flags.get("batch_size", preset.batch_size),
                   seed=flags.get("seed", DEFAULT_SEED), tokenizer=tokenizer, vocab_size=vocab,
                   data=flags.get("data"))


def train_config(preset: Preset, flags: dict) -> TrainConfig:
    """The preset's TrainConfig with the flags applied. A run's schedule always spans its --steps:
    warmup is at most a tenth of it and the cosine decays over all of it."""
    cfg, o = preset.train, {}
    if "steps" in flags:
        steps = flags["steps"]
        o.update(max_steps=steps, decay_steps=steps, warmup_steps=min(cfg.warmup_steps, max(steps // 10, 1)),
                 eval_interval=min(cfg.eval_interval, steps))
    if "lr" in flags:
        o.update(lr=flags["lr"], min_lr=None if cfg.min_lr is None else flags["lr"] / 10)
    o.update({k: flags[k] for k in ("eval_interval", "eval_iters") if k in flags})
    if flags.get("compile"):
        o.update(compile=True)
    return replace(cfg, **o)


def resume_command(plan: RunPlan, extra: dict) -> str:
    """The exact command that continues this run: every flag it was started with, then --resume."""
    words = ["tinyml", "train"]
    for d in RUN_FLAGS:
        if d in SWITCHES:
            words += [flag(d)] if plan.flags.get(d) else []
        elif d in plan.flags:
            words += [flag(d), str(plan.flags[d])]
    for d, v in extra.items():
        if v is not None:
            words += [flag(d), str(v)]
    return shlex.join(words + ["--out", plan.out, "--resume"])


def check_memory(plan: RunPlan, device: str) -> None:
    """Refuse a batch whose activations cannot fit in this machine's memory, before allocating
    anything (numpy would raise MemoryError at best, and the kernel's OOM killer end the process
    at worst). On cuda the GPU's size is not queried; the host's memory is the bound checked."""
    need = plan.preset.activation_bytes(plan.batch_size)
    have = host_memory_bytes()
    if have and need > have:
        p = plan.preset
        raise UsageError(f"--batch-size {plan.batch_size}: one step of {plan.batch_size}x{p.block_size} "
                         f"tokens needs at least {need / 2**30:.0f} GiB of activations for the "
                         f"{plan.preset_name} preset, more than the {have / 2**30:.0f} GiB of memory here "
                         f"({device}); the preset's batch is {p.batch_size}")


def host_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: no check
        return None


def write_run(plan: RunPlan, vocab_size: int, model_config: dict) -> None:
    """Write run.json (atomically): the flags the run was started with, its model and data."""
    record = {**plan.record, "preset": plan.preset_name, "model": model_config, "tokenizer": plan.tokenizer,
              "vocab_size": vocab_size, "data": plan.data or BUNDLED, "batch_size": plan.batch_size,
              "seed": plan.seed, "steps": plan.train.max_steps, "flags": plan.flags}
    path = os.path.join(plan.out, RUN_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, path)


def read_run(folder: str) -> dict:
    return _read_json(os.path.join(folder, RUN_FILE))


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            obj = json.load(f)
    except ValueError as e:
        raise CLIError(f"{path} is not valid JSON ({e}); this folder holds no usable run") from None
    if not isinstance(obj, dict):
        raise CLIError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj
