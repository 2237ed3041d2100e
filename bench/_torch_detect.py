"""The Detector's network (models/vision/csp.py, neck.py, models/detection/head.py) written in PyTorch, layer
for layer, as the peer of bench/detect_cpu.py (same widths, depths, strides and head widths; the parameter
counts are printed side by side)."""
from __future__ import annotations

import torch
from torch import nn

WIDTHS = {"tiny": (16, 32, 64, 128, 256), "small": (32, 64, 128, 256, 512)}
HEAD = {"tiny": (16, 16), "small": (None, None)}


class Conv(nn.Sequential):
    def __init__(self, c_in, c_out, k=1, s=1):
        super().__init__(nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False), nn.BatchNorm2d(c_out, 1e-3, 0.03),
                         nn.SiLU())


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut):
        super().__init__()
        self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c_in, c_out, n=1, shortcut=False):
        super().__init__()
        h = c_out // 2
        self.cv1, self.cv2 = Conv(c_in, 2 * h), Conv((2 + n) * h, c_out)
        self.m = nn.ModuleList(Bottleneck(h, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.cv1, self.cv2, self.m = Conv(c_in, c_in // 2), Conv(c_in * 2, c_out), nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        p1 = self.m(x)
        p2 = self.m(p1)
        return self.cv2(torch.cat([x, p1, p2, self.m(p2)], 1))


class TorchDetector(nn.Module):
    def __init__(self, size="tiny", in_channels=1, num_classes=1, strides=(4, 8, 16), reg_max=16):
        super().__init__()
        w = WIDTHS[size]
        allowed = (2, 4, 8, 16, 32)
        self.strides = strides
        self.stem = Conv(in_channels, w[0], 3, 2)
        n = allowed.index(max(strides))
        self.stages = nn.ModuleList(
            nn.Sequential(Conv(w[i], w[i + 1], 3, 2), C2f(w[i + 1], w[i + 1], 1, True),
                          *([SPPF(w[i + 1], w[i + 1])] if i == n - 1 else [])) for i in range(n))
        ch = [w[allowed.index(s)] for s in strides]
        self.td = nn.ModuleList(C2f(ch[i + 1] + ch[i], ch[i]) for i in range(len(ch) - 1))
        self.down = nn.ModuleList(Conv(ch[i - 1], ch[i - 1], 3, 2) for i in range(1, len(ch)))
        self.bu = nn.ModuleList(C2f(ch[i - 1] + ch[i], ch[i]) for i in range(1, len(ch)))
        c2 = HEAD[size][0] or max(16, ch[0] // 4, 4 * reg_max)
        c3 = HEAD[size][1] or max(ch[0], min(num_classes, 100))
        self.box = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
                                 for c in ch)
        self.cls = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, num_classes, 1))
                                 for c in ch)

    def forward(self, x):
        x = self.stem(x)
        feats, s = {2: x}, 2
        for stage in self.stages:
            x = stage(x)
            s *= 2
            feats[s] = x
        f = [feats[s] for s in self.strides]
        td = f[:]
        for i in range(len(f) - 2, -1, -1):
            td[i] = self.td[i](torch.cat([nn.functional.interpolate(td[i + 1], scale_factor=2.0), f[i]], 1))
        outs = [td[0]]
        for i in range(1, len(f)):
            outs.append(self.bu[i - 1](torch.cat([self.down[i - 1](outs[-1]), td[i]], 1)))
        return [torch.cat([b(o), c(o)], 1) for o, b, c in zip(outs, self.box, self.cls)]
