"""Optimizer parameter groups that honour what a module declares about its own parameters
(train/trainer.py's make_optimizer builds its AdamW groups with it).

The SSM papers train the state matrix A and the step size dt with a smaller learning rate and no
weight decay (S4, S4D), and Mamba exempts A_log and D from weight decay; these tensors are 2-d,
so the usual "decay matrices, not vectors" rule would decay them. A module says so in a class
or instance attribute naming its own parameters (state-spaces' `_optim` convention, per module
because tinyml tensors take no attributes):

    class S4D(nn.Module):
        optim_hints = {"log_dt": {"weight_decay": 0.0, "lr": 1e-3}, ...}

`param_groups(model, lr, weight_decay)` walks the modules and returns AdamW groups: one per
distinct hint, and for the rest the rule of train/trainer.py's make_optimizer (weight decay on
parameters of 2 or more dims only). Two hint keys set a group's learning rate:

    "lr_scale": s   a multiplier, either way: the group trains at s * lr (muP's base/width for the
                    hidden matrices, above lr when the model is narrower than its base);
    "lr": c         a cap: the group gets min(c, s * lr), the papers' min(lr, 1e-3) for A and dt.

The group records its rate over lr as "lr_scale", which train/schedule.py's WarmupCosine keeps as
the schedule moves the rate.
"""
from __future__ import annotations

import math

__all__ = ["param_groups"]

HINT_KEYS = {"lr", "lr_scale", "weight_decay"}


def param_groups(model, lr: float, weight_decay: float) -> list[dict]:
    """[{"params": [...], "lr": ..., "weight_decay": ...}, ...], empty groups dropped."""
    hinted: dict[int, dict] = {}
    for prefix, module in model.named_modules():
        for name, hint in getattr(module, "optim_hints", {}).items():
            p = getattr(module, name, None)
            if p is None:
                raise ValueError(f"{type(module).__name__} at {prefix or 'the root'!r} declares optim_hints "
                                 f"for {name!r}, which is not one of its parameters")
            where = f"optim_hints for {prefix + '.' if prefix else ''}{name}"
            unknown = set(hint) - HINT_KEYS
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected {sorted(HINT_KEYS)}")
            for key in ("lr", "lr_scale"):
                v = hint.get(key, 1.0)
                number = isinstance(v, (int, float)) and not isinstance(v, bool)
                if not (number and v >= 0 and math.isfinite(v)):
                    raise ValueError(f"{where}: {key!r} must be a finite number >= 0, got {v!r}")
            hinted[id(p)] = hint
    # the rule's two groups first (matrices, then the rest), as before hints existed, so optimizer
    # states saved by earlier runs keep their layout; then one group per distinct hint
    groups: dict[tuple, dict] = {
        ("rule", 2): {"params": [], "lr": float(lr), "weight_decay": float(weight_decay)},
        ("rule", 1): {"params": [], "lr": float(lr), "weight_decay": 0.0}}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) not in hinted:
            groups[("rule", 2 if p.ndim >= 2 else 1)]["params"].append(p)
            continue
        hint = hinted[id(p)]
        group_lr = float(lr) * float(hint.get("lr_scale", 1.0))
        group_lr = min(float(hint.get("lr", group_lr)), group_lr)
        wd = float(hint.get("weight_decay", weight_decay if p.ndim >= 2 else 0.0))
        group = groups.setdefault(("hint", group_lr, wd), {"params": [], "lr": group_lr, "weight_decay": wd,
                                                           "lr_scale": group_lr / lr if lr
                                                           else float(hint.get("lr_scale", 1.0))})
        group["params"].append(p)
    return [g for g in groups.values() if g["params"]]
