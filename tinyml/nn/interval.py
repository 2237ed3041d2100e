"""Interval bound propagation (IBP, Gowal et al. 2018): elementwise bounds on a network's outputs over a box.

A box is a pair of tensors (lower, upper) of the input's shape. Each layer maps a box to a box that contains
the image of every input in it:

    affine layers (Linear, Conv1d/Conv2d, BatchNorm in eval mode), in centre/radius form
        c = (u + l) / 2,  r = (u - l) / 2
        c' = A c + b,     r' = |A| r,       (l', u') = (c' - r', c' + r')
    monotone non-decreasing layers f (ReLU, LeakyReLU, Sigmoid, Tanh, ELU, SELU, Softplus, Hardtanh, ReLU6,
        LogSigmoid, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Unflatten, Identity, eval Dropout)
        (l', u') = (f(l), f(u))
    Sequential: the composition, one layer after the other.

For a single affine layer the bounds are exact (each output coordinate reaches both ends at a corner of the
box). The bounds are ordinary tinyml ops, so a loss on them trains the network (IBP / SABR certified
training).

A specification matrix C (batch, specs, outputs) asks for bounds on C @ y instead of y. When the network ends
in a Linear layer, C is folded into it (W' = C W, b' = C b) before bounding, which is tighter than bounding y
and then C y (Gowal et al.'s "elision of the last layer"). The usual C for classification has rows
e_y - e_j (margins).

Two interfaces:

    lower, upper = interval_bounds(model, x_lower, x_upper, C=None)

and, for users of auto_LiRPA, its names (IBP only):

    ptb = PerturbationLpNorm(eps=0.1, norm=math.inf, x_L=0.0, x_U=1.0)
    lb, ub = BoundedModule(model).compute_bounds(x=(BoundedTensor(x, ptb),), method="IBP", C=C)

A layer without a rule raises a TypeError naming it; `register_interval_rule(LayerClass)` adds one.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .. import ops
from ..dtypes import get_default_dtype
from ..tensor import Tensor
from . import activation as act
from . import functional as F
from .batchnorm import _BatchNorm
from .containers import Sequential
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, MaxPool2d
from .dropout import Dropout1d, Dropout2d
from .layers import Dropout, Flatten, Identity, Linear, Unflatten
from .module import Module

__all__ = ["BoundedModule", "BoundedTensor", "PerturbationLpNorm", "interval_bounds", "margin_specification",
           "register_interval_rule"]

Box = tuple[Tensor, Tensor]
_RULES: dict[type, Callable[[Module, Tensor, Tensor], Box]] = {}


def register_interval_rule(layer_type: type) -> Callable:
    """Decorator: `fn(module, lower, upper) -> (lower, upper)` becomes the IBP rule for `layer_type`.

    A subclass that does not override `forward` uses its base class's rule; one that does needs its own.
    """
    def decorate(fn: Callable[[Module, Tensor, Tensor], Box]) -> Callable:
        _RULES[layer_type] = fn
        return fn
    return decorate


def _rule_for(module: Module) -> Callable[[Module, Tensor, Tensor], Box]:
    for cls in type(module).__mro__:
        if cls in _RULES:
            if cls is type(module) or type(module).forward is cls.forward:
                return _RULES[cls]
            break
    raise TypeError(f"interval bound propagation has no rule for layer {type(module).__name__} ({module!r}); "
                    f"supported: {', '.join(sorted(c.__name__ for c in _RULES))}. Register one with "
                    "tinyml.nn.interval.register_interval_rule")


def _centre_radius(lower: Tensor, upper: Tensor) -> Box:
    return (upper + lower) * 0.5, (upper - lower) * 0.5


def _box(centre: Tensor, radius: Tensor) -> Box:
    return centre - radius, centre + radius


# -- affine layers: centre through the layer, radius through its absolute value -----------------------------
@register_interval_rule(Linear)
def _linear(m: Linear, lower: Tensor, upper: Tensor) -> Box:
    c, r = _centre_radius(lower, upper)
    return _box(F.linear(c, m.weight, m.bias), F.linear(r, m.weight.abs()))


@register_interval_rule(Conv2d)
def _conv2d(m: Conv2d, lower: Tensor, upper: Tensor) -> Box:
    c, r = _centre_radius(lower, upper)
    return _box(F.conv2d(c, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups),
                F.conv2d(r, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups))


@register_interval_rule(Conv1d)
def _conv1d(m: Conv1d, lower: Tensor, upper: Tensor) -> Box:
    c, r = _centre_radius(lower, upper)
    return _box(F.conv1d(c, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups),
                F.conv1d(r, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups))


@register_interval_rule(_BatchNorm)
def _batch_norm(m: _BatchNorm, lower: Tensor, upper: Tensor) -> Box:
    """Eval mode: y = s x + t, s = w / sqrt(var + eps), t = b - mean s per channel; |s| scales the radius."""
    if m.training or m.running_mean is None:
        raise ValueError(f"interval bounds through {type(m).__name__}({m.num_features}) need its eval-mode "
                         f"affine map (running statistics): got training={m.training}, "
                         f"track_running_stats={m.track_running_stats}; call model.eval() first")
    scale = (m.running_var + m.eps).rsqrt()
    if m.weight is not None:
        scale = scale * m.weight
    shift = -m.running_mean * scale
    if m.bias is not None:
        shift = shift + m.bias
    view = (1, -1) + (1,) * (lower.ndim - 2)  # channels on dim 1: (N, C, ...)
    scale, shift = scale.reshape(view), shift.reshape(view)
    c, r = _centre_radius(lower, upper)
    return _box(c * scale + shift, r * scale.abs())


# -- monotone non-decreasing layers: the ends map to the ends -----------------------------------------------
def _monotone(m: Module, lower: Tensor, upper: Tensor) -> Box:
    if getattr(m, "inplace", False):  # the layer would overwrite the box it is given
        lower, upper = lower.clone(), upper.clone()
    return m(lower), m(upper)


for _layer in (act.ReLU, act.Sigmoid, act.Tanh, act.SELU, act.Hardtanh, act.ReLU6, act.LogSigmoid,
               MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Unflatten, Identity):
    register_interval_rule(_layer)(_monotone)


@register_interval_rule(act.LeakyReLU)
def _leaky_relu(m: act.LeakyReLU, lower: Tensor, upper: Tensor) -> Box:
    if m.negative_slope < 0:
        raise ValueError(f"LeakyReLU(negative_slope={m.negative_slope}) is not monotone: no interval rule")
    return _monotone(m, lower, upper)


@register_interval_rule(act.ELU)
def _elu(m: act.ELU, lower: Tensor, upper: Tensor) -> Box:
    if m.alpha < 0:
        raise ValueError(f"ELU(alpha={m.alpha}) is not monotone: no interval rule")
    return _monotone(m, lower, upper)


@register_interval_rule(act.Softplus)
def _softplus(m: act.Softplus, lower: Tensor, upper: Tensor) -> Box:
    if m.beta <= 0:
        raise ValueError(f"Softplus(beta={m.beta}) is not monotone non-decreasing: no interval rule")
    return _monotone(m, lower, upper)


def _dropout(m: Module, lower: Tensor, upper: Tensor) -> Box:
    if m.training and m.p > 0:
        raise ValueError(f"interval bounds through {type(m).__name__}(p={m.p}) in training mode are random; "
                         "call model.eval() first")
    return lower, upper


for _layer in (Dropout, Dropout1d, Dropout2d):
    register_interval_rule(_layer)(_dropout)


# -- composition --------------------------------------------------------------------------------------------
def _leaves(module: Module) -> list[Module]:
    if type(module) is Sequential:
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def _check_box(lower: Tensor, upper: Tensor) -> None:
    if not isinstance(lower, Tensor) or not isinstance(upper, Tensor):
        raise TypeError(f"interval bounds take tensors, got {type(lower).__name__} and "
                        f"{type(upper).__name__}")
    if lower.shape != upper.shape:
        raise ValueError(f"lower and upper bounds must have one shape, got {tuple(lower.shape)} and "
                         f"{tuple(upper.shape)}")
    if lower.dtype != upper.dtype or lower.device != upper.device:
        raise ValueError(f"lower and upper bounds must share dtype and device, got {lower.dtype} on "
                         f"{lower.device} and {upper.dtype} on {upper.device}")
    gap = lower.detach().numpy() - upper.detach().numpy()
    if np.any(gap > 0):  # NaN compares False: a NaN bound propagates as NaN, as in PyTorch
        raise ValueError(f"lower bound exceeds upper bound at {int(np.sum(gap > 0))} of {gap.size} entries "
                         f"(by up to {float(np.nanmax(gap)):.3g})")


def _specified(last: Module, lower: Tensor, upper: Tensor, C: Tensor) -> Box:
    """Bounds on C @ y: folded into a final Linear (tighter), else applied to the output box."""
    if C.ndim != 3 or C.shape[0] != lower.shape[0]:
        raise ValueError(f"C must be (batch, specs, outputs) with batch {lower.shape[0]}, "
                         f"got {tuple(C.shape)}")
    if type(last) is Linear:
        if C.shape[2] != last.out_features:
            raise ValueError(f"C has {C.shape[2]} outputs but the last Linear has {last.out_features}")
        c, r = _centre_radius(lower, upper)
        w = ops.matmul(C, last.weight)  # (B, S, in)
        centre = ops.matmul(w, c.unsqueeze(-1)).squeeze(-1)  # (B, S)
        if last.bias is not None:
            centre = centre + ops.matmul(C, last.bias.unsqueeze(-1)).squeeze(-1)
        return _box(centre, ops.matmul(w.abs(), r.unsqueeze(-1)).squeeze(-1))
    lower, upper = _rule_for(last)(last, lower, upper)
    if lower.ndim != 2 or C.shape[2] != lower.shape[1]:
        raise ValueError(f"C {tuple(C.shape)} does not match the network's output {tuple(lower.shape)}")
    c, r = _centre_radius(lower, upper)
    return _box(ops.matmul(C, c.unsqueeze(-1)).squeeze(-1), ops.matmul(C.abs(), r.unsqueeze(-1)).squeeze(-1))


def interval_bounds(model: Module, lower: Tensor, upper: Tensor, C: Tensor | None = None) -> Box:
    """(lower, upper) bounds on model(x) (or on C @ model(x)) for every x with lower <= x <= upper.

    model: a supported layer or a (nested) Sequential of them. The result is differentiable in the bounds and
    the model's parameters.
    """
    _check_box(lower, upper)
    layers = _leaves(model)
    last = len(layers) - 1 if C is not None else len(layers)
    for layer in layers[:last]:
        lower, upper = _rule_for(layer)(layer, lower, upper)
    if C is not None:
        lower, upper = _specified(layers[-1], lower, upper, C)
    return lower, upper


def margin_specification(labels: Tensor, num_classes: int, dtype=None) -> Tensor:
    """C (batch, num_classes - 1, num_classes), rows e_y - e_j for every j != y: C @ logits are the margins.

    A sample is certified when the lower bound of every margin is > 0.
    """
    y = np.asarray(labels.numpy() if isinstance(labels, Tensor) else labels).astype(np.int64).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    eye = np.eye(num_classes, dtype=np.float64)
    others = np.array([[j for j in range(num_classes) if j != t] for t in y], dtype=np.int64).reshape(
        len(y), num_classes - 1)
    spec = eye[y][:, None, :] - eye[others]  # (B, K-1, K)
    return ops.tensor(spec, dtype=dtype if dtype is not None else get_default_dtype())


class PerturbationLpNorm:
    """An L-infinity ball of radius eps around the input, clipped to [x_L, x_U] (auto_LiRPA's name; inf only).

    x_L / x_U: a number or a tensor (the data range, e.g. 0 and 1 for images); None for no clipping.
    """

    def __init__(self, eps: float = 0.0, norm: float = math.inf, x_L=None, x_U=None) -> None:
        if norm != math.inf:
            raise ValueError(f"interval bound propagation perturbs in the L-infinity norm only, "
                             f"got norm={norm}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps, self.norm, self.x_L, self.x_U = float(eps), norm, x_L, x_U

    def box(self, x: Tensor) -> Box:
        lower, upper = x - self.eps, x + self.eps
        lo, hi = self.x_L, self.x_U
        if lo is not None:
            lower = ops.maximum(lower, lo) if isinstance(lo, Tensor) else lower.clamp(min=lo)
        if hi is not None:
            upper = ops.minimum(upper, hi) if isinstance(hi, Tensor) else upper.clamp(max=hi)
        return lower, upper

    def __repr__(self) -> str:
        return f"PerturbationLpNorm(norm=inf, eps={self.eps}, x_L={self.x_L}, x_U={self.x_U})"


class BoundedTensor:
    """An input with its perturbation: `.lower` / `.upper` give the box (auto_LiRPA's BoundedTensor)."""

    def __init__(self, x: Tensor, ptb: PerturbationLpNorm) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"BoundedTensor wraps a tinyml Tensor, got {type(x).__name__}")
        self.x, self.ptb = x, ptb
        self.lower, self.upper = ptb.box(x)

    @property
    def shape(self):
        return self.x.shape

    def __repr__(self) -> str:
        return f"BoundedTensor(shape={tuple(self.x.shape)}, ptb={self.ptb!r})"


class BoundedModule(Module):
    """A model that also computes bounds: `forward(x)` is the model's, `compute_bounds` its IBP bounds."""

    def __init__(self, model: Module) -> None:
        super().__init__()
        for layer in _leaves(model):
            _rule_for(layer)  # an unsupported layer is reported now, not at the first bound
        self.model = model

    def forward(self, *args, **kwargs):
        return self.model(*(a.x if isinstance(a, BoundedTensor) else a for a in args), **kwargs)

    def compute_bounds(self, x: tuple | BoundedTensor, method: str = "IBP", C: Tensor | None = None,
                       bound_lower: bool = True, bound_upper: bool = True,
                       ) -> tuple[Tensor | None, Tensor | None]:
        """(lb, ub) on the model's output, or on C @ output; a side not asked for comes back as None."""
        if method.upper() != "IBP":
            raise ValueError(f"method={method!r} is not supported: tinyml bounds by interval propagation "
                             "('IBP')")
        inputs = x if isinstance(x, (tuple, list)) else (x,)
        if len(inputs) != 1 or not isinstance(inputs[0], BoundedTensor):
            raise TypeError(f"compute_bounds takes x=(BoundedTensor,), "
                            f"got {[type(i).__name__ for i in inputs]}")
        lower, upper = interval_bounds(self.model, inputs[0].lower, inputs[0].upper, C=C)
        return (lower if bound_lower else None), (upper if bound_upper else None)
