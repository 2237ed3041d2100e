"""FPN + PAN neck (YOLOv8's head-side feature pyramid) over any run of levels, e.g. P2-P4 for tiny
objects (strides 4, 8, 16) or P3-P5 (8, 16, 32).

Inputs f_0 .. f_L at strides s_0 < ... < s_L (each level twice the previous), channels c_0 .. c_L.
    top-down (FPN):   t_L = f_L;   t_i = C2f(cat(up2(t_{i+1}), f_i)) -> c_i     for i = L-1 .. 0
    bottom-up (PAN):  o_0 = t_0;   o_i = C2f(cat(conv3x3_s2(o_{i-1}), t_i)) -> c_i   for i = 1 .. L
Outputs o_0 .. o_L keep the input channels and strides; the finest level (P2 at stride 4) sees the
deepest features through the top-down path, and the coarse levels get the fine detail back through
the bottom-up one. PAN(channels, bottom_up=False) is the FPN alone (forward returns t_0 .. t_L, as
top_down_maps does), for a head that reads only the finest level, where o_0 = t_0 and the bottom-up
path would be computed for nothing.
"""
from __future__ import annotations

import tinyml
import tinyml.nn as nn
from tinyml.tensor import Tensor

from .csp import C2f, ConvBNAct

__all__ = ["PAN"]


class PAN(nn.Module):
    def __init__(self, channels, depth: int = 1, bottom_up: bool = True):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2:
            raise ValueError(f"PAN: needs at least two levels, got channels {channels}")
        self.channels = channels
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        n = len(channels)
        # top_down[i] makes t_i from cat(up(t_{i+1}), f_i), i = 0 .. n-2
        self.top_down = nn.ModuleList([C2f(channels[i + 1] + channels[i], channels[i], depth)
                                       for i in range(n - 1)])
        self.has_bottom_up = bool(bottom_up)
        if self.has_bottom_up:  # down[i - 1] / bottom_up[i - 1] make o_i, i = 1 .. n-1
            self.down = nn.ModuleList([ConvBNAct(channels[i - 1], channels[i - 1], 3, 2)
                                       for i in range(1, n)])
            self.bottom_up = nn.ModuleList([C2f(channels[i - 1] + channels[i], channels[i], depth)
                                            for i in range(1, n)])

    def top_down_maps(self, feats: list[Tensor]) -> list[Tensor]:
        """t_0 .. t_L (the FPN's maps; t_0 = o_0, the finest output)."""
        if len(feats) != len(self.channels):
            raise ValueError(f"PAN: expected {len(self.channels)} feature maps, got {len(feats)}")
        n = len(feats)
        td = [None] * n
        td[-1] = feats[-1]
        for i in range(n - 2, -1, -1):
            td[i] = self.top_down[i](tinyml.cat([self.up(td[i + 1]), feats[i]], dim=1))  # (B, c_i, H_i, W_i)
        return td

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        td = self.top_down_maps(feats)
        if not self.has_bottom_up:
            return td
        outs = [td[0]]
        for i in range(1, len(feats)):
            outs.append(self.bottom_up[i - 1](tinyml.cat([self.down[i - 1](outs[-1]), td[i]], dim=1)))
        return outs
