"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

    lr(s) = max_lr * (s + 1) / warmup                                  for s < warmup
    lr(s) = min_lr + (max_lr - min_lr) * (1 + cos(pi * r)) / 2,  r = (s - warmup) / (decay - warmup)
    lr(s) = min_lr                                                    for s >= decay

(nanoGPT's get_lr.) A parameter group with an "lr_scale" entry gets lr(s) * lr_scale (the
SSMs' capped A and dt: tinyml/optim/param_groups.py sets it). A pure function of the step, so a resumed run continues the same curve; the
object still has state_dict/load_state_dict, as PyTorch's schedulers do, for the checkpoint.
"""
from __future__ import annotations

import math


class WarmupCosine:
    def __init__(self, optimizer, max_lr: float, warmup_steps: int, decay_steps: int,
                 min_lr: float | None = None):
        if warmup_steps < 0 or decay_steps < 1:
            raise ValueError(f"warmup_steps must be >= 0 and decay_steps >= 1, "
                             f"got {warmup_steps} and {decay_steps}")
        self.optimizer = optimizer
        self.max_lr = float(max_lr)
        self.min_lr = self.max_lr / 10 if min_lr is None else float(min_lr)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = max(int(decay_steps), self.warmup_steps + 1)
        self.last_step = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.max_lr * (step + 1) / self.warmup_steps
        if step >= self.decay_steps:
            return self.min_lr
        r = (step - self.warmup_steps) / (self.decay_steps - self.warmup_steps)
        return self.min_lr + (self.max_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * r))

    def _apply(self) -> None:
        lr = self.lr_at(self.last_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance one optimizer step and set the learning rate for the next one."""
        self.last_step += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"max_lr": self.max_lr, "min_lr": self.min_lr, "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps, "last_step": self.last_step}

    def load_state_dict(self, state: dict) -> None:
        for k in ("max_lr", "min_lr", "warmup_steps", "decay_steps", "last_step"):
            setattr(self, k, state[k])
        self._apply()
