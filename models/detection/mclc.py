"""Pseudo-masks from single-point labels: Monte Carlo Linear Clustering (MCLC; Li et al. 2023, "Monte Carlo
Linear Clustering with Single-Point Supervision is Enough for Infrared Small Target Detection").

    mask = mclc_pseudo_masks(image, points)    # image (H, W) in [0, 1], points (n, 2) (x, y) -> (H, W) uint8

For each labelled point (x, y) (pixel i spans [i, i + 1), so the point lies in pixel (floor y, floor x)):

1. take the `window` x `window` crop centred on that pixel (clipped at the image border) and, by default,
   rescale it to [0, 1] (min-max; makes the clustering independent of the target's contrast);
2. `runs` times (the Monte Carlo part), perturb the crop with salt noise (a random `noise_amount` share
   of its pixels set to the crop's maximum, as the paper's skimage.util.random_noise(mode="salt",
   amount=0.05)) and cluster it by simple linear iterative clustering (SLIC, the "linear clustering" of
   the paper's code: k-means over (intensity, row, column) with `n_segments` grid-seeded centres, each
   centre searching a 2S x 2S neighbourhood, S = sqrt(window area / n_segments), and the distance

       D^2 = (100 (I_p - I_c))^2 + (compactness / S)^2 ((y_p - y_c)^2 + (x_p - x_c)^2)

   i.e. intensity on the 0..100 scale of the L channel that skimage's slic uses; 9 segments and 50 runs
   as the paper's code; its compactness 20 goes with a crop sized by a per-target size prior, which
   point labels alone do not give, so the fixed 21 x 21 window here uses compactness 30, the best of
   a small grid on 20 SyntheticIR images (docs/vit_mclc.md)); the run's vote is the 8-connected part,
   containing the point, of the cluster the point's pixel falls in (skimage's slic also enforces
   connected segments);
3. the target probability map is the mean vote over the runs, and the pseudo-mask is where it is
   >= `threshold` (the paper refines the probability map with a dense CRF instead; not done here).

The pseudo-mask of an image is the union over its points; the labelled pixel itself is always in it.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["mclc_pseudo_masks", "mclc_probability", "slic_labels"]


def _grid_centres(h: int, w: int, n_segments: int) -> np.ndarray:
    """Centres (k, 2) (row, col) of a near-square grid of about n_segments cells over an h x w crop."""
    ny = max(1, min(h, int(round(math.sqrt(n_segments * h / w)))))
    nx = max(1, min(w, int(round(n_segments / ny))))
    ys = (np.arange(ny) + 0.5) * h / ny - 0.5
    xs = (np.arange(nx) + 0.5) * w / nx - 0.5
    return np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)


def slic_labels(crops: np.ndarray, n_segments: int = 9, compactness: float = 20.0, iterations: int = 10):
    """SLIC cluster labels (R, h, w) int64 of R crops (R, h, w) with intensities in [0, 1], all at once.

    k-means over (100 I, y, x) with the distance of the module docstring, the k-th centre restricted to
    pixels within 2S of it along each axis (SLIC's local search); a centre that loses all its pixels
    keeps its place."""
    crops = np.asarray(crops, dtype=np.float64)
    R, h, w = crops.shape
    step = math.sqrt(h * w / n_segments)
    spatial_weight = (compactness / step) ** 2
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    pix_y, pix_x = yy.reshape(1, -1, 1), xx.reshape(1, -1, 1)                 # (1, N, 1)
    intensity = 100.0 * crops.reshape(R, -1, 1)                               # (R, N, 1)
    centres = _grid_centres(h, w, n_segments)                                 # (k, 2)
    k = len(centres)
    cy = np.broadcast_to(centres[:, 0], (R, 1, k)).copy()                     # (R, 1, k)
    cx = np.broadcast_to(centres[:, 1], (R, 1, k)).copy()
    iy = np.clip(np.round(centres[:, 0]).astype(int), 0, h - 1)
    ix = np.clip(np.round(centres[:, 1]).astype(int), 0, w - 1)
    ci = intensity[:, iy * w + ix, 0][:, None, :]                             # (R, 1, k)
    offsets = (np.arange(R) * k)[:, None]                     # run r's clusters are r*k .. r*k+k-1
    flat_y = np.broadcast_to(yy.reshape(1, -1), (R, h * w)).ravel()
    flat_x = np.broadcast_to(xx.reshape(1, -1), (R, h * w)).ravel()
    flat_i = intensity.ravel()
    for _ in range(iterations):
        dist = (intensity - ci) ** 2 + spatial_weight * ((pix_y - cy) ** 2 + (pix_x - cx) ** 2)   # (R, N, k)
        far = (np.abs(pix_y - cy) > 2 * step) | (np.abs(pix_x - cx) > 2 * step)
        dist[far] = np.inf
        labels = dist.argmin(-1)                                              # (R, N)
        idx = (labels + offsets).ravel()
        counts = np.bincount(idx, minlength=R * k).reshape(R, 1, k)
        keep = counts > 0
        safe = np.maximum(counts, 1)

        def mean_of(values, old):
            return np.where(keep, np.bincount(idx, values, R * k).reshape(R, 1, k) / safe, old)

        cy, cx, ci = mean_of(flat_y, cy), mean_of(flat_x, cx), mean_of(flat_i, ci)
    return labels.reshape(R, h, w)


def _connected_from(seed_y: int, seed_x: int, region: np.ndarray) -> np.ndarray:
    """The 8-connected part of each region (R, h, w) containing (seed_y, seed_x), by repeated dilation."""
    grown = np.zeros_like(region)
    grown[:, seed_y, seed_x] = region[:, seed_y, seed_x]
    while True:
        padded = np.pad(grown, ((0, 0), (1, 1), (1, 1)))
        h, w = grown.shape[1:]
        dilated = np.zeros_like(grown)
        for dy in range(3):
            for dx in range(3):
                dilated |= padded[:, dy:dy + h, dx:dx + w]
        new = dilated & region
        if (new == grown).all():
            return grown
        grown = new


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise ValueError(f"mclc: expected an image of shape (H, W) or (1, H, W), got {image.shape}")
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise ValueError(f"mclc: expected a real-valued image, got dtype {image.dtype}")
    return image.astype(np.float64)


def _check_points(points, shape) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"mclc: points must have shape (n, 2) as (x, y), got {points.shape}")
    h, w = shape
    bad = ~np.isfinite(points).all(1) | (points[:, 0] < 0) | (points[:, 0] > w) | (points[:, 1] < 0) | \
        (points[:, 1] > h)
    if bad.any():
        raise ValueError(f"mclc: point {points[bad][0].tolist()} lies outside the {w} x {h} (W x H) image")
    return points


def mclc_probability(image, point, window: int = 21, runs: int = 50, n_segments: int = 9,
                     compactness: float = 30.0, noise_amount: float = 0.05, normalize: bool = True,
                     iterations: int = 10, rng: np.random.Generator | None = None):
    """Target probability map of one point: (probability (h, w) float64 in [0, 1], (y0, x0) of the crop)."""
    image = _check_image(image)
    x, y = _check_points(np.asarray(point).reshape(1, 2), image.shape)[0]
    if window < 3:
        raise ValueError(f"mclc: window must be >= 3 pixels, got {window}")
    if runs < 1 or n_segments < 2:
        raise ValueError(f"mclc: runs must be >= 1 and n_segments >= 2, got runs={runs}, "
                         f"n_segments={n_segments}")
    if not 0.0 <= noise_amount < 1.0:
        raise ValueError(f"mclc: noise_amount must be in [0, 1), got {noise_amount}")
    rng = rng if rng is not None else np.random.default_rng(0)
    H, W = image.shape
    py, px = min(int(math.floor(y)), H - 1), min(int(math.floor(x)), W - 1)
    half = window // 2
    y0, y1 = max(0, py - half), min(H, py - half + window)
    x0, x1 = max(0, px - half), min(W, px - half + window)
    crop = image[y0:y1, x0:x1]
    if normalize:
        lo, hi = np.nanmin(crop), np.nanmax(crop)
        crop = (crop - lo) / (hi - lo) if hi > lo else np.zeros_like(crop)
    crop = np.nan_to_num(crop, nan=0.0)
    h, w = crop.shape
    crops = np.repeat(crop[None], runs, 0)
    salt = rng.random(crops.shape) < noise_amount
    crops[salt] = crop.max()
    labels = slic_labels(crops, n_segments, compactness, iterations)        # (runs, h, w)
    ly, lx = py - y0, px - x0
    same = labels == labels[:, ly, lx][:, None, None]
    votes = _connected_from(ly, lx, same)
    return votes.mean(0), (y0, x0)


def mclc_pseudo_masks(image, points, window: int = 21, runs: int = 50, n_segments: int = 9,
                      compactness: float = 30.0, noise_amount: float = 0.05, threshold: float = 0.5,
                      normalize: bool = True, iterations: int = 10, seed: int = 0) -> np.ndarray:
    """Pseudo-mask (H, W) uint8 (1 = target) of an image (H, W) from its point labels (n, 2) as (x, y).

    The union over points of {MCLC target probability >= threshold} (module docstring); the point's
    own pixel is always set. No points give an all-zero mask."""
    image = _check_image(image)
    points = _check_points(points, image.shape)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"mclc: threshold must be in (0, 1], got {threshold}")
    H, W = image.shape
    mask = np.zeros((H, W), np.uint8)
    rng = np.random.default_rng(seed)
    for x, y in points:
        prob, (y0, x0) = mclc_probability(image, (x, y), window, runs, n_segments, compactness, noise_amount,
                                          normalize, iterations, rng)
        h, w = prob.shape
        mask[y0:y0 + h, x0:x0 + w] |= (prob >= threshold).astype(np.uint8)
        mask[min(int(math.floor(y)), H - 1), min(int(math.floor(x)), W - 1)] = 1
    return mask
