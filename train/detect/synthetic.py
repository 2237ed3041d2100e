"""A seeded synthetic infrared small-target set: 1-9 px targets on cloud, horizon and line clutter.

    ds = SyntheticIR(400, size=256, seed=0)          # a dataset: ds[i] -> (image (1, H, W), target)
    write_synthetic_ir("ir", n_train=400, n_val=100, size=256, seed=0, fmt="coco")   # or fmt="yolo"

Sample i depends only on (seed, first_index + i): it is drawn from numpy's
`default_rng([seed, first_index + i])`, so any sample is rebuilt alone, in any order, by any worker.
The fixed-pattern sensor defects (column stripes, stuck pixels) depend on the seed alone, as a real
sensor's do: every image of a set shares them.

An image is built in four layers, intensities in [0, 1]:

    background  one of `backgrounds`, chosen uniformly per image:
                cloud    1/f^beta fractal noise (power spectrum ~ f^-beta, beta in [2.4, 3.2]) scaled
                         to a random base level and contrast
                horizon  a sky (smooth cloud) over a ground of rougher texture (beta in [1.6, 2.2]); the
                         horizon row is tilted and wavy, the step blurred over ~1 px
                clutter  a horizon or cloud scene plus buildings (rectangles rising from the horizon,
                         hotter or colder than the ground) and 1-3 power lines (sagging 1 px curves)
    targets     0..max_targets per image (an image is empty with probability empty_fraction), each of
                integer diameter s in [min_size, max_size], centred on a pixel centre (odd s) or corner
                (even s) so that its mask is exactly s px across:
                blob     a point-spread Gaussian, profile exp(-d^2 / (2 sigma^2)) with its half-maximum
                         at d = s/2 (sigma = s / (2 sqrt(2 ln 2)))
                ellipse  (s >= 4, with probability ellipse_fraction) semi-axes a = s/2 and b in
                         [max(1, 0.4 a), a], rotated; flat-topped profile exp(-ln 2 * r^4), r the
                         elliptical radius (r = 1 on the ellipse)
                The peak amplitude is SCR * sigma_b, where the signal-to-clutter ratio SCR is drawn
                log-uniformly from scr_range and sigma_b is the standard deviation of the noisy background
                in a (2s + 21)^2 window around the target (capped so the peak stays <= 1). Targets do not
                touch: their boxes, grown by 3 px, are disjoint.
    noise       Gaussian read noise (sigma drawn from noise_std per image) plus column stripes
                (fixed-pattern offsets, scaled per image by a draw from stripe_std)
    defects     stuck pixels (a seed-fixed dead_pixel_fraction of the sensor, half at 0, half at 1)

Ground truth of a target: mask = the pixels where its profile is >= half its peak (d <= s/2: at least
the centre pixel), box = the tight [x1, y1, x2, y2] around the mask in pixel edges (x2 - x1 >= 1),
point = the exact centre (x, y) (pixel i spans [i, i + 1)), label 0 ("target"), or with num_classes=2
0 ("small", s <= (min_size + max_size) // 2) and 1 ("large"). target["scr"] keeps each SCR.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

__all__ = ["SyntheticIR", "write_synthetic_ir", "BACKGROUNDS"]

BACKGROUNDS = ("cloud", "horizon", "clutter")
_LN2 = math.log(2.0)


def _range(name: str, value, low: float = 0.0) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"SyntheticIR: {name} must be a (low, high) pair, got {value!r}") from None
    if not (low <= a <= b) or not math.isfinite(b):
        raise ValueError(f"SyntheticIR: {name} must satisfy {low} <= low <= high < inf, got {value!r}")
    return a, b


def fractal_noise(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """(h, w) noise with power spectrum ~ f^-beta (no DC), rescaled to [0, 1]."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = np.inf                                              # zero mean: the level is set by the caller
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) * f ** (-beta / 2)
    field = np.fft.irfft2(spectrum, s=(h, w))
    lo, hi = field.min(), field.max()
    return (field - lo) / max(hi - lo, 1e-12)


def _wavy_line(rng: np.random.Generator, w: int, y0: float, slope: float, wave: float) -> np.ndarray:
    """y(x) at column centres: a tilted line plus smooth 1-D fractal undulation of amplitude `wave`."""
    x = np.arange(w) + 0.5
    f = np.fft.rfftfreq(w)
    f[0] = np.inf
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) * f ** -1.5
    undulation = np.fft.irfft(spectrum, n=w)
    undulation /= max(np.abs(undulation).max(), 1e-12)
    return y0 + slope * (x - w / 2) + wave * undulation


class SyntheticIR:
    """Synthetic infrared small-target images (see the module docstring for the generative model).

    Items are (image float32 (1, H, W) in [0, 1], target) with target keys boxes (n, 4) float32 xyxy,
    labels (n,) int64, points (n, 2) float32, mask (H, W) uint8, scr (n,) float32, image_id
    (first_index + i + 1), file_name ("%06d.png" of first_index + i), orig_size (H, W)."""

    def __init__(self, n_images: int, size: int | Sequence[int] = 256, seed: int = 0, min_size: int = 1,
                 max_size: int = 9, max_targets: int = 5, empty_fraction: float = 0.1,
                 scr_range: Sequence[float] = (2.0, 12.0), backgrounds: Sequence[str] = BACKGROUNDS,
                 noise_std: Sequence[float] = (0.004, 0.015), stripe_std: Sequence[float] = (0.0, 0.008),
                 dead_pixel_fraction: float = 0.0, ellipse_fraction: float = 0.3, num_classes: int = 1,
                 first_index: int = 0):
        if int(n_images) != n_images or n_images < 0:
            raise ValueError(f"SyntheticIR: n_images must be a non-negative integer, got {n_images!r}")
        hw = (size, size) if np.isscalar(size) else tuple(size)
        if len(hw) != 2 or any(int(v) != v or v < 16 for v in hw):
            raise ValueError(f"SyntheticIR: size must be an int or (H, W) of integers >= 16, got {size!r}")
        if int(min_size) != min_size or int(max_size) != max_size or not 1 <= min_size <= max_size:
            raise ValueError(f"SyntheticIR: need integers 1 <= min_size <= max_size, got "
                             f"min_size={min_size!r}, max_size={max_size!r}")
        if 4 * max_size + 8 > min(hw):
            raise ValueError(f"SyntheticIR: max_size={max_size} is too large for images of size {hw}")
        if int(max_targets) != max_targets or max_targets < 0:
            raise ValueError(f"SyntheticIR: max_targets must be a non-negative integer, got {max_targets!r}")
        for name, p in (("empty_fraction", empty_fraction), ("ellipse_fraction", ellipse_fraction),
                        ("dead_pixel_fraction", dead_pixel_fraction)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"SyntheticIR: {name} must be in [0, 1], got {p!r}")
        unknown = [b for b in backgrounds if b not in BACKGROUNDS]
        if unknown or not len(backgrounds):
            raise ValueError(f"SyntheticIR: backgrounds must be a non-empty subset of {BACKGROUNDS}, "
                             f"got {tuple(backgrounds)!r}")
        if num_classes not in (1, 2):
            raise ValueError(f"SyntheticIR: num_classes must be 1 (target) or 2 (small/large), "
                             f"got {num_classes!r}")
        if int(seed) != seed or seed < 0 or int(first_index) != first_index or first_index < 0:
            raise ValueError(f"SyntheticIR: seed and first_index must be non-negative integers, got "
                             f"seed={seed!r}, first_index={first_index!r}")
        self.n_images, self.seed, self.first_index = int(n_images), int(seed), int(first_index)
        self.height, self.width = int(hw[0]), int(hw[1])
        self.min_size, self.max_size, self.max_targets = int(min_size), int(max_size), int(max_targets)
        self.empty_fraction, self.ellipse_fraction = float(empty_fraction), float(ellipse_fraction)
        self.scr_range = _range("scr_range", scr_range, low=1e-6)
        self.noise_std = _range("noise_std", noise_std)
        self.stripe_std = _range("stripe_std", stripe_std)
        self.dead_pixel_fraction = float(dead_pixel_fraction)
        self.backgrounds = tuple(backgrounds)
        self.num_classes = int(num_classes)
        self.class_names = ["target"] if num_classes == 1 else ["small", "large"]
        self.in_channels = 1
        sensor = np.random.default_rng([self.seed])                # the sensor: shared by every image
        self._stripes = sensor.standard_normal(self.width).astype(np.float64)
        n_dead = int(round(self.dead_pixel_fraction * self.height * self.width))
        flat = sensor.choice(self.height * self.width, size=n_dead, replace=False)
        self._dead_index = np.unravel_index(flat, (self.height, self.width))
        self._dead_value = (np.arange(n_dead) % 2).astype(np.float64)

    def __len__(self) -> int:
        return self.n_images

    def __getitem__(self, i: int):
        if not -self.n_images <= i < self.n_images:
            raise IndexError(f"SyntheticIR index {i} out of range for {self.n_images} images")
        i = int(i) % self.n_images if self.n_images else int(i)
        k = self.first_index + i
        rng = np.random.default_rng([self.seed, k])
        background = self._background(rng)
        noise = rng.normal(0.0, rng.uniform(*self.noise_std), background.shape)
        noise += rng.uniform(*self.stripe_std) * self._stripes[None, :]
        clean = background + noise
        image = clean.copy()
        mask = np.zeros((self.height, self.width), dtype=np.uint8)
        boxes, labels, points, scrs = [], [], [], []
        empty = rng.random() < self.empty_fraction or self.max_targets == 0
        n = 0 if empty else rng.integers(1, self.max_targets + 1)
        for _ in range(n):
            placed = self._place_target(rng, clean, image, mask, boxes)
            if placed is None:
                continue
            box, point, s, scr = placed
            boxes.append(box)
            points.append(point)
            labels.append(0 if self.num_classes == 1 or s <= (self.min_size + self.max_size) // 2 else 1)
            scrs.append(scr)
        image[self._dead_index] = self._dead_value
        image = np.clip(image, 0.0, 1.0).astype(np.float32)[None]
        target = {"boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                  "labels": np.asarray(labels, dtype=np.int64),
                  "points": np.asarray(points, dtype=np.float32).reshape(-1, 2),
                  "mask": mask, "scr": np.asarray(scrs, dtype=np.float32),
                  "image_id": k + 1, "file_name": f"{k:06d}.png", "orig_size": (self.height, self.width)}
        return image, target

    # -- backgrounds ------------------------------------------------------------------------------------
    def _background(self, rng: np.random.Generator) -> np.ndarray:
        kind = self.backgrounds[rng.integers(len(self.backgrounds))]
        if kind == "cloud":
            return self._cloud(rng)
        if kind == "horizon":
            return self._horizon(rng)[0]
        return self._clutter(rng)

    def _cloud(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.height, self.width
        level, contrast = rng.uniform(0.12, 0.35), rng.uniform(0.08, 0.3)
        return level + contrast * fractal_noise(rng, h, w, rng.uniform(2.4, 3.2))

    def _horizon(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.height, self.width
        level, contrast = rng.uniform(0.1, 0.3), rng.uniform(0.03, 0.12)
        sky = level + contrast * fractal_noise(rng, h, w, rng.uniform(2.6, 3.4))
        sky += rng.uniform(-0.08, 0.08) * np.linspace(-1, 1, h)[:, None]       # the sky's vertical gradient
        level, contrast = rng.uniform(0.2, 0.5), rng.uniform(0.08, 0.2)
        ground = level + contrast * fractal_noise(rng, h, w, rng.uniform(1.6, 2.2))
        line = _wavy_line(rng, w, rng.uniform(0.3, 0.75) * h, rng.uniform(-0.15, 0.15), rng.uniform(0.5, 6.0))
        rows = np.arange(h)[:, None] + 0.5
        weight = 1.0 / (1.0 + np.exp(-(rows - line[None, :]) / rng.uniform(0.3, 1.0)))   # 0 sky, 1 ground
        return sky * (1 - weight) + ground * weight, line

    def _clutter(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.height, self.width
        if rng.random() < 0.7:
            scene, line = self._horizon(rng)
        else:
            scene, line = self._cloud(rng), np.full(w, float(h))
        for _ in range(rng.integers(0, 7)):                          # buildings standing on the horizon
            bw, bh = rng.integers(6, max(8, w // 5)), rng.integers(6, max(8, h // 3))
            x0 = rng.integers(0, w - bw)
            base = int(min(h, np.ceil(line[x0:x0 + bw].max())))
            top = max(0, base - bh)
            if base > top:
                scene[top:base, x0:x0 + bw] += rng.uniform(-0.15, 0.25)
        rows = np.arange(h)[:, None] + 0.5
        x = np.arange(w) + 0.5
        for _ in range(rng.integers(1, 4)):                          # power lines: sagging 1 px curves
            y0, x_low = rng.uniform(0.2, 0.8) * h, rng.uniform(0, w)    # x_low: the lowest point
            y = y0 + rng.uniform(-0.1, 0.1) * (x - w / 2) - rng.uniform(0, 0.6 / w) * (x - x_low) ** 2
            scene += rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.15) * np.clip(
                1.0 - np.abs(rows - y[None, :]) / rng.uniform(0.6, 1.2), 0.0, None)
        return scene

    # -- targets ----------------------------------------------------------------------------------------
    def _place_target(self, rng, clean, image, mask, boxes):
        """Draws one target into image and mask; (box, point, s, scr), or None when no free spot was found."""
        h, w = self.height, self.width
        s = int(rng.integers(self.min_size, self.max_size + 1))
        ellipse = s >= 4 and rng.random() < self.ellipse_fraction
        scr = math.exp(rng.uniform(math.log(self.scr_range[0]), math.log(self.scr_range[1])))
        b = rng.uniform(max(1.0, 0.4 * s / 2), s / 2) if ellipse else 0.0
        theta = rng.uniform(0, math.pi)
        offset = 0.5 if s % 2 else 0.0                     # centre on a pixel centre (odd s) or corner
        margin = s // 2 + 2
        for _ in range(30):
            cx = rng.integers(margin, w - margin) + offset
            cy = rng.integers(margin, h - margin) + offset
            r = int(math.ceil(1.5 * s)) + 2                         # the patch holds the profile's tail
            x0, y0 = max(0, int(cx) - r), max(0, int(cy) - r)
            x1, y1 = min(w, int(cx) + r + 1), min(h, int(cy) + r + 1)
            dx = np.arange(x0, x1)[None, :] + 0.5 - cx
            dy = np.arange(y0, y1)[:, None] + 0.5 - cy
            if ellipse:
                u = dx * math.cos(theta) + dy * math.sin(theta)
                v = -dx * math.sin(theta) + dy * math.cos(theta)
                r2 = (u / (s / 2)) ** 2 + (v / b) ** 2
                profile = np.exp(-_LN2 * r2 * r2)
            else:
                sigma = s / (2.0 * math.sqrt(2.0 * _LN2))
                profile = np.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
            blob = profile >= 0.5
            ys, xs = np.nonzero(blob)
            box = [x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1.0, y0 + ys.max() + 1.0]
            if any(box[0] - 3 < o[2] and o[0] < box[2] + 3 and box[1] - 3 < o[3] and o[1] < box[3] + 3
                   for o in boxes):
                continue
            wr = s + 10                                             # the local background window
            win = clean[max(0, int(cy) - wr):int(cy) + wr + 1, max(0, int(cx) - wr):int(cx) + wr + 1]
            peak = scr * float(win.std())
            peak = min(peak, max(1.0 - float(win.max()), 0.0))     # keep the peak inside [0, 1]
            if peak <= 0.0:
                continue
            scr = peak / max(float(win.std()), 1e-12)
            image[y0:y1, x0:x1] += peak * profile
            mask[y0:y1, x0:x1] |= blob.astype(np.uint8)
            return box, [cx, cy], s, scr
        return None


def write_synthetic_ir(root: str, n_train: int, n_val: int, size: int = 256, seed: int = 0,
                       fmt: str = "coco", bit_depth: int = 8, **kwargs) -> dict:
    """Writes a SyntheticIR set to disk in the COCO or YOLO layout of `tinyml detect`; returns the manifest.

    train holds images 0..n_train-1 of the seed's stream, val the next n_val (disjoint, same generator).
    COCO: root/{train,val}/NNNNNN.png + root/annotations/instances_{split}.json (masks as RLE, each object's
    centre in an extra "point" field); YOLO: root/images/{split}/*.png, root/labels/{split}/*.txt (an
    empty file for an empty image) and root/data.yaml. Images are grayscale PNG of 8 or 16 bits.
    Extra keyword arguments go to SyntheticIR."""
    from .writers import write_coco_split, write_yolo_split, write_yolo_yaml

    if fmt not in ("coco", "yolo"):
        raise ValueError(f"write_synthetic_ir: fmt must be 'coco' or 'yolo', got {fmt!r}")
    splits = {"train": SyntheticIR(n_train, size=size, seed=seed, first_index=0, **kwargs),
              "val": SyntheticIR(n_val, size=size, seed=seed, first_index=n_train, **kwargs)}
    os.makedirs(root, exist_ok=True)
    manifest = {"root": os.path.abspath(root), "format": fmt, "class_names": splits["train"].class_names,
                "splits": {name: len(ds) for name, ds in splits.items()}}
    for name, ds in splits.items():
        if fmt == "coco":
            write_coco_split(root, name, ds, bit_depth=bit_depth)
        else:
            write_yolo_split(root, name, ds, bit_depth=bit_depth)
    if fmt == "yolo":
        write_yolo_yaml(root, splits["train"].class_names)
    return manifest
