"""The DARTS search space: candidate operations on one edge and the mixed operation over them.

Every operation maps (N, C, H, W) to (N, C, H, W) (stride 1, padding that keeps H and W):

    none            zero: the edge is absent
    skip_connect    identity
    max_pool_3x3    3x3 max pooling
    avg_pool_3x3    3x3 average pooling (padding not counted)
    conv_3x3        ReLU, 3x3 convolution, BatchNorm
    conv_5x5        ReLU, 5x5 convolution, BatchNorm
    sep_conv_3x3    ReLU, 3x3 depthwise + 1x1 pointwise convolution, BatchNorm (separable)
    sep_conv_5x5    ReLU, 5x5 depthwise + 1x1 pointwise convolution, BatchNorm
    dil_conv_3x3    ReLU, 3x3 depthwise convolution with dilation 2 + 1x1 pointwise, BatchNorm

The mixed operation is the softmax-weighted sum over the candidates,

    mixed(x) = sum_o w_o * o(x),   w = softmax(alpha_edge / T)

with T the temperature (small T: weights near one-hot, the supernet close to the network that
discretisation keeps).
"""
from __future__ import annotations

import tinyml
import tinyml.nn as nn

DEFAULT_PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "conv_3x3", "sep_conv_3x3",
                      "sep_conv_5x5", "dil_conv_3x3")


class Zero(nn.Module):
    """The absent edge: zeros of the input's shape."""

    def forward(self, x: tinyml.Tensor) -> tinyml.Tensor:
        return x * 0.0


def _conv(c: int, k: int, affine: bool) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c, affine=affine))


def _separable(c: int, k: int, dilation: int, affine: bool) -> nn.Sequential:
    depthwise = nn.Conv2d(c, c, k, padding=dilation * (k // 2), dilation=dilation, groups=c, bias=False)
    pointwise = nn.Conv2d(c, c, 1, bias=False)
    return nn.Sequential(nn.ReLU(), depthwise, pointwise, nn.BatchNorm2d(c, affine=affine))


OPERATIONS = {
    "none": lambda c, affine: Zero(),
    "skip_connect": lambda c, affine: nn.Identity(),
    "max_pool_3x3": lambda c, affine: nn.MaxPool2d(3, stride=1, padding=1),
    "avg_pool_3x3": lambda c, affine: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    "conv_3x3": lambda c, affine: _conv(c, 3, affine),
    "conv_5x5": lambda c, affine: _conv(c, 5, affine),
    "sep_conv_3x3": lambda c, affine: _separable(c, 3, 1, affine),
    "sep_conv_5x5": lambda c, affine: _separable(c, 5, 1, affine),
    "dil_conv_3x3": lambda c, affine: _separable(c, 3, 2, affine),
}


def check_primitives(primitives) -> tuple[str, ...]:
    """The search space as a tuple of known operation names; refuses an empty one, one with only `none`
    (discretisation keeps a non-zero operation per edge), unknown names and repeats."""
    names = tuple(primitives)
    if not names:
        raise ValueError(f"the search space has no operations; choose from {sorted(OPERATIONS)}")
    unknown = [n for n in names if n not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown operations {unknown} in the search space; "
                         f"choose from {sorted(OPERATIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"the search space repeats an operation: {list(names)}")
    if all(n == "none" for n in names):
        raise ValueError("the search space has only 'none': discretisation needs a non-zero operation")
    return names


def make_operation(name: str, channels: int, affine: bool = True) -> nn.Module:
    """One candidate operation on `channels` channels (BatchNorm affine as in DARTS: off while searching)."""
    if name not in OPERATIONS:
        raise ValueError(f"unknown operation {name!r}; choose from {sorted(OPERATIONS)}")
    return OPERATIONS[name](channels, affine)


class MixedOp(nn.Module):
    """sum_o w_o * o(x) over the search space; `none` contributes nothing and is not run."""

    def __init__(self, channels: int, primitives) -> None:
        super().__init__()
        self.primitives = check_primitives(primitives)
        self.ops = nn.ModuleList([make_operation(n, channels, affine=False) for n in self.primitives])

    def forward(self, x: tinyml.Tensor, weights: tinyml.Tensor) -> tinyml.Tensor:
        """x (N, C, H, W), weights (num_ops,) summing to 1."""
        out = None
        for i, (name, op) in enumerate(zip(self.primitives, self.ops)):
            if name == "none":
                continue
            term = op(x) * weights[i]
            out = term if out is None else out + term
        return out if out is not None else x * 0.0
