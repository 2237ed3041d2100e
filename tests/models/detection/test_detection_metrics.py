"""models/detection/metrics.py: COCO AP/AR equal to pycocotools' COCOeval on random predictions (to 1e-6;
they come out equal to the last bit), and the infrared Pd/Fa/IoU/nIoU on hand-made masks."""
import contextlib
import io
import json

import numpy as np
import pytest
from tinyml.models.detection.metrics import COCO_STAT_NAMES, coco_evaluate, irstd_metrics, label_components

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def random_coco(seed, n_images=6, n_cats=3):
    """Ground truth with small / medium / large boxes, a crowd box, an image without annotations; detections
    near the ground truth and at random, with tied scores and one image past 100 detections."""
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "width": 640, "height": 480, "file_name": f"{i}.png"} for i in range(n_images)]
    cats = [{"id": c + 1, "name": f"c{c}"} for c in range(n_cats)]
    anns, dets = [], []
    for im in images[:-1]:
        for _ in range(rng.integers(1, 9)):
            side = rng.choice([rng.uniform(3, 30), rng.uniform(33, 95), rng.uniform(100, 200)])
            w, h = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cat = int(rng.integers(1, n_cats + 1))
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": cat, "bbox": [x, y, w, h],
                         "area": w * h * rng.uniform(0.7, 1.0), "iscrowd": int(rng.uniform() < 0.08)})
            for _ in range(rng.integers(0, 3)):
                j = rng.normal(0, 0.1 * side, 4)
                dets.append({"image_id": im["id"], "category_id": cat if rng.uniform() < 0.9 else 1,
                             "bbox": [x + j[0], y + j[1], max(w + j[2], 1.0), max(h + j[3], 1.0)],
                             "score": float(np.round(rng.uniform(), 2))})
    for _ in range(40):
        w, h = rng.uniform(2, 150, 2)
        img, cat = int(rng.integers(1, n_images + 1)), int(rng.integers(1, n_cats + 1))
        box = [rng.uniform(0, 500), rng.uniform(0, 400), w, h]
        dets.append({"image_id": img, "category_id": cat, "bbox": box, "score": float(rng.uniform())})
    for _ in range(120):  # one image past maxDets = 100
        w, h = rng.uniform(5, 60, 2)
        box = [rng.uniform(0, 500), rng.uniform(0, 400), w, h]
        score = float(np.round(rng.uniform(), 1))
        dets.append({"image_id": 1, "category_id": 1, "bbox": box, "score": score})
    return {"images": images, "annotations": anns, "categories": cats}, dets


def pycocotools_stats(tmp_path, gt, dets):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_evaluate_equals_pycocotools(tmp_path, seed):
    gt, dets = random_coco(seed)
    ev = pycocotools_stats(tmp_path, gt, dets)
    ours = coco_evaluate(gt, dets)
    np.testing.assert_allclose(ours["stats"], ev.stats, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours["precision"], ev.eval["precision"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours["recall"], ev.eval["recall"], rtol=0, atol=1e-6)
    assert [ours[k] for k in COCO_STAT_NAMES] == list(ours["stats"])
    assert 0 < ours["AP50"] <= 1


def test_coco_evaluate_reads_files_and_handles_no_detections(tmp_path):
    gt, dets = random_coco(3)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    assert np.array_equal(coco_evaluate(tmp_path / "gt.json", tmp_path / "dt.json")["stats"],
                          coco_evaluate(gt, dets)["stats"])
    none = coco_evaluate(gt, [])
    assert np.all(none["stats"][none["stats"] > -1] == 0)
    with pytest.raises(ValueError, match=r"image ids \[99\]"):
        coco_evaluate(gt, [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])


def test_label_components_uses_8_connectivity():
    m = np.array([[1, 0, 0, 1],
                  [0, 1, 0, 0],
                  [0, 0, 0, 1],
                  [1, 1, 0, 1]])
    labels, n = label_components(m)
    assert n == 4
    assert labels[0, 0] == labels[1, 1] != labels[0, 3]
    assert labels[2, 3] == labels[3, 3] and labels[3, 0] == labels[3, 1]


def test_irstd_metrics_by_hand():
    g = np.zeros((10, 10), bool)
    g[1:3, 1:3] = True  # target A, centroid (1.5, 1.5)
    g[7, 7] = True  # target B
    p = np.zeros((10, 10), bool)
    p[1:3, 2:4] = True  # hits A (centroid (1.5, 2.5), 1 px away), 2 px overlap
    p[5, 0] = True  # a false alarm of 1 px
    r = irstd_metrics([p, np.zeros((10, 10))], [g, np.zeros((10, 10))])
    assert r["Pd"] == 0.5  # A detected, B missed
    assert r["Fa"] == 1 / 200  # one false pixel of 200
    inter, union = 2, 4 + 1 + 4 + 1 - 2
    assert r["IoU"] == inter / union
    assert r["nIoU"] == pytest.approx((inter / union + 0.0) / 2)  # the empty image counts 0
    far = np.zeros((10, 10), bool)
    far[1:3, 5:7] = True  # centroid 4 px from A: not a detection, all false alarm
    assert irstd_metrics([far], [g])["Pd"] == 0 and irstd_metrics([far], [g])["Fa"] == 4 / 100
    with pytest.raises(ValueError, match=r"mask 0 has prediction shape \(3, 3\) and target shape \(10, 10\)"):
        irstd_metrics([np.zeros((3, 3))], [g])
