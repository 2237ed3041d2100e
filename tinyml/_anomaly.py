"""Anomaly detection (torch.autograd.detect_anomaly / set_detect_anomaly).

    with tinyml.autograd.detect_anomaly():
        loss.backward()     # RuntimeError: Function 'DivBackward' returned nan values in its 0th output.
                            # ... with the forward stack of the op whose backward made the first NaN

While on, a wrapped `Function.apply` keeps the Python stack of each recorded op on its graph node,
and a wrapped `run_node` checks each node's gradients as backward produces them: the first NaN
raises RuntimeError naming the node, the gradient's position and the forward stack (and warns
with that stack, as torch does); an exception inside a node's backward is preceded by the same
warning. Like the profiler, the wrappers are swapped in and out, so the mode costs nothing when off.
"""
from __future__ import annotations

import traceback
import warnings

import numpy as np

__all__ = ["detect_anomaly", "is_anomaly_enabled", "set_detect_anomaly"]

_state = {"enabled": False, "check_nan": True, "apply": None, "run_node": None}


def is_anomaly_enabled() -> bool:
    return _state["enabled"]


def _forward_stack(node) -> str:
    stack = node.__dict__.get("anomaly_stack")
    return "".join(stack) if stack else "  (the op was recorded before anomaly detection was enabled)\n"


def _apply_recording_stack(orig):
    def apply(cls, *args, **kwargs):
        out = orig(cls, *args, **kwargs)
        for o in out if type(out) is tuple else (out,):
            node = getattr(o, "grad_fn", None)
            if node is not None and "anomaly_stack" not in node.__dict__:
                node.anomaly_stack = traceback.format_stack()[:-1]
        return out
    return apply


def _run_node_checking(orig):
    def run_node(node, grads, retain_graph):
        name, stack = node.name(), _forward_stack(node)
        where = f"Error detected in {name}. Traceback of forward call that caused the error:\n{stack}"
        try:
            in_grads = orig(node, grads, retain_graph)
        except Exception:
            warnings.warn(where, stacklevel=2)
            raise
        if _state["check_nan"]:
            for i, g in enumerate(in_grads):
                if g is not None and g.dtype.is_floating_point and np.isnan(g.detach().cpu().numpy()).any():
                    warnings.warn(where, stacklevel=2)
                    raise RuntimeError(f"Function '{name}' returned nan values in its {i}th output.\n"
                                       f"Traceback of forward call that caused the error:\n{stack}")
        return in_grads
    return run_node


def set_detect_anomaly(mode: bool, check_nan: bool = True) -> None:
    """Turn anomaly detection on or off (globally)."""
    from . import autograd  # at call time: autograd imports this module (it exports detect_anomaly)

    if mode and not _state["enabled"]:
        _state["apply"] = autograd.Function.__dict__["apply"]
        _state["run_node"] = autograd.run_node
        autograd.Function.apply = classmethod(_apply_recording_stack(_state["apply"].__func__))
        autograd.run_node = _run_node_checking(_state["run_node"])
    elif not mode and _state["enabled"]:
        autograd.Function.apply = _state["apply"]
        autograd.run_node = _state["run_node"]
    _state["enabled"], _state["check_nan"] = bool(mode), check_nan


class detect_anomaly:
    """Context manager (and decorator) turning anomaly detection on inside a block."""

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan

    def __enter__(self) -> None:
        self.prev = (_state["enabled"], _state["check_nan"])
        set_detect_anomaly(True, self.check_nan)
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the runtime and should "
                      "only be enabled for debugging.", stacklevel=2)

    def __exit__(self, *exc) -> None:
        set_detect_anomaly(*self.prev)

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)
        return wrapper
