"""Training on crops (`tinyml detect train --crop`): fit_scale brings images to the scale letterbox gives
them; random_crop's window is a plain window of the image whose boxes are kept whole, clipped (>= 10 % of
the area visible, ultralytics' area_thr) or dropped; AugmentedDataset(fit=, crop=) yields crop-sized
samples at the evaluation scale; the job's flags are checked, recorded and trained with."""
import argparse
import json
import os

import numpy as np
import pytest
from tinyml.train.checkpoint import load_checkpoint
from tinyml.train.cli import main
from tinyml.train.detect.augment import AugmentedDataset, fit_scale, letterbox, random_crop
from tinyml.train.detect.run import DetectRun
from tinyml.train.detect.synthetic import SyntheticIR
from tinyml.train.runs import UsageError


def _find_window(image, crop):
    """The (x0, y0) where crop equals image[:, y0:y0 + h, x0:x0 + w] (unique for noisy images)."""
    _, h, w = crop.shape
    hits = [(x0, y0) for y0 in range(image.shape[1] - h + 1) for x0 in range(image.shape[2] - w + 1)
            if np.array_equal(image[:, y0:y0 + h, x0:x0 + w], crop)]
    assert len(hits) == 1, hits
    return hits[0]


def _expected_boxes(boxes, x0, y0, size, min_visible=0.1):
    """Boxes moved into the window, clipped to it; kept when >= min_visible of the area stays inside."""
    moved = boxes.astype(np.float64) - [x0, y0, x0, y0]
    clipped = np.clip(moved, 0, size)
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    wh = clipped[:, 2:] - clipped[:, :2]
    keep = (wh > 0).all(1) & (wh[:, 0] * wh[:, 1] >= min_visible * area - 1e-9)
    return clipped[keep], keep


def test_random_crop_is_a_window_with_boxes_kept_clipped_or_dropped():
    ds = SyntheticIR(12, size=64, seed=5, empty_fraction=0.0, max_targets=6)
    rng = np.random.default_rng(1)
    cut = 0
    for i in range(len(ds)):
        image, target = ds[i]
        out, t = random_crop(image, target, rng, 32)
        x0, y0 = _find_window(image, out)
        expected, keep = _expected_boxes(target["boxes"], x0, y0, 32)
        np.testing.assert_allclose(t["boxes"], expected, atol=1e-5)
        assert t["labels"].tolist() == target["labels"][keep].tolist()
        assert len(t["boxes"]) >= 1  # a crop keeps at least one target whole
        whole = (expected[:, 2:] - expected[:, :2] == (target["boxes"][keep][:, 2:] -
                                                       target["boxes"][keep][:, :2])).all(1)
        assert whole.any()
        cut += int((~whole).sum())
        np.testing.assert_array_equal(t["mask"], target["mask"][y0:y0 + 32, x0:x0 + 32])
    assert cut > 0  # the seeds above do cut some boxes at the window's edge: the clipping was exercised


def test_a_box_mostly_outside_the_window_is_dropped():
    image = np.random.default_rng(0).random((1, 40, 40), dtype=np.float32)
    # the first box decides the window (x in [0, 20)); the second lies 1 px inside it (5 % visible)
    target = {"boxes": np.array([[2, 2, 6, 6], [19, 2, 39, 22]], np.float32), "labels": np.array([0, 1])}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        out, t = random_crop(image, target, rng, (20, 20))
        x0, y0 = _find_window(image, out)
        expected, keep = _expected_boxes(target["boxes"], x0, y0, 20)
        np.testing.assert_allclose(t["boxes"], expected)
        if x0 == 0:
            assert t["labels"].tolist() == [0]


def test_fit_scale_is_letterboxs_scale_without_padding():
    rng = np.random.default_rng(2)
    image = rng.random((1, 64, 128), dtype=np.float32)
    target = {"boxes": np.array([[10, 20, 18, 24]], np.float32), "labels": np.zeros(1, np.int64)}
    scaled, t = fit_scale(image, target, 64)
    assert scaled.shape == (1, 32, 64)
    np.testing.assert_allclose(t["boxes"], [[5, 10, 9, 12]])
    boxed, tb = letterbox(image, target, 64)  # letterbox = the same pixels, padded to 64 x 64
    top = int(tb["letterbox"][3])
    np.testing.assert_allclose(boxed[:, top:top + 32], scaled, atol=1e-6)
    same, t_same = fit_scale(image, target, 128)  # already at that scale: returned as it is
    assert same is image and t_same is target


def test_augmented_dataset_with_fit_and_crop_yields_crops_at_the_evaluation_scale():
    ds = SyntheticIR(6, size=128, seed=3, empty_fraction=0.0)
    view = AugmentedDataset(ds, 32, seed=0, fit=64, crop=32, hflip=0.0)
    for i in range(len(ds)):
        image, target = view[i]
        assert image.shape == (1, 32, 32)
        scaled, st = fit_scale(*ds[i], 64)
        x0, y0 = _find_window(scaled, image)
        expected, _ = _expected_boxes(st["boxes"], x0, y0, 32)
        np.testing.assert_allclose(target["boxes"], expected, atol=1e-5)
    with pytest.raises(ValueError, match="fit must be a positive integer or None, got 0"):
        AugmentedDataset(ds, 32, fit=0)


def _spec(**kw):
    return DetectRun(**{"out": "/nonexistent/run", **kw})


@pytest.mark.parametrize("kw, fragment", [
    ({"crop": 100}, "--crop 100: must be a multiple of the detector's largest stride 16 and at most "
                    "--img 256"),
    ({"crop": 512}, "--crop 512: must be a multiple"),
    ({"strides": (4, 2)}, "--strides 4,2: expected two or more increasing values from 2, 4, 8, 16, 32"),
    ({"strides": (2, 4, 8, 32), "img": 240, "arch": "yolo"}, "--img 240: must be a multiple of the "
                                                             "detector's largest stride 32"),
    ({"strides": (2, 4, 8), "arch": "centernet"}, "--strides 2,4,8: for --arch yolo"),
    ({"ema_tau": 0.0}, "--ema-tau 0.0: expected a decay in \\(0, 1\\) and tau > 0 steps"),
    ({"reg_max": 2}, "--reg-max 2: expected 3 to 64 bins"),
    ({"heatmap_stride": 8, "arch": "centernet"}, "--heatmap-stride 8: expected 4, 2 or 1"),
    ({"scale_jitter": (1.2, 0.8)}, "--scale-jitter 1.2,0.8: expected 0 < LO <= HI"),
])
def test_run_settings_are_checked(kw, fragment):
    with pytest.raises(UsageError, match=fragment):
        _spec(**kw).check()


def test_default_crop_is_half_the_image_size_for_the_detector():
    """(CenterNet at heatmap stride 1, the default, trains on a quarter: test_detect_defaults.py.)"""
    assert _spec(arch="yolo").train_crop == 128  # img 256
    assert _spec(arch="yolo", img=64).train_crop == 32
    assert _spec(arch="yolo", img=80).train_crop == 32  # 40 rounded down to a multiple of the stride 16
    assert _spec(arch="yolo", img=16).train_crop is None  # too small to halve: whole images
    assert _spec(arch="yolo", img=96, strides=(4, 8, 16, 32)).train_crop == 32
    assert _spec(crop=0).train_crop is None and _spec(crop=64).train_crop == 64
    assert _spec(heatmap_stride=4).train_crop == 128 and _spec().train_crop == 64


def test_centernet_heatmap_stride():
    from tinyml.train.detect.run import build_detector

    model = build_detector(1, 1, _spec(arch="centernet", heatmap_stride=2))
    assert model.config["stride"] == 2


def test_command_defaults_are_detect_runs():
    from dataclasses import fields

    from tinyml.train.commands.detect import TRAIN_DEFAULTS

    defaults = {f.name: f.default for f in fields(DetectRun)}
    assert {k: defaults[k] for k in TRAIN_DEFAULTS} == TRAIN_DEFAULTS
    from tinyml.train.commands.detect import _scale_range

    assert _scale_range("off") is False and _scale_range("0.5,2") == (0.5, 2.0)
    for bad in ("1", "2,1", "0,1", "a,b"):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            _scale_range(bad)


def test_train_with_crop_strides_and_ema_flags(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["detect", "train", "--arch", "yolo", "--epochs", "1", "--batch", "8", "--img", "64",
            "--synthetic-train", "8", "--synthetic-val", "2", "--synthetic-size", "64", "--crop", "32",
            "--strides", "4,8,16",
            "--ema-tau", "50", "--reg-max", "8", "--scale-jitter", "0.9,1.1", "--min-candidates", "2",
            "--out", out]
    assert main(argv) == 0
    assert "at 64 px (trained on 32 px crops)" in capsys.readouterr().out
    with open(os.path.join(out, "detect.json")) as f:
        record = json.load(f)
    assert record["crop"] == 32 and record["strides"] == [4, 8, 16] and record["ema_tau"] == 50
    assert record["reg_max"] == 8 and record["scale_jitter"] == [0.9, 1.1] and record["min_candidates"] == 2
    config = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))["extra"]["detector"]
    assert config["reg_max"] == 8 and config["min_candidates"] == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["detect", "train", "--resume", "--crop", "48", "--out", out])
    assert "--crop 48 (the run has 32)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["detect", "train", "--strides", "8,4", "--out", str(tmp_path / "x")])
    assert "expected two or more increasing values from 2,4,8,16,32, got '8,4'" in capsys.readouterr().err
