"""Training augmentation for detection samples, seeded through numpy Generators.

    scale_jitter(image, target, rng, scale=(0.5, 1.5))    resize by s ~ U(scale), random placement, same size
    random_crop(image, target, rng, size)                  a crop that holds all targets when they fit in it,
                                                           else one random target whole (keep_targets=False:
                                                           a window anywhere, targets or not)
    mosaic(samples, rng, size)                             4 samples at native scale around a random centre
    DetectionAugment(size, hflip=0.5, vflip=0.0, scale=None, crop=None, mosaic=0.0, crop_anywhere=0.0)
                                                           the pipeline: mosaic? -> crop? -> scale? -> flips
                                                           -> letterbox(size)
    AugmentedDataset(dataset, size, train=True, seed=0, fit=None, **augment)
                                                           a dataset view: sample i of epoch e is augmented
                                                           with default_rng([seed, e, i]); eval = letterbox;
                                                           fit: images first scaled as letterbox(fit) does
                                                           (fit_scale), for training on crops of them
    letterbox, unletterbox_boxes, hflip, vflip             re-exported from transforms.py

Boxes that leave the image are clipped, and dropped when less than min_visible (0.1, ultralytics'
area_thr) of their area stays inside (transforms.filter_boxes). Mosaic, as ultralytics' Mosaic, puts
sample 0 top-left of the centre (xc, yc) with its bottom-right corner there, 1 top-right, 2 bottom-left,
3 bottom-right; unlike ultralytics it keeps every image at its native scale (no resize to the image
size, no 2x canvas) so that 1-2 px targets stay 1-2 px.
"""
from __future__ import annotations

import numpy as np

from .transforms import PER_OBJECT_KEYS, hflip, letterbox, place, unletterbox_boxes, vflip

__all__ = ["scale_jitter", "random_crop", "mosaic", "DetectionAugment", "AugmentedDataset", "fit_scale",
           "letterbox", "unletterbox_boxes", "hflip", "vflip"]


def _check_image(image) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        got = getattr(image, "shape", type(image))
        raise ValueError(f"expected an image (C, H, W) numpy array, got {got}")


def scale_jitter(image: np.ndarray, target: dict, rng: np.random.Generator, scale=(0.5, 1.5),
                 pad_value: float = 114 / 255, min_visible: float = 0.1):
    """Resizes by s ~ U(scale) and places the result at a random offset in a canvas of the input's size
    (a crop when s > 1, padding when s < 1)."""
    _check_image(image)
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"scale_jitter: scale must be (low, high) with 0 < low <= high, got {scale!r}")
    _, h, w = image.shape
    s = rng.uniform(lo, hi)
    new_h, new_w = max(1, int(round(h * s))), max(1, int(round(w * s)))
    dx = int(rng.integers(min(0, w - new_w), max(0, w - new_w) + 1))
    dy = int(rng.integers(min(0, h - new_h), max(0, h - new_h) + 1))
    return place(image, target, new_w / w, new_h / h, dx, dy, h, w, pad_value, min_visible)


def _window_start(lo: float, hi: float, length: int, size: int, rng) -> int | None:
    """A start x0 with [lo, hi] inside [x0, x0 + size) and [x0, x0 + size) inside [0, length), or None."""
    first, last = max(0, int(np.ceil(hi)) - size), min(int(np.floor(lo)), length - size)
    return int(rng.integers(first, last + 1)) if first <= last else None


def random_crop(image: np.ndarray, target: dict, rng: np.random.Generator, size,
                pad_value: float = 114 / 255, min_visible: float = 0.1, keep_targets: bool = True):
    """A (h, w) = size crop (an int for a square): it holds every target when their union fits, else one
    random target whole; with keep_targets=False (or no targets) a window drawn uniformly over the image,
    which may hold none. An image smaller than the crop is padded."""
    _check_image(image)
    ch, cw = (size, size) if np.isscalar(size) else size
    _, h, w = image.shape
    boxes = target["boxes"]
    x0 = y0 = None
    if keep_targets and len(boxes) and ch <= h and cw <= w:
        union = [boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()]
        for box in (union, boxes[rng.integers(len(boxes))]):
            x0 = _window_start(box[0], box[2], w, cw, rng)
            y0 = _window_start(box[1], box[3], h, ch, rng)
            if x0 is not None and y0 is not None:
                break
    if x0 is None or y0 is None:
        x0 = int(rng.integers(min(0, w - cw), max(0, w - cw) + 1))
        y0 = int(rng.integers(min(0, h - ch), max(0, h - ch) + 1))
    return place(image, target, 1.0, 1.0, -x0, -y0, ch, cw, pad_value, min_visible)


def mosaic(samples, rng: np.random.Generator, size: int, pad_value: float = 114 / 255,
           min_visible: float = 0.1):
    """Four (image, target) samples tiled around a random centre of a size x size canvas (native scale)."""
    samples = list(samples)
    if len(samples) != 4:
        raise ValueError(f"mosaic needs 4 samples, got {len(samples)}")
    channels = {s[0].shape[0] for s in samples}
    if len(channels) != 1:
        raise ValueError(f"mosaic: the 4 images have different channel counts {sorted(channels)}")
    xc, yc = (int(v) for v in rng.integers(size // 4, 3 * size // 4 + 1, 2))
    canvas = np.full((channels.pop(), size, size), pad_value, dtype=np.float32)
    with_mask = all("mask" in t for _, t in samples)
    canvas_mask = np.zeros((size, size), dtype=np.uint8) if with_mask else None
    parts = []
    for k, (image, target) in enumerate(samples):
        _check_image(image)
        _, h, w = image.shape
        dx = xc - w if k in (0, 2) else xc
        dy = yc - h if k in (0, 1) else yc
        t = target if with_mask else {key: v for key, v in target.items() if key != "mask"}
        _, t = place(np.asarray(image, np.float32), t, 1.0, 1.0, dx, dy, size, size, pad_value, min_visible,
                     canvas=(canvas, canvas_mask))
        parts.append(t)
    out = {key: value for key, value in samples[0][1].items() if key not in PER_OBJECT_KEYS + ("mask",)}
    for key in PER_OBJECT_KEYS:
        if all(key in t for t in parts):
            out[key] = np.concatenate([t[key] for t in parts])
    if with_mask:
        out["mask"] = canvas_mask
    out["mosaic_image_ids"] = [t.get("image_id") for _, t in samples]
    return canvas, out


class DetectionAugment:
    """mosaic (probability `mosaic`, needs `others`) -> random_crop (crop px) -> scale_jitter (scale
    range) -> horizontal / vertical flips (probabilities) -> letterbox to size.

    crop_anywhere: the probability that a crop is placed uniformly over the image instead of around its
    targets. Crops kept on targets only ever show the clutter near them (on the synthetic set, half of
    the training pixels were never inside any such 64 px crop), while the model is evaluated on whole
    images; a share of free crops trains it on the rest as background. Drawn only when crop_anywhere >
    0, so a pipeline without it keeps its random stream."""

    def __init__(self, size: int, hflip: float = 0.5, vflip: float = 0.0, scale=None, crop=None,
                 mosaic: float = 0.0, min_visible: float = 0.1, pad_value: float = 114 / 255,
                 crop_anywhere: float = 0.0):
        for name, p in (("hflip", hflip), ("vflip", vflip), ("mosaic", mosaic), ("min_visible", min_visible),
                        ("crop_anywhere", crop_anywhere)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"DetectionAugment: {name} must be a probability in [0, 1], got {p!r}")
        if int(size) != size or size < 1:
            raise ValueError(f"DetectionAugment: size must be a positive integer, got {size!r}")
        if scale is not None and not 0 < scale[0] <= scale[1]:
            raise ValueError(f"DetectionAugment: scale must be (low, high) with 0 < low <= high, "
                             f"got {scale!r}")
        self.size, self.hflip, self.vflip, self.scale, self.crop = int(size), hflip, vflip, scale, crop
        self.mosaic, self.min_visible, self.pad_value = mosaic, min_visible, pad_value
        self.crop_anywhere = crop_anywhere

    def __call__(self, sample, rng: np.random.Generator, others=None):
        """Augments (image, target); `others(k)` returns k more random samples for a mosaic."""
        image, target = sample
        _check_image(image)
        if self.mosaic and others is not None and rng.random() < self.mosaic:
            image, target = mosaic([sample, *others(3)], rng, self.size, self.pad_value, self.min_visible)
        if self.crop is not None:
            anywhere = bool(self.crop_anywhere) and rng.random() < self.crop_anywhere
            image, target = random_crop(image, target, rng, self.crop, self.pad_value, self.min_visible,
                                        keep_targets=not anywhere)
        if self.scale is not None:
            image, target = scale_jitter(image, target, rng, self.scale, self.pad_value, self.min_visible)
        if rng.random() < self.hflip:
            image, target = hflip(image, target)
        if rng.random() < self.vflip:
            image, target = vflip(image, target)
        return letterbox(image, target, self.size, self.pad_value)


def fit_scale(image: np.ndarray, target: dict, size: int):
    """Resizes the image (and its target) by r = min(size / H, size / W), the scale letterbox(size) gives
    it, without padding; an image that already fits exactly (r = 1) is returned as it is."""
    _check_image(image)
    _, h, w = image.shape
    r = min(size / h, size / w)
    new_h, new_w = max(1, int(round(h * r))), max(1, int(round(w * r)))
    if (new_h, new_w) == (h, w):
        return image, target
    return place(image, target, r, r, 0, 0, new_h, new_w, min_visible=0.0, min_wh=-1.0)


class AugmentedDataset:
    """A view of `dataset` whose samples are letterboxed to size and, when train, augmented: sample i of
    epoch e draws from default_rng([seed, e, i]) (set_epoch(e) moves on), so a run is reproducible.

    fit (training on crops): every image is first brought to the scale letterbox(fit) would give it
    (fit_scale), so that size x size crops (augment crop=size) of it show objects at the scale the model
    meets when it is evaluated on whole images letterboxed to fit."""

    def __init__(self, dataset, size: int, train: bool = True, seed: int = 0, fit: int | None = None,
                 **augment):
        self.dataset, self.train, self.seed, self.epoch = dataset, train, int(seed), 0
        if fit is not None and (int(fit) != fit or fit < 1):
            raise ValueError(f"AugmentedDataset: fit must be a positive integer or None, got {fit!r}")
        self.fit = None if fit is None else int(fit)
        self.augment = DetectionAugment(size, **augment)
        self.class_names = list(dataset.class_names)
        self.in_channels = getattr(dataset, "in_channels", None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def _load(self, i: int):
        image, target = self.dataset[i]
        return fit_scale(image, target, self.fit) if self.fit is not None else (image, target)

    def __getitem__(self, i: int):
        return self.sample(i, self.epoch)

    def sample(self, i: int, epoch: int):
        """Sample i as epoch `epoch` draws it (self[i] is sample(i, self.epoch)); reads no state that
        set_epoch changes, so a batch of the next epoch can be built while this one trains."""
        if not self.train:
            image, target = self.dataset[i]
            return letterbox(image, target, self.augment.size, self.augment.pad_value)
        image, target = self._load(i)
        rng = np.random.default_rng([self.seed, int(epoch), int(i) % len(self.dataset)])

        def others(k):
            return [self._load(int(j)) for j in rng.integers(0, len(self.dataset), k)]

        return self.augment((image, target), rng, others)
