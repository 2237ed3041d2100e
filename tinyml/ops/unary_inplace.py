"""In-place twins of the unary and special functions (`x.relu_()`, `x.sigmoid_()`, `x.abs_()`,
`x.asin_()`, `x.clamp_min_(0)`, ...): each is its out-of-place op followed by
`inplace.apply_inplace`, which writes the values into x's storage, bumps its version counter and gives
x the op's place in the graph.

As in PyTorch, a float function on an integer tensor is refused (its float result cannot be
written back into integers), and so is an in-place op on a leaf that requires grad.
"""
from __future__ import annotations

from typing import Callable

from ..tensor import Tensor
from . import pointwise, special, unary
from .inplace import apply_inplace

_NAMES = {
    unary: "abs sigmoid tanh relu log log2 log10 log1p exp2 expm1 rsqrt reciprocal square sin cos tan erf "
           "sign floor ceil round trunc frac nan_to_num",
    special: "asin acos atan sinh cosh asinh acosh atanh erfinv atan2 hypot copysign xlogy logit deg2rad "
             "rad2deg arcsin arccos arctan arcsinh arccosh arctanh arctan2 logaddexp logaddexp2 sinc "
             "heaviside",
    pointwise: "clamp_min clamp_max",
}


def _inplace(fn: Callable) -> Callable:
    def op(self: Tensor, *args, **kwargs) -> Tensor:
        return apply_inplace(self, fn(self, *args, **kwargs))

    op.__name__ = op.__qualname__ = fn.__name__ + "_"
    op.__doc__ = f"In-place {fn.__name__}: self = {fn.__name__}(self, ...); returns self."
    return op


__all__ = []
for _module, _names in _NAMES.items():
    for _name in _names.split():
        globals()[_name + "_"] = _inplace(getattr(_module, _name))
        __all__.append(_name + "_")
