"""models/detection/sahi.py against the sahi package: slice boxes (sahi.slicing.get_slice_bboxes), merging
(sahi's NMS / NMM / GREEDYNMM postprocess classes on ObjectPredictions), and sliced inference with a
detector stub composed by hand from sahi's pieces; batching does not change the result."""
import numpy as np
import pytest
from tinyml.models.detection.sahi import get_slice_bboxes, merge_predictions, sliced_predict

sahi_slicing = pytest.importorskip("sahi.slicing")
sahi_combine = pytest.importorskip("sahi.postprocess.combine")
from sahi.prediction import ObjectPrediction  # noqa: E402

POSTPROCESS = {"NMS": sahi_combine.NMSPostprocess, "NMM": sahi_combine.NMMPostprocess,
               "GREEDYNMM": sahi_combine.GreedyNMMPostprocess}


@pytest.mark.parametrize("hw", [(100, 100), (512, 384), (37, 250), (64, 64), (30, 20)])
@pytest.mark.parametrize("slice_hw,overlap", [((64, 64), (0.2, 0.2)), ((40, 50), (0.0, 0.5)),
                                              ((128, 32), (0.25, 0.1))])
def test_slice_bboxes_equal_sahi(hw, slice_hw, overlap):
    ours = get_slice_bboxes(*hw, *slice_hw, *overlap)
    theirs = sahi_slicing.get_slice_bboxes(*hw, slice_height=slice_hw[0], slice_width=slice_hw[1],
                                           overlap_height_ratio=overlap[0], overlap_width_ratio=overlap[1])
    assert ours == theirs


def test_slice_bboxes_errors():
    with pytest.raises(ValueError, match="overlap_width_ratio must be in \\[0, 1\\), got 1.0"):
        get_slice_bboxes(10, 10, 4, 4, 0.2, 1.0)
    with pytest.raises(ValueError, match="slice_width must be a positive integer, got 0"):
        get_slice_bboxes(10, 10, 4, 0)


def clustered_predictions(n, seed):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 200, (max(1, n // 5), 2))
    c = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 4, (n, 2))
    wh = rng.uniform(3, 30, (n, 2))
    boxes = np.clip(np.concatenate([c - wh / 2, c + wh / 2], 1), 0, None)
    scores = np.round(rng.uniform(0.1, 1, n), 2)  # rounded: tied scores
    labels = rng.integers(0, 3, n)
    return boxes, scores, labels


def sahi_merge(boxes, scores, labels, kind, metric, thr, agnostic):
    preds = [ObjectPrediction(bbox=list(b), category_id=int(c), category_name=str(c), score=float(s))
             for b, s, c in zip(boxes, scores, labels)]
    out = POSTPROCESS[kind](match_threshold=thr, match_metric=metric, class_agnostic=agnostic)(preds)
    return (np.array([p.bbox.to_xyxy() for p in out]).reshape(-1, 4), np.array([p.score.value for p in out]),
            np.array([p.category.id for p in out]))


@pytest.mark.parametrize("kind", ["NMS", "NMM", "GREEDYNMM"])
@pytest.mark.parametrize("metric,thr", [("IOU", 0.3), ("IOS", 0.5), ("IOS", 0.9)])
@pytest.mark.parametrize("agnostic", [False, True])
def test_merge_predictions_equal_sahi(kind, metric, thr, agnostic):
    boxes, scores, labels = clustered_predictions(60, 1)
    ours = merge_predictions(boxes, scores, labels, kind, metric, thr, agnostic)
    theirs = sahi_merge(boxes, scores, labels, kind, metric, thr, agnostic)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    assert len(ours[0]) < len(boxes)


def blob_detector(calls):
    """A stub detector: one box per bright pixel run in each row of the crop (score = brightness)."""
    def predict(batch):
        calls.append(len(batch))
        out = []
        for crop in batch:
            ys, xs = np.nonzero(crop > 0.5)
            b = np.stack([xs - 1.0, ys - 1.0, xs + 2.0, ys + 2.0], 1).clip(0, None)
            out.append((b, crop[ys, xs].astype(np.float64), np.zeros(len(xs), np.int64)))
        return out
    return predict


def test_sliced_predict_equals_sahi_composition_and_batching_is_invisible():
    rng = np.random.default_rng(2)
    image = np.zeros((150, 170))
    for y, x in rng.integers(0, 150, (25, 2)):
        image[y, min(x, 169)] = np.round(rng.uniform(0.6, 1.0), 3)
    image[40, 40:43] = 0.8  # a short streak: overlapping boxes that merge
    calls = []
    got = sliced_predict(image, blob_detector(calls), 64, 64, 0.2, 0.2, perform_standard_pred=True,
                         postprocess_type="GREEDYNMM", postprocess_match_metric="IOS",
                         postprocess_match_threshold=0.5, batch_size=4)
    slices = sahi_slicing.get_slice_bboxes(150, 170, slice_height=64, slice_width=64,
                                           overlap_height_ratio=0.2, overlap_width_ratio=0.2)
    assert calls == [4] * (len(slices) // 4) + ([len(slices) % 4] if len(slices) % 4 else []) + [1]
    b, s, lab = [], [], []
    stub = blob_detector([])
    for x1, y1, x2, y2 in slices:  # what sahi does: each slice alone, shifted, then the full image
        (bx, sc, lb), = stub(image[None, y1:y2, x1:x2])
        b.append(bx + [x1, y1, x1, y1]), s.append(sc), lab.append(lb)
    (bx, sc, lb), = stub(image[None])
    b.append(bx), s.append(sc), lab.append(lb)
    want = sahi_merge(np.concatenate(b), np.concatenate(s), np.concatenate(lab), "GREEDYNMM", "IOS", 0.5,
                      False)
    for a, e in zip(got, want):
        np.testing.assert_array_equal(a, e)
    one_by_one = sliced_predict(image, blob_detector([]), 64, 64, 0.2, 0.2, batch_size=1)
    for a, e in zip(got, one_by_one):
        np.testing.assert_array_equal(a, e)
    # every bright pixel ends up inside a merged box
    for y, x in zip(*np.nonzero(image > 0.5)):
        assert np.any((got[0][:, 0] <= x) & (got[0][:, 2] >= x) & (got[0][:, 1] <= y) & (got[0][:, 3] >= y))


def test_sliced_predict_errors():
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\), got \(2, 3, 4, 5\)"):
        sliced_predict(np.zeros((2, 3, 4, 5)), blob_detector([]))
    with pytest.raises(ValueError, match="postprocess_type must be one of"):
        merge_predictions(np.zeros((2, 4)), np.zeros(2), np.zeros(2), "WBF")
