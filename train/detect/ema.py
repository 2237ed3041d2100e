"""An exponential moving average of a model's weights for evaluation (ultralytics' ModelEMA).

    ema = ModelEMA(model, decay=0.9999, tau=2000)   # a copy of the floating-point state_dict entries
    ema.update(model)                               # after every optimizer step
    with ema.applied(model):                        # the model holds the averaged weights inside
        evaluate(model)
    state = ema.state_dict(); ema.load_state_dict(state)   # in checkpoints: resumed bit-exactly

After update n (n = 1, 2, ...) every floating-point entry v of the state_dict (weights, biases and the
BatchNorm running statistics, as ultralytics averages them) becomes

    v <- d_n v + (1 - d_n) w,    d_n = decay (1 - exp(-n / tau))

The ramp makes the first updates nearly copies of w (d_1 ~ decay / tau) and lets the average reach its
full horizon 1 / (1 - decay) only after a few tau steps: ultralytics' tau = 2000 suits runs of tens of
thousands of steps; a short run (800 to 3000 steps) needs a shorter ramp, or its average would still
weigh the random initial weights. Integer entries (BatchNorm's num_batches_tracked) are copied.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

import tinyml

__all__ = ["ModelEMA", "ema_decay"]


def ema_decay(updates: int, decay: float, tau: float) -> float:
    """d_n = decay (1 - exp(-n / tau)), the weight of the old average at update n."""
    return decay * (1.0 - math.exp(-updates / tau))


class ModelEMA:
    """The average: numpy copies of model.state_dict()'s entries, each in its own dtype."""

    def __init__(self, model, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ModelEMA: decay must be in (0, 1), got {decay!r}")
        if not tau > 0:
            raise ValueError(f"ModelEMA: tau must be > 0 steps, got {tau!r}")
        self.decay, self.tau, self.updates = float(decay), float(tau), int(updates)
        self.shadow = {k: np.array(v.numpy(), copy=True) for k, v in model.state_dict().items()}

    def update(self, model) -> float:
        """One step of the average toward the model's current weights; returns the d used."""
        self.updates += 1
        d = ema_decay(self.updates, self.decay, self.tau)
        current = model.state_dict()
        self._check_keys(current, "update")
        for k, v in self.shadow.items():
            w = current[k].numpy()
            if np.issubdtype(v.dtype, np.floating):
                v *= d
                v += (1.0 - d) * w
            else:
                v[...] = w
        return d

    def _check_keys(self, current: dict, what: str) -> None:
        if current.keys() != self.shadow.keys():
            missing = sorted(set(self.shadow) - set(current))
            extra = sorted(set(current) - set(self.shadow))
            raise ValueError(f"ModelEMA.{what}: the model's state_dict keys differ from the average's "
                             f"(missing {missing[:5]}, unexpected {extra[:5]})")

    def state_dict_for_model(self) -> dict:
        """The averaged weights as a model state_dict (tensors), for load_state_dict."""
        return {k: tinyml.tensor(v) for k, v in self.shadow.items()}

    @contextlib.contextmanager
    def applied(self, model):
        """Inside the block the model holds the averaged weights; its own are restored on exit."""
        current = model.state_dict()
        self._check_keys(current, "applied")
        saved = {k: np.array(v.numpy(), copy=True) for k, v in current.items()}
        model.load_state_dict(self.state_dict_for_model())
        try:
            yield model
        finally:
            model.load_state_dict({k: tinyml.tensor(v) for k, v in saved.items()})

    def state_dict(self) -> dict:
        return {"decay": self.decay, "tau": self.tau, "updates": self.updates,
                "weights": self.state_dict_for_model()}

    def load_state_dict(self, state: dict) -> None:
        weights = state["weights"]
        self._check_keys(weights, "load_state_dict")
        for k, v in self.shadow.items():
            w = weights[k].numpy() if hasattr(weights[k], "numpy") else np.asarray(weights[k])
            if tuple(w.shape) != v.shape:
                raise ValueError(f"ModelEMA.load_state_dict: {k} has shape {tuple(w.shape)} in the state, "
                                 f"{v.shape} in the model")
            v[...] = w
        self.decay, self.tau, self.updates = float(state["decay"]), float(state["tau"]), int(state["updates"])
