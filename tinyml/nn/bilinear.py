"""F.bilinear and nn.Bilinear: y_o = sum_ij x1_i A_oij x2_j + b_o over the last dims of x1 and x2
(leading dims broadcast as batch dims, equal in PyTorch), an einsum over the op's matmuls."""
from __future__ import annotations

import math

from .. import ops
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input1 (*, in1), input2 (*, in2), weight (out, in1, in2), bias (out,) -> (*, out)."""
    if weight.ndim != 3 or input1.shape[-1:] != weight.shape[1:2] or input2.shape[-1:] != weight.shape[2:]:
        raise RuntimeError(f"bilinear: input1 {tuple(input1.shape)} and input2 {tuple(input2.shape)} do not "
                           f"match weight {tuple(weight.shape)} (expected (*, {weight.shape[1:2]}) and "
                           f"(*, {weight.shape[2:]}) for a weight (out, in1, in2))")
    if input1.shape[:-1] != input2.shape[:-1]:
        raise RuntimeError(f"bilinear: input1 {tuple(input1.shape)} and input2 {tuple(input2.shape)} must "
                           f"have the same leading (batch) dims")
    y = ops.einsum("...i,oij,...j->...o", input1, weight, input2)
    return y if bias is None else y + bias


class Bilinear(Module):
    """weight (out_features, in1_features, in2_features) and bias ~ U(-1/sqrt(in1), 1/sqrt(in1))."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = Parameter(ops.empty((out_features, in1_features, in2_features), device=device,
                                          dtype=dtype))
        if bias:
            self.bias = Parameter(ops.empty((out_features,), device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        return bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
