"""CenterNet (Zhou et al. 2019, "Objects as Points") for point-like targets: a heatmap head on the CSP
backbone + FPN neck (the PAN's top-down path: the head reads its finest map), at output stride 4, 2 or 1 (the
stride-4 map is upsampled and fused with the stem's stride-2 features, then with the image itself, so a 1-3 px
target keeps a peak of its own).

Targets (per object, centre c = the "points" entry when given, else the box centre; q = c / stride):
    heatmap   Y = max over objects of exp(-((x - q_x)^2 + (y - q_y)^2) / (2 sigma^2)) around the integer
              centre floor(q), radius r = max(min_radius, int(gaussian_radius(ceil(h), ceil(w)))),
              sigma = (2r + 1) / 6 (CenterNet's draw_umich_gaussian); min_radius (default 1) keeps a 3 x 3
              blob for 1-3 px targets, where CornerNet's radius rounds to 0 and a peak one cell off
              counts as a full negative
    size      (w, h) / stride;   offset  q - cell,   at every cell within reg_radius (Chebyshev) of
              floor(q), each with weight w = G / (sum of G over the object's cells), G the object's
              Gaussian at that cell (reg_radius 0, CenterNet's RegL1Loss: floor(q) alone, w = 1); a cell two
              objects reach regresses the one whose Gaussian is higher there (for reg_radius >= 1)
Loss: penalty-reduced focal loss (CornerNet's _neg_loss), p = clamp(sigmoid(x), 1e-4, 1 - 1e-4),
    L_hm = -1/N sum { (1 - p)^2 log p               where Y = 1
                      (1 - Y)^4 p^2 log(1 - p)      otherwise },   N = max(#objects, 1)
    L_wh, L_off = sum over cells of w |pred - target|_1 / (2 N + 1e-4);  total = L_hm + 0.1 L_wh + L_off
reg_radius 1 (TTFNet's idea of regressing from the area around the centre, on a 3 x 3 window) lets a peak
that lands one cell off, as it does for even-sized targets centred on a pixel corner, still point at the
centre: its offset was trained to.
Predict: peaks = cells equal to the 3 x 3 max-pool of the heatmap (the max-pool NMS), the max_det best above
conf_thres, box = ((x + off_x) -+ w / 2, (y + off_y) -+ h / 2) * stride, then per-class NMS at iou_thres
(1.0 turns it off; CenterNet itself stops at the max-pool).
`box_size` (pixels) fixes every box's size for points-only data: no size head, no size loss.
"""
from __future__ import annotations

import math

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F
from tinyml.ops.boxes import batched_nms
from tinyml.tensor import Tensor

from ..vision.csp import ConvBNAct, CSPBackbone, fuse_modules
from ..vision.neck import PAN
from .targets import as_image_tensor, check_targets, check_tta

__all__ = ["CenterNet", "draw_gaussian", "gaussian_radius"]

HEAD_WIDTHS = {"tiny": 16, "small": 32}


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CornerNet's radius (as CenterNet's code computes it): the smallest of three corner-shift radii that
    keep IoU >= min_overlap with the (height, width) box."""
    b1, c1 = height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: np.ndarray, center, radius: int) -> None:
    """CenterNet's draw_umich_gaussian: heatmap (H, W) = max(heatmap, the (2r+1)^2 Gaussian, sigma =
    (2r + 1) / 6, at the integer centre), in place."""
    d = 2 * radius + 1
    sigma = d / 6
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    cx, cy = int(center[0]), int(center[1])
    h, w = heatmap.shape
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    region = heatmap[cy - top:cy + bottom, cx - left:cx + right]
    patch = g[radius - top:radius + bottom, radius - left:radius + right]
    if min(patch.shape) > 0 and min(region.shape) > 0:
        np.maximum(region, patch.astype(heatmap.dtype), out=region)


def _branch(c_in: int, c_mid: int, c_out: int, bias: float = 0.0) -> nn.Sequential:
    head = nn.Sequential(ConvBNAct(c_in, c_mid, 3), nn.Conv2d(c_mid, c_out, 1))
    nn.init.constant_(head[-1].bias, bias)
    return head


class CenterNet(nn.Module):
    def __init__(self, num_classes: int = 1, size: str = "tiny", in_channels: int = 1, stride: int = 4,
                 box_size: float | None = None, min_radius: int = 1, min_overlap: float = 0.7,
                 wh_weight: float = 0.1, off_weight: float = 1.0, reg_radius: int = 0,
                 neck_bottom_up: bool = False):
        super().__init__()
        if size not in HEAD_WIDTHS:
            raise ValueError(f"CenterNet: unknown size {size!r}; expected one of {sorted(HEAD_WIDTHS)}")
        if stride not in (1, 2, 4):
            raise ValueError(f"CenterNet: stride must be 1, 2 or 4, got {stride}")
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"CenterNet: num_classes ({num_classes}) and in_channels ({in_channels}) "
                             f"must be >= 1")
        if int(reg_radius) != reg_radius or reg_radius < 0:
            raise ValueError(f"CenterNet: reg_radius must be a whole number >= 0, got {reg_radius}")
        if box_size is not None and box_size <= 0:
            raise ValueError(f"CenterNet: box_size must be positive or None, got {box_size}")
        self._config = dict(num_classes=num_classes, size=size, in_channels=in_channels, stride=stride,
                            box_size=box_size, min_radius=min_radius, min_overlap=min_overlap,
                            wh_weight=wh_weight, off_weight=off_weight, reg_radius=int(reg_radius),
                            neck_bottom_up=bool(neck_bottom_up))
        self.num_classes, self.in_channels, self.stride = num_classes, in_channels, stride
        self.backbone = CSPBackbone(in_channels, size, (2, 4, 8, 16))
        c2, *pyramid = self.backbone.out_channels
        # the head reads the neck's finest map, which the FPN makes: the PAN's bottom-up path is not built
        # (neck_bottom_up=True builds it, unused, for checkpoints written before session 15, which hold it)
        self.neck = PAN(pyramid, bottom_up=neck_bottom_up)
        c = pyramid[0]
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse2 = ConvBNAct(c + c2, c2, 3) if stride <= 2 else None  # with the stem's stride-2 map
        self.fuse1 = ConvBNAct(c2 + in_channels, c2, 3) if stride == 1 else None  # with the image
        c_out, hc = (c if stride == 4 else c2), HEAD_WIDTHS[size]
        self.hm = _branch(c_out, hc, num_classes, bias=-2.19)  # sigmoid(-2.19) = 0.1, CenterNet's prior
        self.wh = _branch(c_out, hc, 2) if box_size is None else None
        self.off = _branch(c_out, hc, 2)

    @property
    def config(self) -> dict:
        return dict(self._config)

    # what a saved config without these keys was built with: before session 15 the PAN's bottom-up modules
    # (built for an older checkpoint's weights to load, never run; not a setting of the model's outputs)
    OLDER_CONFIG = {"neck_bottom_up": True}

    @classmethod
    def from_config(cls, config: dict) -> CenterNet:
        """The model of a saved config, read as the code that saved it built it (OLDER_CONFIG)."""
        return cls(**{**cls.OLDER_CONFIG, **config})

    def forward(self, images) -> dict[str, Tensor]:
        """images (B, C, H, W) -> {"hm": (B, nc, H/s, W/s) logits, "off": (B, 2, ...), "wh": (B, 2, ...)}."""
        x = as_image_tensor("CenterNet", images, self.in_channels, 16)
        stem, *feats = self.backbone(x)
        y = self.neck.top_down_maps(feats)[0]  # (B, c, H/4, W/4)
        if self.stride <= 2:
            y = self.fuse2(tinyml.cat([self.up(y), stem], dim=1))  # (B, c2, H/2, W/2)
        if self.stride == 1:
            y = self.fuse1(tinyml.cat([self.up(y), x], dim=1))  # (B, c2, H, W)
        out = {"hm": self.hm(y), "off": self.off(y)}
        if self.wh is not None:
            out["wh"] = self.wh(y)
        return out

    def fuse(self) -> CenterNet:
        self.eval()
        fuse_modules(self)
        return self

    def build_targets(self, targets: list[dict], out_hw: tuple[int, int]) -> dict[str, np.ndarray]:
        """heatmap (B, nc, Ho, Wo); per regressed cell (module docstring): flat index b * Ho * Wo + y * Wo +
        x, size (m, 2) and offset (m, 2) in output cells, weight (m,); m = #objects for reg_radius 0."""
        ho, wo = out_hw
        s, reach = self.stride, self._config["reg_radius"]
        heat = np.zeros((len(targets), self.num_classes, ho, wo), np.float32)
        index, size, offset, weight, strength = [], [], [], [], []
        ring = np.arange(-reach, reach + 1)
        for b, t in enumerate(targets):
            boxes = np.asarray(t["boxes"], np.float32).reshape(-1, 4)
            labels = np.asarray(t["labels"]).reshape(-1)
            points = np.asarray(t["points"], np.float32).reshape(-1, 2) if "points" in t else \
                (boxes[:, :2] + boxes[:, 2:]) / 2
            for box, label, point in zip(boxes, labels, points):
                wh = (box[2:] - box[:2]) / s if self._config["box_size"] is None else \
                    np.full(2, self._config["box_size"] / s, np.float32)
                q = point / s
                qi = np.clip(np.floor(q), 0, [wo - 1, ho - 1]).astype(np.int64)
                r = gaussian_radius(math.ceil(wh[1]), math.ceil(wh[0]), self._config["min_overlap"])
                radius = max(self._config["min_radius"], int(r))
                draw_gaussian(heat[b, label], qi, radius)
                cx, cy = np.meshgrid(qi[0] + ring, qi[1] + ring)
                inside = (cx >= 0) & (cx < wo) & (cy >= 0) & (cy < ho)
                cx, cy = cx[inside], cy[inside]
                sigma = (2 * radius + 1) / 6
                g = np.exp(-((cx - qi[0]) ** 2 + (cy - qi[1]) ** 2) / (2 * sigma * sigma))
                index.append(b * ho * wo + cy * wo + cx)
                size.append(np.broadcast_to(wh, (len(cx), 2)))
                offset.append(q - np.stack([cx, cy], axis=1))
                weight.append(g / g.sum())
                strength.append(g)
        if not index:
            return {"hm": heat, "index": np.zeros(0, np.int64), "wh": np.zeros((0, 2), np.float32),
                    "off": np.zeros((0, 2), np.float32), "weight": np.zeros(0, np.float32)}
        index, strength = np.concatenate(index), np.concatenate(strength)
        keep = np.arange(len(index))
        if reach:  # a cell that several objects reach regresses the object whose Gaussian is highest there
            order = np.lexsort((-strength, index))
            keep = np.sort(order[np.r_[True, index[order][1:] != index[order][:-1]]])
        return {"hm": heat, "index": index[keep],
                "wh": np.concatenate(size).astype(np.float32)[keep],
                "off": np.concatenate(offset).astype(np.float32)[keep],
                "weight": np.concatenate(weight).astype(np.float32)[keep]}

    def loss(self, raw: dict, targets: list[dict]) -> tuple[Tensor, dict[str, float]]:
        if not isinstance(raw, dict) or "hm" not in raw:
            raise ValueError(f"CenterNet.loss: expected the dict that forward returns, got "
                             f"{type(raw).__name__}")
        b, nc, ho, wo = raw["hm"].shape
        check_targets("CenterNet.loss", targets, b, nc)
        t = self.build_targets(targets, (ho, wo))
        p = raw["hm"].sigmoid().clamp(min=1e-4, max=1 - 1e-4)
        pos = tinyml.tensor((t["hm"] == 1).astype(np.float32))
        neg_w = tinyml.tensor(((1 - t["hm"]) ** 4 * (t["hm"] < 1)).astype(np.float32))
        focal = (p.log() * (1 - p) ** 2 * pos + (1 - p).log() * p ** 2 * neg_w).sum()
        hm_loss = -focal / max(float(pos.sum().item()), 1.0)
        total, parts = hm_loss, {"hm": hm_loss.item(), "off": 0.0}
        if self.wh is not None:
            parts["wh"] = 0.0
        n = sum(len(np.asarray(x["labels"]).reshape(-1)) for x in targets)  # objects
        if len(t["index"]):
            idx = tinyml.tensor(t["index"])
            cell_weight = tinyml.tensor(t["weight"][:, None])
            for key, weight in (("off", self._config["off_weight"]), ("wh", self._config["wh_weight"])):
                if key not in raw:
                    continue
                pred = raw[key].permute(0, 2, 3, 1).reshape(b * ho * wo, 2)[idx]  # (n, 2)
                term = ((pred - tinyml.tensor(t[key])).abs() * cell_weight).sum() / (2 * n + 1e-4)
                total = total + weight * term
                parts[key] = weight * term.item()
        return total, parts

    def dense(self, images, tta: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Eval-mode outputs as numpy: heatmap probabilities (B, nc, Ho, Wo), offsets (B, 2, Ho, Wo), sizes
        (B, 2, Ho, Wo) in cells (None with box_size).

        tta: test-time augmentation (CenterNet's flip_test, extended), letters of "hvt": the mean of the
        heads over the image and its mirror images (h: u -> Wo - u; v: the same along H) and/or its
        transpose (t), 2^len(tta) views, each mapped back and matched per cell. Transposing keeps every
        cell and swaps the offset and size components. A mirror does not: the peak of a centre at q is
        cell floor(q), in the mirror floor(Wo - q), which maps back to floor(q) when q is not an integer
        but to floor(q) - 1 when it is (a centre on a cell edge, as every even-sized box at an integer
        position at stride 1). So each cell x takes the mirror's cell that maps back to x (A: offset
        1 - o') or to x - 1 (B: offset -o', the edge case), whichever has the higher heat:
            M(x), O(x), S(x) = A or B,   heat = (P + M) / 2,   off = (O + O(x)) / 2,   wh = (S + S(x)) / 2,
        with O(x) along the mirrored axis the mirror's decoded centre (Wo - c' - o') minus x, so the merged
        peak stays on the cell the unflipped head chose and its offset and size average views of the same
        centre."""
        check_tta("CenterNet.dense", tta)
        was_training = self.training
        self.eval()
        try:
            with tinyml.no_grad():
                x = as_image_tensor("CenterNet", images, self.in_channels, 16).numpy()
                heat, off, wh = self._dense_views(x, tta)
        finally:
            self.train(was_training)
        return np.ascontiguousarray(heat, np.float32), np.ascontiguousarray(off, np.float32), \
            None if wh is None else np.ascontiguousarray(wh, np.float32)

    def _dense_views(self, x: np.ndarray, tta: str):
        if not tta:
            raw = self(tinyml.tensor(np.ascontiguousarray(x)))
            return raw["hm"].sigmoid().numpy(), raw["off"].numpy(), raw["wh"].numpy() if "wh" in raw else None
        op, rest = tta[0], tta[1:]
        heat, off, wh = self._dense_views(x, rest)
        if op == "t":
            m_heat, m_off, m_wh = self._dense_views(x.swapaxes(-1, -2), rest)
            back = lambda a: a[:, ::-1].swapaxes(-1, -2)  # noqa: E731  (x, y) components swap back
            return ((heat + m_heat.swapaxes(-1, -2)) / 2, (off + back(m_off)) / 2,
                    None if wh is None else (wh + back(m_wh)) / 2)
        axis = -1 if op == "h" else -2
        mirror = [None if a is None else np.flip(a, axis) for a in self._dense_views(np.flip(x, axis), rest)]
        return _merge_mirror(heat, off, wh, *mirror, axis=axis)

    def predict(self, images, conf_thres: float = 0.25, iou_thres: float = 0.6, max_det: int = 300,
                tta: str = "") -> list:
        """Per image (boxes (n, 4) xyxy float32 pixels, scores (n,), labels (n,) int64), best first; tta:
        average the heads over flipped / transposed views first (`dense`)."""
        heat, off, wh = self.dense(images, tta)
        with tinyml.no_grad():
            h = tinyml.tensor(heat)
            peaks = (h == F.max_pool2d(h, 3, stride=1, padding=1)).numpy()
        _, nc, ho, wo = heat.shape
        s = self.stride
        results = []
        for i in range(heat.shape[0]):
            score = np.where(peaks[i], heat[i], 0).reshape(-1)  # (nc * Ho * Wo,)
            top = np.argsort(-score, kind="stable")[:max_det]
            top = top[score[top] > conf_thres]
            label, cell = top // (ho * wo), top % (ho * wo)
            y, x = cell // wo, cell % wo
            cx, cy = x + off[i, 0, y, x], y + off[i, 1, y, x]
            if wh is None:
                w = h = np.full(len(top), self._config["box_size"] / s, np.float32)
            else:
                w, h = wh[i, 0, y, x], wh[i, 1, y, x]
            boxes = (np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * s).astype(np.float32)
            boxes = boxes.reshape(-1, 4).clip(0, [wo * s, ho * s, wo * s, ho * s]).astype(np.float32)
            sc, lb = score[top].astype(np.float32), label.astype(np.int64)
            if len(sc) and iou_thres < 1.0:
                keep = batched_nms(tinyml.tensor(boxes), tinyml.tensor(sc), tinyml.tensor(lb),
                                   iou_thres).numpy()
                boxes, sc, lb = boxes[keep], sc[keep], lb[keep]
            results.append((boxes, sc, lb))
        return results


def _shift1(a: np.ndarray, axis: int) -> np.ndarray:
    """a shifted one cell forward along axis (out[x] = a[x - 1], out[0] = 0)."""
    out = np.zeros_like(a)
    dst, src = [slice(None)] * a.ndim, [slice(None)] * a.ndim
    dst[axis], src[axis] = slice(1, None), slice(None, -1)
    out[tuple(dst)] = a[tuple(src)]
    return out


def _merge_mirror(heat, off, wh, m_heat, m_off, m_wh, axis: int = -1):
    """CenterNet.dense's flip merge along axis (-1: W, offset component 0; -2: H, component 1). m_*: the
    mirror image's heads already reversed along that axis (cell x holds the mirror's cell Wo - 1 - x).
    Candidate A for cell x is m_*[x], B is m_*[x - 1] (none for x = 0)."""
    k = 0 if axis == -1 else 1
    b_heat, b_off = _shift1(m_heat, axis), _shift1(m_off, axis)
    use_b = b_heat.max(1) > m_heat.max(1)  # (B, Ho, Wo)
    merged_heat = (heat + np.maximum(m_heat, b_heat)) / 2
    merged_off = off.copy()
    merged_off[:, k] = (off[:, k] + np.where(use_b, -b_off[:, k], 1 - m_off[:, k])) / 2
    merged_off[:, 1 - k] = (off[:, 1 - k] + np.where(use_b, b_off[:, 1 - k], m_off[:, 1 - k])) / 2
    merged_wh = None
    if wh is not None:
        merged_wh = (wh + np.where(use_b[:, None], _shift1(m_wh, axis), m_wh)) / 2
    return merged_heat, merged_off, merged_wh
