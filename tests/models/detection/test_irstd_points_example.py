"""examples/irstd_points: the --quick run end to end (pseudo-mask quality, three trained variants,
results.json), the point-only masks and the crop sampler."""
import json

import numpy as np
from helpers import load_script


def _example():
    return load_script("examples/irstd_points/irstd_points.py", "irstd_points_example")


def test_quick_run_scores_every_variant(tmp_path):
    results = _example().main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["held_out"]) == {"full", "mclc", "point"} == set(results["held_out"])
    for metrics in saved["held_out"].values():
        assert {"IoU", "nIoU", "Pd", "Fa", "train_seconds", "final_loss"} <= set(metrics)
        assert np.isfinite(metrics["final_loss"])
    quality = saved["pseudo_mask_quality"]
    assert saved["train_targets"] > 0
    # Pseudo-masks from MCLC overlap the truth far better than the labelled pixel alone.
    assert quality["mclc"]["IoU"] > quality["point"]["IoU"]


def test_point_masks_and_crops():
    example = _example()
    targets = [{"points": np.array([[3.5, 2.5], [9.9, 7.0]], np.float32)}, {"points": np.zeros((0, 2))}]
    masks = example.point_masks(targets, (8, 10))
    assert masks[0].sum() == 2 and masks[0][2, 3] == 1 and masks[0][7, 9] == 1 and masks[1].sum() == 0
    images = np.zeros((2, 1, 40, 50), np.float32)
    targets = [{"points": np.array([[45.0, 35.0]], np.float32)}, {"points": np.zeros((0, 2), np.float32)}]
    rng = np.random.default_rng(0)
    for i, y0, x0 in example.sample_crops(rng, images, targets, crop=16, batch=64):
        assert 0 <= y0 <= 40 - 16 and 0 <= x0 <= 50 - 16
