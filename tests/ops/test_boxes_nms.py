"""NMS and merging kernels (nms_forward, nmm_forward) on every backend: torchvision.ops.nms semantics
against a brute-force loop written here (torchvision's CPU wheel for this torch does not import its
nms), and sahi's numpy nms / greedy_nmm / nmm on fixtures with ties, duplicates, empty boxes, NaN,
empty input and thresholds 0 and 1. The C++ binding's checks are tested directly."""
import numpy as np
import pytest
from family_devices import backend_device_fixture

import tinyml
import tinyml.ops as O

sahi_numpy = pytest.importorskip("sahi.postprocess._numpy_backend")
sahi_combine = pytest.importorskip("sahi.postprocess.combine")

backend_device = backend_device_fixture()


def fixture_boxes(n, seed, dtype=np.float32, ties=True):
    """Clustered boxes (so that many overlap), a few exact duplicates and tied scores."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 60, (max(1, n // 6), 2))
    c = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 3, (n, 2))
    wh = rng.uniform(2, 20, (n, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1)
    scores = rng.uniform(0, 1, n)
    if ties and n >= 6:
        scores[rng.integers(0, n, n // 3)] = 0.5  # many tied scores
        boxes[1] = boxes[0]  # a duplicate box with ...
        scores[1] = scores[0]  # ... the same score
    return boxes.astype(dtype), scores.astype(dtype)


def brute_nms(boxes, scores, thr):
    """torchvision's CPU nms loop, in Python: stable descending order, suppress when IoU > thr."""
    order = sorted(range(len(boxes)), key=lambda i: -float(scores[i]))
    area = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    removed, keep = set(), []
    for pi, i in enumerate(order):
        if i in removed:
            continue
        keep.append(i)
        for j in order[pi + 1:]:
            w = max(0.0, min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]))
            h = max(0.0, min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]))
            union = area[i] + area[j] - w * h
            if union > 0 and w * h / union > thr:
                removed.add(j)
    return keep


def tensors(boxes, scores, device):
    return tinyml.tensor(boxes, device=device), tinyml.tensor(scores, device=device)


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nms_matches_brute_force(backend_device, thr, dtype):
    boxes, scores = fixture_boxes(60, 1, dtype)
    keep = O.nms(*tensors(boxes, scores, backend_device), thr)
    assert keep.dtype is tinyml.int64 and keep.device.type == backend_device
    assert keep.cpu().numpy().tolist() == brute_nms(boxes.astype(np.float64), scores, thr)


def test_nms_ties_keep_index_order_and_empty_input(backend_device):
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.5, 0.5, 0.9, 0.9], np.float32)
    assert O.nms(*tensors(boxes, scores, backend_device), 0.5).cpu().numpy().tolist() == [2, 0]
    empty = O.nms(tinyml.zeros(0, 4, device=backend_device), tinyml.zeros(0, device=backend_device), 0.5)
    assert tuple(empty.shape) == (0,) and empty.dtype is tinyml.int64


def test_nms_zero_area_and_nan(backend_device):
    # two empty boxes: IoU 0 / 0 = NaN never suppresses; a NaN score sorts first (torch.sort descending)
    boxes = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 5, 5], [0, 0, 5, 5.5], [0, 0, np.nan, 4]],
                     np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, np.nan], np.float32)
    assert O.nms(*tensors(boxes, scores, backend_device), 0.5).cpu().numpy().tolist() == [4, 0, 1, 2]


def test_batched_nms_is_nms_per_category(backend_device):
    boxes, scores = fixture_boxes(50, 2)
    idxs = np.random.default_rng(3).integers(0, 3, 50)
    got = O.batched_nms(*tensors(boxes, scores, backend_device), tinyml.tensor(idxs, device=backend_device),
                        0.4)
    want = []
    for c in range(3):
        sel = np.flatnonzero(idxs == c)
        want += [int(sel[k]) for k in brute_nms(boxes[sel].astype(np.float64), scores[sel], 0.4)]
    want.sort(key=lambda i: (-float(scores[i]), i))  # torchvision: one nms over offset boxes, stable order
    assert got.cpu().numpy().tolist() == want
    none = O.batched_nms(tinyml.zeros(0, 4), tinyml.zeros(0), tinyml.zeros(0, dtype=tinyml.int64), 0.5)
    assert none.shape == (0,)


def predictions(boxes, scores, cats=None):
    cats = np.zeros(len(boxes)) if cats is None else cats
    return np.concatenate([boxes, scores[:, None], cats[:, None]], 1)


@pytest.mark.parametrize("metric", ["IOU", "IOS"])
@pytest.mark.parametrize("thr", [0.0, 0.25, 0.5, 1.0])
def test_sahi_nms_greedy_nmm_nmm_match_sahi(backend_device, metric, thr):
    boxes, scores = fixture_boxes(48, 4)
    boxes[5] = [3, 3, 3, 9]  # zero area: sahi's safe ratio gives 0
    pred = predictions(boxes, scores)
    b, s = tensors(boxes, scores, backend_device)
    assert O.nms_match(b, s, thr, metric).cpu().numpy().tolist() == sahi_numpy.nms_numpy(pred, metric, thr)
    assert O.greedy_nmm(b, s, thr, metric) == sahi_numpy.greedy_nmm_numpy(pred, metric, thr)
    ours, theirs = O.nmm(b, s, thr, metric), sahi_numpy.nmm_numpy(pred, metric, thr)
    assert ours == theirs and list(ours) == list(theirs)  # same keepers, lists and insertion order


@pytest.mark.parametrize("seed", [5, 6])
def test_sahi_batched_merging_matches_sahi(seed):
    boxes, scores = fixture_boxes(40, seed)
    cats = np.random.default_rng(seed).integers(0, 3, 40).astype(np.float64)
    pred = predictions(boxes, scores, cats)
    b, s = tensors(boxes, scores, "cpu")
    assert O.nms_match(b, s, 0.3, "IOS", category_ids=cats).numpy().tolist() == \
        sahi_combine.batched_nms(pred, "IOS", 0.3)
    assert O.greedy_nmm(b, s, 0.3, "IOU", category_ids=cats) == \
        sahi_combine.batched_greedy_nmm(pred, "IOU", 0.3)
    ours, theirs = O.nmm(b, s, 0.3, "IOU", category_ids=cats), sahi_combine.batched_nmm(pred, "IOU", 0.3)
    assert ours == theirs and list(ours) == list(theirs)


def test_merging_empty_input():
    z = tinyml.zeros(0, 4), tinyml.zeros(0)
    assert O.greedy_nmm(*z) == {} and O.nmm(*z) == {} and O.nms_match(*z).shape == (0,)


def test_large_input_cpu_equals_reference():
    """Past one block of the C++ kernel's dense path (64 boxes) and its OpenMP threshold, and the sweep."""
    boxes, scores = fixture_boxes(700, 7, np.float64)
    b, s = tensors(boxes, scores, "cpu")
    for thr in (0.0, 0.2, 0.6):  # 0: the dense path; > 0: the sweep
        with tinyml.backends.force_reference():
            want = O.nms(b, s, thr).numpy()
        assert np.array_equal(O.nms(b, s, thr).numpy(), want)
        assert O.nms_match(b, s, thr, "IOS").numpy().tolist() == \
            sahi_numpy.nms_numpy(predictions(boxes, scores), "IOS", thr)
    b, s = tensors(*fixture_boxes(250, 8, np.float64), "cpu")
    for merge in (O.greedy_nmm, O.nmm):
        with tinyml.backends.force_reference():
            want = merge(b, s, 0.3, "IOU")
        got = merge(b, s, 0.3, "IOU")
        assert got == want and list(got) == list(want)


def test_errors_name_the_values():
    with pytest.raises(ValueError, match=r"expected scores of shape \(3,\) for boxes \(3, 4\), got \(2,\)"):
        O.nms(tinyml.zeros(3, 4), tinyml.zeros(2), 0.5)
    with pytest.raises(ValueError, match=r"expected boxes of shape \(N, 4\), got \(2, 3, 4\)"):
        O.nms(tinyml.zeros(2, 3, 4), tinyml.zeros(2), 0.5)
    with pytest.raises(ValueError, match="match_metric must be 'IOU' or 'IOS', got 'DIOU'"):
        O.greedy_nmm(tinyml.zeros(2, 4), tinyml.zeros(2), 0.5, "DIOU")
    with pytest.raises(ValueError, match=r"expected idxs of shape \(2,\), got \(3,\)"):
        O.batched_nms(tinyml.zeros(2, 4), tinyml.zeros(2), tinyml.zeros(3, dtype=tinyml.int64), 0.5)


def test_cpp_binding_checks_before_touching_memory():
    _C = pytest.importorskip("tinyml._C")
    boxes = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="order must be a permutation of 0..2, got 7 at position 1"):
        _C.nms_forward_f32(boxes, np.array([0, 7, 1]), 0.5, "iou", False)
    with pytest.raises(ValueError, match=r"order has shape \(2,\) but boxes have 3 rows"):
        _C.nms_forward_f32(boxes, np.array([0, 1]), 0.5, "iou", False)
    with pytest.raises(ValueError, match=r"expected boxes of shape \(N, 4\), got \(3, 3\)"):
        _C.nms_forward_f32(np.zeros((3, 3), np.float32), np.arange(3), 0.5, "iou", False)
    with pytest.raises(TypeError, match="expected dtype float32, got float64"):
        _C.nms_forward_f32(boxes.astype(np.float64), np.arange(3), 0.5, "iou", False)
    with pytest.raises(ValueError, match="metric must be 'iou' or 'ios', got 'giou'"):
        _C.nmm_forward_f32(boxes, np.zeros(3, np.float32), np.arange(3), 0.5, "giou", True)
    with pytest.raises(ValueError, match=r"scores have shape \(2,\) but boxes have 3 rows"):
        _C.nmm_forward_f32(boxes, np.zeros(2, np.float32), np.arange(3), 0.5, "iou", True)


@pytest.mark.parametrize("seed", range(4))
def test_cpu_kernel_equals_reference_on_odd_boxes(seed):
    """Inverted, empty, NaN and duplicated boxes through the C++ sweep and dense paths."""
    boxes, scores = fixture_boxes(120, seed, np.float32)
    rng = np.random.default_rng(seed)
    boxes[rng.integers(0, 120, 6), 0] = np.nan
    inv = rng.integers(0, 120, 6)
    boxes[inv, 0], boxes[inv, 2] = boxes[inv, 2], boxes[inv, 0].copy()  # x2 < x1
    boxes[rng.integers(0, 120, 6), 3] = boxes[rng.integers(0, 120, 6), 1]  # zero height (some inverted)
    boxes[10:14] = boxes[20]
    _C = pytest.importorskip("tinyml._C")
    order = np.argsort(-scores, kind="stable")
    from tinyml.backends.reference.boxes import nmm_forward, nms_forward
    for thr in (-0.5, 0.0, 0.1, 0.5, 1.0):
        for metric in ("iou", "ios"):
            for inclusive in (False, True):
                want = nms_forward(boxes, order, thr, metric, inclusive)
                assert np.array_equal(_C.nms_forward_f32(boxes, order, thr, metric, inclusive), want)
            for greedy in (False, True):
                got = _C.nmm_forward_f32(boxes, scores, order, thr, metric, greedy)
                for a, b in zip(got, nmm_forward(boxes, scores, order, thr, metric, greedy)):
                    assert np.array_equal(a, b)


@pytest.mark.parametrize("seed", [1, 2])
def test_cpu_sweep_window_equals_reference(seed):
    """The sweep's tightened IoU window (csrc/boxes_nms.h) on boxes_nms_cases.py's sets: IoU ties equal to
    t, nested boxes on the window's edge, far coordinates, subnormal areas, huge boxes, NaN / inf."""
    _C = pytest.importorskip("tinyml._C")
    from boxes_nms_cases import nms_cases

    from tinyml.backends.reference.boxes import nmm_forward, nms_forward
    for name, boxes, scores, thresholds in nms_cases(seed):
        sfx = "f32" if boxes.dtype == np.float32 else "f64"
        order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores)).astype(np.int64)
        for thr in thresholds:
            for metric in ("iou", "ios"):
                for inclusive in (False, True):
                    got = getattr(_C, f"nms_forward_{sfx}")(boxes, order, thr, metric, inclusive)
                    want = nms_forward(boxes, order, thr, metric, inclusive)
                    assert np.array_equal(got, want), f"{name} {sfx} t={thr} {metric} inclusive={inclusive}"
            got = getattr(_C, f"nmm_forward_{sfx}")(boxes, scores, order, thr, "iou", True)
            for a, b in zip(got, nmm_forward(boxes, scores, order, thr, "iou", True)):
                assert np.array_equal(a, b), f"{name} {sfx} greedy nmm t={thr}"


@pytest.mark.parametrize("metric", ["IOU", "IOS"])
def test_nms_match_equals_sahi_on_dense_random_boxes(metric):
    """bench/nms_cpu.py's kind of boxes (2000 in a 300 x 300 image): sahi's sparse search and the sweep."""
    rng = np.random.default_rng(9)
    c, wh = rng.uniform(0, 300, (2000, 2)), rng.uniform(10, 100, (2000, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 2000).astype(np.float32)
    pred = np.concatenate([boxes, scores[:, None], np.zeros((2000, 1), np.float32)], 1)
    b, s = tensors(boxes, scores, "cpu")
    for thr in (0.3, 0.5, 0.7):
        assert O.nms_match(b, s, thr, metric).numpy().tolist() == sahi_numpy.nms_numpy(pred, metric, thr)
        assert O.greedy_nmm(b, s, thr, metric) == sahi_numpy.greedy_nmm_numpy(pred, metric, thr)
