"""Training checkpoints: one safetensors file (tinyml.save's format: the tensors, plus the nested
structure as JSON in the header) holding model weights, optimizer moments, scheduler, sampler
and RNG states, the step and the configs; written atomically, a temp file in the same folder
renamed over the old one, so a crash or Ctrl-C mid-write leaves the previous checkpoint whole.

    save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 10})
    state = load_checkpoint(path)   # the same nested structure, tensors as tinyml Tensors
"""
from __future__ import annotations

import os

import tinyml


def save_checkpoint(path: str, state: dict) -> None:
    """Write `state` (nested dicts/lists/tuples of tensors and JSON scalars) to `path` atomically."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        tinyml.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str, device=None) -> dict:
    """The state saved by `save_checkpoint`, tensors on `device` (cpu by default)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = tinyml.load(path, device=device)
    except RuntimeError as e:
        raise ValueError(f"{path} is not a tinyml checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise ValueError(f"{path} is a safetensors file but not a tinyml training checkpoint")
    return state
