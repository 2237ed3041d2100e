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
parameters of 2 or more dims only). A hinted "lr" caps that group's learning rate: the group
gets min(hint, lr), the papers' min(lr, 1e-3) for A and dt, and records the ratio as "lr_scale",
which train/schedule.py's WarmupCosine keeps as the schedule moves the rate.
"""
from __future__ import annotations

__all__ = ["param_groups"]


def param_groups(model, lr: float, weight_decay: float) -> list[dict]:
    """[{"params": [...], "lr": ..., "weight_decay": ...}, ...], empty groups dropped."""
    hinted: dict[int, dict] = {}
    for prefix, module in model.named_modules():
        for name, hint in getattr(module, "optim_hints", {}).items():
            p = getattr(module, name, None)
            if p is None:
                raise ValueError(f"{type(module).__name__} at {prefix or 'the root'!r} declares optim_hints "
                                 f"for {name!r}, which is not one of its parameters")
            unknown = set(hint) - {"lr", "weight_decay"}
            if unknown:
                raise ValueError(f"optim_hints for {prefix + '.' if prefix else ''}{name}: unknown keys "
                                 f"{sorted(unknown)}; expected 'lr' and 'weight_decay'")
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
        group_lr = min(float(hint.get("lr", lr)), float(lr))
        wd = float(hint.get("weight_decay", weight_decay if p.ndim >= 2 else 0.0))
        group = groups.setdefault(("hint", group_lr, wd), {"params": [], "lr": group_lr, "weight_decay": wd,
                                                           "lr_scale": group_lr / lr if lr else 1.0})
        group["params"].append(p)
    return [g for g in groups.values() if g["params"]]
