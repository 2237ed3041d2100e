"""What the COCO and YOLO datasets share: image loading, channel conversion, error bookkeeping.

    load_image(path, channels=None) -> ((C, H, W) float32 in [0, 1], converted: bool)
    DetectionDataset                   the base of CocoDetection and YoloDetection (data.py, yolo.py)

Error policy (issue #13, "Errors"), the same in both formats. Every image's header is read while the
dataset is built (not its pixels: ~0.1 ms an image), so bad files show up then, not mid-epoch.
    missing or undecodable image, an image whose size differs from its annotation file's, malformed
    annotation, unknown class id, a box wholly outside its image
                      one file's problem: with on_error="raise" (the default) a ValueError or
                      FileNotFoundError naming the file (and line or annotation id) is raised while the
                      dataset is built; with on_error="skip" the image is left out, (file, reason) is appended
                      to dataset.skipped, and one warning gives the count, so a 10k-image set is not stopped
                      by one bad label file and the bad file is not lost silently either
    a box partly outside its image
                      clipped to the image, (file, where) appended to dataset.clipped, one warning: labelling
                      tools often overshoot the border by a pixel, and the object is still there
    a box of zero width or height
                      dropped, (file, where) appended to dataset.dropped (torchvision's detection references
                      and ultralytics' COCO converter drop them too)
    an image whose channel count differs from the dataset's
                      converted (gray -> RGB by repetition, RGB -> gray by Pillow's ITU-R 601 luma
                      L = 0.299 R + 0.587 G + 0.114 B), its file appended to dataset.converted, one warning
    an empty label file, an image with no annotations
                      valid: a background image with no targets

The dataset's channel count is `channels` when given, else that of the first image.

`dataset.cache_images(max_bytes)` keeps decoded images in memory (ultralytics' `cache=ram`): the first
read of an image decodes its file and keeps the float32 array while the cache holds under max_bytes; later
reads return a copy of it (the augmentations write into what they get), so the pixels are the same with or
without the cache. `tinyml detect train` caches its training images up to 1 GiB: decoding the PNG of every
sample again was a third of the data pipeline's CPU time on the synthetic set.

`dataset.masks = False` leaves the annotations' masks out of the targets (boxes, labels and points stay):
a box or heatmap detector does not read them, and decoding an RLE or rasterising a polygon per sample,
then cropping the mask along with the image, was another quarter of that time. `tinyml detect train` turns
them off for its training set; the validation set keeps them (the COCO area of an object is its mask's).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

__all__ = ["load_image", "DetectionDataset", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class BadFile(Exception):
    """One file's problem; the dataset raises it (as `kind`) or records it, by on_error."""

    def __init__(self, message: str, kind: type = ValueError):
        super().__init__(message)
        self.kind = kind


def probe_image(path: str) -> tuple[int, int, int]:
    """(height, width, channels) of the image at `path` from its header (cheap: pixels are not decoded);
    BadFile when it is missing or Pillow cannot identify it."""
    from PIL import Image, UnidentifiedImageError  # Pillow: loaded only when images are read

    if not os.path.isfile(path):
        raise BadFile(f"image {path} does not exist", FileNotFoundError)
    try:
        with Image.open(path) as pil:
            return pil.height, pil.width, 1 if pil.mode in _GRAY_MODES else 3
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise BadFile(f"image {path} cannot be decoded by Pillow: {e}") from None


def load_image(path: str, channels: int | None = None) -> tuple[np.ndarray, bool]:
    """((C, H, W) float32 in [0, 1], converted): 8-bit images / 255, 16-bit / 65535, float TIFF as is;
    converted says the image was changed to `channels` (1 or 3) from its own channel count."""
    from PIL import Image, UnidentifiedImageError  # Pillow: loaded only when images are read

    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as pil:
            pil.load()
            own = 1 if pil.mode in _GRAY_MODES else 3
            if pil.mode.startswith("I"):
                x = np.asarray(pil, dtype=np.float32) / np.float32(65535.0)
            elif pil.mode == "F":
                x = np.asarray(pil, dtype=np.float32)
            else:
                x = np.asarray(pil.convert("L" if own == 1 else "RGB"), dtype=np.float32) / np.float32(255.0)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"image {path} cannot be decoded by Pillow: {e}") from None
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    target = own if channels is None else channels
    if target == own:
        return np.ascontiguousarray(x), False
    if target == 3:
        return np.repeat(x, 3, axis=0), True
    luma = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)     # Pillow's convert("L") weights
    return np.tensordot(luma, x, axes=1)[None].astype(np.float32), True


class DetectionDataset:
    """Records of images and their targets; subclasses fill self.records in __init__ (see _add)."""

    format_name = "detection"

    def __init__(self, root: str, split: str, on_error: str = "raise", channels: int | None = None):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be None (the first image's), 1 or 3, got {channels!r}")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"dataset folder {root} does not exist")
        self.root, self.split, self.on_error, self.channels = root, split, on_error, channels
        self.records: list[dict] = []
        self.class_names: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.clipped: list[tuple[str, str]] = []
        self.dropped: list[tuple[str, str]] = []
        self.converted: list[str] = []
        self._warned_conversion = False
        self._cache: dict[int, np.ndarray] | None = None  # cache_images(): index -> decoded image
        self._cache_room = 0
        self.masks = True  # False: targets leave out the annotations' masks (see the module docstring)

    def cache_images(self, max_bytes: int) -> None:
        """Keep decoded images in memory from now on, up to max_bytes of float32 pixels in all (the first
        images read fill it; the rest are decoded on every read, as without a cache)."""
        if max_bytes < 0:
            raise ValueError(f"cache_images: max_bytes must be >= 0, got {max_bytes}")
        self._cache, self._cache_room = {}, int(max_bytes)

    # -- building ---------------------------------------------------------------------------------------
    def _handle(self, path: str, error: BadFile) -> None:
        if self.on_error == "raise":
            raise error.kind(str(error)) from None
        self.skipped.append((path, str(error)))

    def _check_box(self, path: str, where: str, box: list[float], width: float, height: float):
        """The box clipped to [0, width] x [0, height], or None when it has no area (dropped).
        Raises BadFile for non-finite numbers or a box with no overlap with the image."""
        x1, y1, x2, y2 = box
        if not all(np.isfinite(box)):
            raise BadFile(f"{path}: {where}: box {box} has a non-finite coordinate")
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            self.dropped.append((path, where))
            return None
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            raise BadFile(f"{path}: {where}: box [x1, y1, x2, y2] = {[round(v, 4) for v in box]} lies wholly "
                          f"outside the image (width {width}, height {height})")
        clipped = [min(max(x1, 0.0), width), min(max(y1, 0.0), height),
                   min(max(x2, 0.0), width), min(max(y2, 0.0), height)]
        if clipped != [x1, y1, x2, y2]:
            self.clipped.append((path, where))
        return clipped

    def _finish(self, total: int) -> None:
        """Fixes the channel count and warns once for each kind of repaired or skipped input."""
        name = f"{type(self).__name__}({self.root!r}, {self.split!r})"
        if self.skipped:
            warnings.warn(f"{name}: skipped {len(self.skipped)} of {total} images (on_error='skip'); the "
                          f"first: {self.skipped[0][1]}; all are listed in dataset.skipped", stacklevel=3)
        if self.clipped:
            warnings.warn(f"{name}: clipped {len(self.clipped)} boxes that crossed the image border; the "
                          f"first: {self.clipped[0][0]}: {self.clipped[0][1]}; see dataset.clipped",
                          stacklevel=3)
        if self.dropped:
            warnings.warn(f"{name}: dropped {len(self.dropped)} boxes of zero width or height; the first: "
                          f"{self.dropped[0][0]}: {self.dropped[0][1]}; see dataset.dropped", stacklevel=3)
        if self.channels is None and self.records:
            self.channels = self.records[0]["channels"]
        self.in_channels = self.channels

    # -- reading ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __getitem__(self, i: int):
        if not -len(self.records) <= i < len(self.records):
            raise IndexError(f"{type(self).__name__} index {i} out of range for {len(self.records)} images")
        i %= len(self.records)
        record = self.records[i]
        cached = self._cache.get(i) if self._cache is not None else None
        if cached is not None:
            image = cached.copy()
            return image, self._target(record, *image.shape[1:])
        image, converted = load_image(record["path"], self.channels)
        if self._cache is not None and image.nbytes <= self._cache_room:
            self._cache[i], self._cache_room = image.copy(), self._cache_room - image.nbytes
        if converted:
            self.converted.append(record["path"])
            if not self._warned_conversion:
                self._warned_conversion = True
                warnings.warn(f"{record['path']} has a different channel count than the dataset's "
                              f"{self.channels}: converted (see dataset.converted)", stacklevel=2)
        h, w = image.shape[1:]
        return image, self._target(record, h, w)               # _target: the subclass's, per format
