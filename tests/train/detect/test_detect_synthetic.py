"""SyntheticIR: determinism per (seed, index), ground truth consistent with the pixels, options, errors."""
from __future__ import annotations

import numpy as np
import pytest
from tinyml.train.detect.synthetic import SyntheticIR, fractal_noise


def _equal_samples(a, b):
    assert np.array_equal(a[0], b[0])
    for key in ("boxes", "labels", "points", "mask", "scr"):
        assert np.array_equal(a[1][key], b[1][key]), key
    assert a[1]["image_id"] == b[1]["image_id"] and a[1]["file_name"] == b[1]["file_name"]


def test_sample_depends_only_on_seed_and_index():
    ds = SyntheticIR(6, size=64, seed=3)
    backwards = [ds[i] for i in reversed(range(6))][::-1]
    for i in range(6):
        _equal_samples(ds[i], backwards[i])
        _equal_samples(ds[i], SyntheticIR(40, size=64, seed=3)[i])      # n_images does not matter
    _equal_samples(SyntheticIR(3, size=64, seed=3, first_index=4)[1], ds[5])
    _equal_samples(ds[-1], ds[5])
    assert not np.array_equal(ds[0][0], SyntheticIR(1, size=64, seed=4)[0][0])
    assert not np.array_equal(ds[0][0], ds[1][0])


def test_ground_truth_matches_the_mask_and_the_pixels():
    ds = SyntheticIR(40, size=96, seed=0, max_targets=4, min_size=1, max_size=9)
    n_targets, n_empty = 0, 0
    for i in range(len(ds)):
        image, t = ds[i]
        assert image.shape == (1, 96, 96) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert t["boxes"].dtype == np.float32 and t["labels"].dtype == np.int64
        assert t["points"].dtype == np.float32 and t["mask"].dtype == np.uint8 and t["mask"].shape == (96, 96)
        assert t["orig_size"] == (96, 96) and t["image_id"] == i + 1 and t["file_name"] == f"{i:06d}.png"
        covered = np.zeros((96, 96), dtype=bool)
        for (x1, y1, x2, y2), (px, py) in zip(t["boxes"].astype(int), t["points"]):
            assert 1 <= x2 - x1 <= 9 and 1 <= y2 - y1 <= 9
            inside = t["mask"][y1:y2, x1:x2]
            ys, xs = np.nonzero(inside)                               # tight: every edge row/column is used
            assert ys.min() == 0 and xs.min() == 0 and ys.max() == y2 - y1 - 1 and xs.max() == x2 - x1 - 1
            assert x1 <= px <= x2 and y1 <= py <= y2
            assert (px, py) == ((x1 + x2) / 2, (y1 + y2) / 2)         # targets are centred in their box
            assert t["mask"][int(py - 0.5 if py % 1 == 0 else py), int(px - 0.5 if px % 1 == 0 else px)] == 1
            covered[y1:y2, x1:x2] = True
        assert not (t["mask"].astype(bool) & ~covered).any()         # no mask pixel outside every box
        assert np.all(t["labels"] == 0)
        assert np.all((t["scr"] > 0) & (t["scr"] <= 12.0 + 1e-6))
        n_targets += len(t["boxes"])
        n_empty += len(t["boxes"]) == 0
    assert n_targets > 40 and 0 < n_empty < 20


def test_targets_are_brighter_than_their_surroundings():
    """With no noise and a cloud background, each target's peak stands above the background by SCR * sigma."""
    ds = SyntheticIR(10, size=64, seed=1, backgrounds=("cloud",), noise_std=(0, 0), stripe_std=(0, 0),
                     scr_range=(5, 5), max_targets=2, empty_fraction=0.0)
    for i in range(len(ds)):
        image, t = ds[i]
        for (x1, y1, x2, y2) in t["boxes"].astype(int):
            ring = np.concatenate([image[0, y1 - 2, x1:x2], image[0, y2 + 1, x1:x2]])
            assert image[0, y1:y2, x1:x2].max() > ring.max()


def test_size_range_classes_and_shape_options():
    ds = SyntheticIR(8, size=(48, 80), seed=2, min_size=1, max_size=1, empty_fraction=0.0)
    for i in range(len(ds)):
        image, t = ds[i]
        assert image.shape == (1, 48, 80)
        assert np.all(t["boxes"][:, 2:] - t["boxes"][:, :2] == 1)
        assert t["mask"].sum() == len(t["boxes"])
    two = SyntheticIR(20, size=64, seed=0, min_size=2, max_size=8, num_classes=2, ellipse_fraction=0.0)
    assert two.class_names == ["small", "large"]
    labels = []
    for i in range(len(two)):
        t = two[i][1]
        widths = t["boxes"][:, 2] - t["boxes"][:, 0]
        assert np.array_equal(t["labels"], (widths > 5).astype(np.int64))
        labels.extend(t["labels"].tolist())
    assert set(labels) == {0, 1}


def test_dead_pixels_are_fixed_by_the_seed():
    a = SyntheticIR(2, size=64, seed=5, dead_pixel_fraction=0.01, empty_fraction=1.0)
    stuck = [np.argwhere((im[0] == 0.0) | (im[0] == 1.0)) for im, _ in (a[0], a[1])]
    assert len(stuck[0]) >= 40 and np.array_equal(stuck[0], stuck[1])


def test_fractal_noise_has_the_requested_spectrum():
    rng = np.random.default_rng(0)
    field = fractal_noise(rng, 128, 128, beta=3.0)
    assert field.min() == 0.0 and field.max() == 1.0
    power = np.abs(np.fft.fft2(field - field.mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128)))
    lo, hi = power[(f > 0.02) & (f < 0.04)].mean(), power[(f > 0.2) & (f < 0.4)].mean()
    assert 2.0 < np.log(lo / hi) / np.log(10.0) < 4.0                # slope ~ beta over a decade


@pytest.mark.parametrize("kwargs, fragment", [
    ({"n_images": -1}, "n_images"), ({"size": 8}, "size"), ({"size": (64, 64, 3)}, "size"),
    ({"min_size": 0}, "min_size=0"), ({"min_size": 5, "max_size": 3}, "max_size=3"),
    ({"max_size": 30, "size": 64}, "too large"), ({"empty_fraction": 1.5}, "empty_fraction"),
    ({"backgrounds": ("sea",)}, "sea"), ({"num_classes": 3}, "num_classes"),
    ({"scr_range": (5, 1)}, "scr_range"),
    ({"noise_std": 0.1}, "noise_std"), ({"seed": -2}, "seed=-2"),
])
def test_bad_arguments_name_the_value(kwargs, fragment):
    args = {"n_images": 2, "size": 64, **kwargs}
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        SyntheticIR(**args)


def test_index_out_of_range():
    with pytest.raises(IndexError, match="index 2 out of range for 2"):
        SyntheticIR(2, size=48)[2]
