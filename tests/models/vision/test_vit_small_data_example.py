"""examples/vit_small_data: the --quick run end to end (both variants, both datasets, results.json), the
lfw_subset split and the augmentation."""
import json

import numpy as np
import pytest
from helpers import load_script


def _example():
    return load_script("examples/vit_small_data/vit_small_data.py", "vit_small_data_example")


def test_quick_run_writes_results_for_both_variants(tmp_path):
    example = _example()
    results = example.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["tasks"].keys() == results["tasks"].keys()
    expected = {"digits", "lfw_subset"} if example.load_lfw_task() is not None else {"digits"}
    assert set(saved["tasks"]) == expected
    for entry in saved["tasks"].values():
        for variant in ("ViT", "ViT+SPT+LSA"):
            run = entry[variant]["runs"][0]
            assert 0.0 <= run["test_accuracy"] <= 1.0 and np.isfinite(run["final_loss"])
            assert entry[variant]["mean_test_accuracy"] == run["test_accuracy"]
        # SPT adds a LayerNorm and a 5x wider patch projection, LSA a temperature per block.
        assert entry["ViT+SPT+LSA"]["runs"][0]["parameters"] > entry["ViT"]["runs"][0]["parameters"]


def test_lfw_split_is_stratified_and_disjoint():
    pytest.importorskip("skimage")
    task = _example().load_lfw_task()
    assert task["x_train"].shape == (150, 1, 25, 25) and task["x_test"].shape == (50, 1, 25, 25)
    assert task["y_train"].sum() == 75 and task["y_test"].sum() == 25
    train = {a.tobytes() for a in task["x_train"]}
    assert not any(a.tobytes() in train for a in task["x_test"])


def test_augment_translates_and_flips():
    example = _example()
    batch = np.arange(2 * 1 * 5 * 5, dtype=np.float32).reshape(2, 1, 5, 5) + 1
    out = example.augment(batch, np.random.default_rng(0), shift=1, flip=False)
    for a, b in zip(out, batch):
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if np.array_equal(np.roll(b, (dy, dx), (1, 2))[:, 1:4, 1:4], a[:, 1:4, 1:4])]
        assert matches, "each image is its original shifted by at most one pixel"
    flipped = example.augment(batch, np.random.default_rng(1), shift=0, flip=True)
    for a, b in zip(flipped, batch):
        assert np.array_equal(a, b) or np.array_equal(a, b[:, :, ::-1])
