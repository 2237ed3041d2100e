"""Training checkpoints: one safetensors file (tinyml.save's format: the tensors, plus the nested
structure as JSON in the header) holding model weights, optimizer moments, scheduler, sampler
and RNG states, the step and the configs; written atomically, a temp file in the same folder
renamed over the old one, so a crash or Ctrl-C mid-write leaves the previous checkpoint whole;
the folder is fsynced after the rename so the new name survives a power cut. A process killed
mid-write leaves its temp file behind; `remove_stale_temp_files` (run at the start of every fit)
deletes those of processes that no longer exist. `check_resumable` holds the rules for continuing
from a checkpoint: the same configuration and optimization (RESUME_MUST_MATCH), and no going back.

    save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 10})
    state = load_checkpoint(path)   # the same nested structure, tensors as tinyml Tensors
"""
from __future__ import annotations

import os
import re

import tinyml

# what a resumed run must share with its checkpoint to continue the same optimization
RESUME_MUST_MATCH = ("lr", "min_lr", "warmup_steps", "weight_decay", "betas", "grad_clip", "grad_accum")
# the temp names a run's writers use: .checkpoint.safetensors.tmp123, metrics.jsonl.tmp123,
# loss.png.tmp123.png, tokenizer.json.tmp123, train.bin.tmp123 (the writer's pid after "tmp");
# nothing else in the folder matches, so a user's own files are never touched
_TEMP_NAME = re.compile(r"^(\..+\.safetensors|metrics\.jsonl|loss\.png|tokenizer\.json|run\.json|"
                        r"train\.bin|val\.bin)\.tmp(\d+)(\.png)?$")


def save_checkpoint(path: str, state: dict) -> None:
    """Write `state` (nested dicts/lists/tuples of tensors and JSON scalars) to `path` atomically."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        tinyml.save(state, tmp)
        os.replace(tmp, path)
        _fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fsync_folder(folder: str) -> None:
    # the rename is an update of the folder: without this a power cut can bring back the old entry
    if os.name == "nt":  # Windows cannot open a folder for fsync; NTFS journals the rename
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: str) -> list[str]:
    """Delete temp files in `folder` left by writers that were killed mid-write (their pid is
    gone); files of live processes, this one included, stay. Returns the names removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for name in names:
        m = _TEMP_NAME.match(name)
        if m and not _pid_alive(int(m.group(2))):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(name)
            except FileNotFoundError:  # another process cleaned it first
                pass
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):  # someone else's process: leave its file alone
        return True
    return True


def load_checkpoint(path: str, device=None) -> dict:
    """The state saved by `save_checkpoint`, tensors on `device` (cpu by default)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = tinyml.load(path, device=device)
    except (RuntimeError, ValueError) as e:  # a truncated, corrupt or foreign file
        raise ValueError(f"{path} is not a tinyml checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise ValueError(f"{path} is a safetensors file but not a tinyml training checkpoint")
    return state


def check_resumable(state: dict, config: dict, extra: dict, path: str) -> None:
    """Refuse to continue from `state` (the checkpoint at `path`) a run of another configuration
    (`extra` differs), another optimization (a RESUME_MUST_MATCH field of `config`, a TrainConfig
    as a dict, differs) or one that would end before the checkpoint's step; each error names both
    values."""
    if state.get("extra", {}) != extra:
        theirs = state.get("extra", {})
        diff = sorted(k for k in set(extra) | set(theirs) if extra.get(k) != theirs.get(k))
        raise ValueError(f"checkpoint {path} comes from another configuration "
                         f"(differs in: {', '.join(diff)})")
    saved, step = state.get("train_config") or {}, int(state["step"])
    if config["max_steps"] < step:
        raise ValueError(f"max_steps {config['max_steps']} is below the step of checkpoint {path} ({step}): "
                         "a resumed run can only go on")

    def as_saved(k):  # tinyml.save keeps tuples, but compare betas as tuples whatever wrote the file
        v = saved.get(k, config[k])
        return tuple(v) if isinstance(v, list) else v

    differ = [k for k in RESUME_MUST_MATCH if as_saved(k) != config[k]]
    if differ:
        was = ", ".join(f"{k}={saved[k]!r}" for k in differ)
        now = ", ".join(f"{k}={config[k]!r}" for k in differ)
        raise ValueError(f"checkpoint {path} was trained with {was}; this config has {now}")
