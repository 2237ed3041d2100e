"""Optimizer parameter groups that honour what a module declares about its own parameters.

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
gets min(hint, lr), the papers' min(lr, 1e-3) for A and dt.
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
    groups: dict[tuple, dict] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        hint = hinted.get(id(p), {})
        group_lr = min(float(hint.get("lr", lr)), float(lr))
        wd = float(hint.get("weight_decay", weight_decay if p.ndim >= 2 else 0.0))
        group = groups.setdefault((group_lr, wd), {"params": [], "lr": group_lr, "weight_decay": wd})
        group["params"].append(p)
    return list(groups.values())
