"""CSP convolutional backbone blocks (YOLOv8 style) and the CSPBackbone that stacks them.

    ConvBNAct    y = SiLU(BN(conv_k(x))), conv without bias, "same" padding k // 2 (ultralytics' Conv);
                 fuse() folds the eval-mode BN into the conv (W' = W g / sqrt(rv + eps),
                 b' = beta - rm g / sqrt(rv + eps)) for inference
    Bottleneck   y = x + cv2(cv1(x)) (two 3x3 ConvBNAct; the residual only when c_in == c_out)
    C2f          CSP bottleneck with two convolutions (ultralytics' C2f): a 1x1 conv splits into two
                 halves (a, b); n bottlenecks run on b, each output kept; the 1x1 conv cv2 mixes
                 cat(a, b, m_1(b), ..., m_n(...)), so the gradient reaches every stage by a short path
    SPPF         spatial pyramid pooling, fast: cv1 (1x1, halves channels), three chained 5x5 stride-1
                 max-pools (receptive fields 5, 9, 13), cv2 over cat(x, p1, p2, p3)
    CSPBackbone  stem (3x3 stride 2) then one stage per stride 4, 8, 16, 32 (3x3 stride-2 ConvBNAct +
                 C2f); SPPF on the deepest stage; returns the feature maps at the requested strides

Shapes: x (B, C, H, W); a stride-s feature map is (B, c_s, H / s, W / s).
"""
from __future__ import annotations

import tinyml
import tinyml.nn as nn
from tinyml.nn.utils.fusion import fuse_conv_bn_eval
from tinyml.tensor import Tensor

__all__ = ["C2f", "CSP_SIZES", "Bottleneck", "CSPBackbone", "ConvBNAct", "SPPF", "fuse_modules"]

# width per stride (2, 4, 8, 16, 32) and the number of bottlenecks in each C2f; tiny is YOLOv8n's widths.
CSP_SIZES = {
    "tiny": {"widths": (16, 32, 64, 128, 256), "depth": 1},
    "small": {"widths": (32, 64, 128, 256, 512), "depth": 1},
}


class ConvBNAct(nn.Module):
    """Conv2d(bias=False) -> BatchNorm2d -> SiLU (act=False: no activation)."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride=s, padding=k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)  # ultralytics' BN settings
        self.act = nn.SiLU() if act else nn.Identity()
        self.fused = False

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x) if self.fused else self.bn(self.conv(x)))

    def fuse(self) -> None:
        """Fold the BN into the conv (eval mode only); afterwards forward runs conv + act."""
        if self.fused:
            return
        self.conv = fuse_conv_bn_eval(self.conv, self.bn)
        self.bn = nn.Identity()
        self.fused = True


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, c_out: int, shortcut: bool = True, expansion: float = 1.0):
        super().__init__()
        hidden = int(c_out * expansion)
        self.cv1 = ConvBNAct(c_in, hidden, 3)
        self.cv2 = ConvBNAct(hidden, c_out, 3)
        self.add = shortcut and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False, expansion: float = 0.5):
        super().__init__()
        self.hidden = int(c_out * expansion)
        self.cv1 = ConvBNAct(c_in, 2 * self.hidden, 1)
        self.cv2 = ConvBNAct((2 + n) * self.hidden, c_out, 1)
        self.m = nn.ModuleList([Bottleneck(self.hidden, self.hidden, shortcut) for _ in range(n)])

    def forward(self, x: Tensor) -> Tensor:
        parts = list(self.cv1(x).chunk(2, dim=1))  # 2 x (B, hidden, H, W)
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(tinyml.cat(parts, dim=1))  # (B, c_out, H, W)


class SPPF(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 5):
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNAct(c_in, hidden, 1)
        self.cv2 = ConvBNAct(hidden * 4, c_out, 1)
        self.pool = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.cv1(x)
        p1 = self.pool(x)
        p2 = self.pool(p1)
        return self.cv2(tinyml.cat([x, p1, p2, self.pool(p2)], dim=1))


class CSPBackbone(nn.Module):
    """Stem + stages down to max(strides); forward returns [feature at stride s for s in strides].

    `out_channels[i]` is the channel count of the i-th returned map. Strides are powers of two from 2
    to 32 (2 is the stem's output)."""

    def __init__(self, in_channels: int = 3, size: str = "tiny", strides=(4, 8, 16)):
        super().__init__()
        if size not in CSP_SIZES:
            raise ValueError(f"CSPBackbone: unknown size {size!r}; expected one of {sorted(CSP_SIZES)}")
        strides = tuple(int(s) for s in strides)
        allowed = (2, 4, 8, 16, 32)
        if not strides or any(s not in allowed for s in strides) or list(strides) != sorted(set(strides)):
            raise ValueError(f"CSPBackbone: strides must be increasing values from {allowed}, got {strides}")
        widths, depth = CSP_SIZES[size]["widths"], CSP_SIZES[size]["depth"]
        self.strides = strides
        self.in_channels = in_channels
        self.stem = ConvBNAct(in_channels, widths[0], 3, 2)  # stride 2
        n_stages = allowed.index(max(strides))  # stages after the stem
        stages = []
        for i in range(n_stages):
            c = widths[i + 1]
            blocks = [ConvBNAct(widths[i], c, 3, 2), C2f(c, c, depth, shortcut=True)]
            if i == n_stages - 1:
                blocks.append(SPPF(c, c))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(widths[allowed.index(s)] for s in strides)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)  # (B, w0, H/2, W/2)
        feats = {2: x}
        stride = 2
        for stage in self.stages:
            x = stage(x)
            stride *= 2
            feats[stride] = x  # (B, w_s, H/s, W/s)
        return [feats[s] for s in self.strides]


def fuse_modules(module: nn.Module) -> nn.Module:
    """Fold every ConvBNAct's BN into its conv (the module must be in eval mode); returns the module."""
    if module.training:
        raise RuntimeError(f"fuse: {type(module).__name__} is in training mode; call .eval() before fusing "
                           f"(BN running statistics are folded, batch statistics cannot be)")
    for m in module.modules():
        if isinstance(m, ConvBNAct):
            m.fuse()
    return module
