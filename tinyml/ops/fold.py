"""unfold (im2col) and fold (col2im) over (N, C, H, W) images, as torch.nn.functional.unfold / fold,
composed of index_select and index_add on the flattened, padded image (so each is the other's
gradient, exactly as in torch).

    unfold(x, k, dilation d, padding p, stride s)[n, c*kh*kw + i*kw + j, l]
        = x_padded[n, c, oh(l)*s_h + i*d_h, ow(l)*s_w + j*d_w]     l = oh * L_w + ow
    L_h = (H + 2 p_h - d_h (k_h - 1) - 1) // s_h + 1  (and L_w alike);  fold sums the patches back.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..tensor import Tensor
from .creation import tensor, zeros
from .movement import reshape
from .movement_copy import pad
from .scatter import index_add, index_select

# not exported into tinyml.*: torch has F.unfold and Tensor.unfold (a different op), no torch.unfold
__all__: list[str] = []


def _pair(name: str, what: str, v) -> tuple[int, int]:
    v = (v, v) if isinstance(v, int) else tuple(v)
    if len(v) != 2 or not all(isinstance(x, int) for x in v):
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, got {v!r}")
    return v


def _geometry(name: str, size, kernel_size, dilation, padding, stride):
    k, d = _pair(name, "kernel_size", kernel_size), _pair(name, "dilation", dilation)
    p, s = _pair(name, "padding", padding), _pair(name, "stride", stride)
    if min(k) < 1 or min(d) < 1 or min(s) < 1 or min(p) < 0:
        raise ValueError(f"{name}: kernel_size {k}, dilation {d} and stride {s} must be positive and "
                         f"padding {p} non-negative")
    hp, wp = size[0] + 2 * p[0], size[1] + 2 * p[1]
    lh, lw = (hp - d[0] * (k[0] - 1) - 1) // s[0] + 1, (wp - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if lh < 1 or lw < 1:
        raise ValueError(f"{name}: a kernel of {k} with dilation {d} does not fit the padded size "
                         f"({hp}, {wp})")
    # flat index into the padded (hp, wp) plane, laid out (kh, kw, lh, lw)
    rows = np.arange(k[0])[:, None, None, None] * d[0] + np.arange(lh)[None, None, :, None] * s[0]
    cols = np.arange(k[1])[None, :, None, None] * d[1] + np.arange(lw)[None, None, None, :] * s[1]
    return k, p, (hp, wp), (lh, lw), (rows * wp + cols).reshape(-1)


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sliding local blocks: (N, C, H, W) -> (N, C * kh * kw, L) (torch.nn.functional.unfold)."""
    if input.dim() not in (3, 4):
        raise ValueError(f"unfold: expected a 3-d or 4-d input (C, H, W) / (N, C, H, W), got shape "
                         f"{tuple(input.shape)}")
    batched = input.dim() == 4
    x = input if batched else input.unsqueeze(0)
    n, c, h, w = x.shape
    k, p, (hp, wp), (lh, lw), index = _geometry("unfold", (h, w), kernel_size, dilation, padding, stride)
    if p != (0, 0):
        x = pad(x, (p[1], p[1], p[0], p[0]))
    flat = reshape(x, (n, c, hp * wp))
    cols = index_select(flat, 2, tensor(index, dtype=_dt.int64, device=input.device))
    out = reshape(cols, (n, c * k[0] * k[1], lh * lw))
    return out if batched else out.squeeze(0)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sum sliding blocks back into an image: (N, C * kh * kw, L) -> (N, C, H, W) (torch's F.fold)."""
    if input.dim() not in (2, 3):
        raise ValueError(f"fold: expected a 2-d or 3-d input (C*kh*kw, L) / (N, C*kh*kw, L), got shape "
                         f"{tuple(input.shape)}")
    batched = input.dim() == 3
    x = input if batched else input.unsqueeze(0)
    size = _pair("fold", "output_size", output_size)
    k, p, (hp, wp), (lh, lw), index = _geometry("fold", size, kernel_size, dilation, padding, stride)
    n, ckk, length = x.shape
    if ckk % (k[0] * k[1]) or length != lh * lw:
        raise ValueError(f"fold: input of shape {tuple(input.shape)} does not match kernel_size {k} and "
                         f"output_size {size}: expected dim -2 divisible by {k[0] * k[1]} and {lh * lw} "
                         "blocks")
    c = ckk // (k[0] * k[1])
    plane = zeros((n, c, hp * wp), dtype=input.dtype, device=input.device)
    plane = index_add(plane, 2, tensor(index, dtype=_dt.int64, device=input.device),
                      reshape(x, (n, c, k[0] * k[1] * length)))
    out = reshape(plane, (n, c, hp, wp))[:, :, p[0]:p[0] + size[0], p[1]:p[1] + size[1]]
    return out if batched else out.squeeze(0)
