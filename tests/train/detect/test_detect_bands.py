"""bench/detect_bands.py's scoring: AP50 per target-size band (the other bands' targets marked crowd), on
a hand-made image whose 1 px and 3 px targets are found exactly and whose 5 px and 8 px targets are
missed, so every band's AP50 is known by hand (COCO's 101-point interpolation)."""
import numpy as np
import pytest
from helpers import load_script
from tinyml.train.detect.evaluate import ground_truth


@pytest.fixture(scope="module")
def bands():
    return load_script("bench/detect_bands.py", "bench_detect_bands")


def _gt():
    boxes = np.array([[10, 10, 11, 11], [30, 30, 33, 33], [50, 50, 55, 55], [80, 80, 88, 88]], np.float32)
    target = {"image_id": 1, "orig_size": (128, 128), "boxes": boxes, "labels": np.zeros(4, np.int64)}
    return ground_truth([target], [1], ["target"])


def _found(*boxes):
    return [{"image_id": 1, "category_id": 1, "score": 0.9 - 0.1 * i, "bbox": [x1, y1, x2 - x1, y2 - y1]}
            for i, (x1, y1, x2, y2) in enumerate(boxes)]


def test_only_sizes_marks_the_other_bands_crowd(bands):
    gt = _gt()
    marked = bands.only_sizes(gt, 3, 4)
    assert [a["iscrowd"] for a in marked["annotations"]] == [1, 0, 1, 1]
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 0, 0, 0]  # the input is left as it was


def test_band_scores_by_hand(bands):
    row = bands.band_scores(_found([10, 10, 11, 11], [30, 30, 33, 33]), _gt())
    assert row["1-2"] == pytest.approx(1.0) and row["3-4"] == pytest.approx(1.0)
    assert row["5-6"] == 0.0 and row["7-9"] == 0.0
    assert row["AP50"] == pytest.approx(51 / 101)  # recall 2 / 4 at precision 1
    assert row["AP50<8px"] == pytest.approx(67 / 101)  # recall 2 / 3 (the 8 px target ignored)
    assert row["targets"] == {"1-2": 1, "3-4": 1, "5-6": 1, "7-9": 1}
    shifted = bands.band_scores(_found([10.5, 10, 11.5, 11]), _gt())  # IoU 1/3 with the 1 px box: a miss
    assert shifted["1-2"] == 0.0


def test_localization_counts_found_boxed_and_width(bands):
    target = {"boxes": np.array([[10, 10, 11, 11], [30, 30, 32, 32], [50, 50, 53, 53]], np.float32)}
    # the 1 px target found by a 2 px box (IoU 0.25), the 2 px one boxed exactly, the 3 px one only at 0.01
    boxes = np.array([[9.5, 9.5, 11.5, 11.5], [30, 30, 32, 32], [50, 50, 53, 53]], np.float32)
    scores = np.array([0.9, 0.8, 0.01], np.float32)
    out = bands.localization([(target, (boxes, scores, np.zeros(3, np.int64)))])
    assert out["1"] == {"targets": 1, "found": 1.0, "boxed": 0.0, "width": 2.0}
    assert out["2"] == {"targets": 1, "found": 1.0, "boxed": 1.0, "width": 2.0}
    assert out["3-4"]["found"] == 0.0 and out["3-4"]["boxed"] == 0.0 and np.isnan(out["3-4"]["width"])


def test_main_scores_the_ema_and_the_trained_weights(bands, tmp_path, monkeypatch, capsys):
    """--weights ema,trained: one row per weight set, from the same checkpoint, labelled RUN[trained]."""
    import json

    from tinyml.train.detect.run import DetectRun, train_detector

    run = tmp_path / "run"
    train_detector(DetectRun(out=str(run), epochs=1, batch=8, img=64, synthetic_train=8, synthetic_val=2,
                             synthetic_size=64, progress=False, ema_tau=3.0), log=lambda *a: None)
    saved = tmp_path / "rows.json"
    monkeypatch.setattr("sys.argv", ["detect_bands.py", str(run), "--data", str(run / "data"),
                                     "--weights", "ema,trained", "--save-json", str(saved)])
    bands.main()
    out = capsys.readouterr().out
    assert "run[trained]" in out
    rows = json.loads(saved.read_text())
    assert [r["weights"] for r in rows] == ["ema", "trained"]
    assert all(0.0 <= r["AP50"] <= 1.0 or r["AP50"] == -1 for r in rows)
