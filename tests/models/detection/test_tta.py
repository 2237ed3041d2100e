"""Test-time augmentation of the detectors (`dense(images, tta)` / `predict(..., tta=)`, letters h, v, t):
the Detector's merge against a reference built from separate forward passes with the anchors permuted by
hand, invariance of the 8-view mean under the flips it averages over, CenterNet's mirror merge on heads
built from exact targets (centres on cell edges and inside cells), its transpose, and the argument checks."""
import numpy as np
import pytest
from tinyml.models.detection import CenterNet, Detector
from tinyml.models.detection.centernet import _merge_mirror, draw_gaussian
from tinyml.models.detection.targets import check_tta

import tinyml


def _detector(seed=0, nc=2):
    tinyml.manual_seed(seed)
    return Detector(num_classes=nc, size="tiny", in_channels=1).eval()


def _image(shape, seed=1):
    return np.random.default_rng(seed).normal(0.5, 0.25, shape).astype(np.float32)


def _level_shapes(model, h, w):
    return [(h // s, w // s) for s in model.strides]


def _perm(shapes, op):
    """Anchor index of the view (h: mirrored along W, t: transposed) for every anchor of the image."""
    out, start, view_start = [], 0, 0
    for h, w in shapes:
        r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        view = r * w + (w - 1 - c) if op == "h" else c * h + r  # the transposed level is (w, h)
        out.append(view_start + view.reshape(-1))
        start += h * w
        view_start += h * w
    return np.concatenate(out)


@pytest.mark.parametrize("op,shape", [("h", (2, 1, 32, 48)), ("t", (1, 1, 48, 32)), ("t", (2, 1, 32, 32))])
def test_detector_single_view_merge_equals_reference(op, shape):
    model = _detector()
    x = _image(shape)
    s0, b0 = model.dense(x)
    view = x[..., ::-1] if op == "h" else x.swapaxes(-1, -2)
    s1, b1 = model.dense(np.ascontiguousarray(view))
    perm = _perm(_level_shapes(model, *shape[2:]), op)
    s1, b1 = s1[:, perm], b1[:, perm]
    w = shape[3]
    b1 = np.stack([w - b1[..., 2], b1[..., 1], w - b1[..., 0], b1[..., 3]], -1) if op == "h" else \
        b1[..., [1, 0, 3, 2]]
    s, b = model.dense(x, tta=op)
    np.testing.assert_allclose(s, (s0 + s1) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, (b0 + b1) / 2, rtol=1e-5, atol=1e-4)
    assert s.dtype == np.float32 and b.dtype == np.float32


def test_detector_eight_views_are_invariant_to_the_flips():
    model = _detector(seed=3)
    x = _image((1, 1, 32, 32), seed=4)
    s, b = model.dense(x, tta="hvt")
    shapes = _level_shapes(model, 32, 32)
    perm = _perm(shapes, "h")
    s_m, b_m = model.dense(np.ascontiguousarray(x[..., ::-1]), tta="hvt")
    b_m = np.stack([32 - b_m[..., 2], b_m[..., 1], 32 - b_m[..., 0], b_m[..., 3]], -1)
    np.testing.assert_allclose(s_m[:, perm], s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b_m[:, perm], b, rtol=1e-5, atol=1e-4)
    s_t, b_t = model.dense(np.ascontiguousarray(x.swapaxes(-1, -2)), tta="hvt")
    perm_t = _perm(shapes, "t")
    np.testing.assert_allclose(s_t[:, perm_t], s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b_t[:, perm_t][..., [1, 0, 3, 2]], b, rtol=1e-5, atol=1e-4)


def test_detector_predict_with_tta_and_without():
    model = _detector()
    x = _image((2, 1, 32, 32))
    plain = model.predict(x, conf_thres=0.0, max_det=20)
    assert all(len(sc) <= 20 for _, sc, _ in plain)
    for tta in ("", "h", "hvt"):
        out = model.predict(x, conf_thres=0.0, max_det=20, tta=tta)
        for boxes, scores, labels in out:
            assert boxes.dtype == np.float32 and scores.dtype == np.float32 and labels.dtype == np.int64
            assert (boxes >= 0).all() and (boxes <= 32).all() and (np.diff(scores) <= 0).all()
    np.testing.assert_array_equal(model.predict(x, 0.0, max_det=20, tta="")[0][0], plain[0][0])


def _exact_heads(centres, sizes, wo, ho):
    """The heads a perfect stride-1 CenterNet would output: a Gaussian (radius 1) at floor(q), the offset
    q - floor(q) and the size there, 0 elsewhere."""
    heat = np.zeros((1, 1, ho, wo), np.float32)
    off = np.zeros((1, 2, ho, wo), np.float32)
    wh = np.zeros((1, 2, ho, wo), np.float32)
    for q, size in zip(centres, sizes):
        qi = np.floor(q).astype(int)
        draw_gaussian(heat[0, 0], qi, 1)
        off[0, :, qi[1], qi[0]] = q - qi
        wh[0, :, qi[1], qi[0]] = size
    return heat, off, wh


@pytest.mark.parametrize("axis", [-1, -2])
def test_centernet_mirror_merge_keeps_peaks_on_cell_edges_and_inside(axis):
    wo = ho = 16
    # centres on a cell edge (an even box at an integer position) and inside a cell (an odd box)
    centres = [np.array([5.0, 4.5]), np.array([10.5, 11.0]), np.array([2.25, 13.75])]
    sizes = [np.array([2.0, 3.0]), np.array([3.0, 2.0]), np.array([1.5, 1.5])]
    k = 0 if axis == -1 else 1
    mirrored = []
    for q in centres:
        m = q.copy()
        m[k] = (wo if k == 0 else ho) - q[k]
        mirrored.append(m)
    heads = _exact_heads(centres, sizes, wo, ho)
    m_heads = [np.flip(a, axis) for a in _exact_heads(mirrored, sizes, wo, ho)]
    heat, off, wh = _merge_mirror(*heads, *m_heads, axis=axis)
    for q, size in zip(centres, sizes):
        qi = np.floor(q).astype(int)
        assert heat[0, 0, qi[1], qi[0]] == pytest.approx(1.0)
        window = heat[0, 0, max(qi[1] - 1, 0):qi[1] + 2, max(qi[0] - 1, 0):qi[0] + 2]
        assert heat[0, 0, qi[1], qi[0]] == window.max()
        np.testing.assert_allclose(off[0, :, qi[1], qi[0]], q - qi, atol=1e-6)
        np.testing.assert_allclose(wh[0, :, qi[1], qi[0]], size, atol=1e-6)
    # without the edge candidate, a plain reversal would put half of the edge-centred peak a cell off
    plain = (heads[0] + m_heads[0]) / 2
    q = centres[0] if axis == -1 else centres[1]
    qi = np.floor(q).astype(int)
    assert plain[0, 0, qi[1], qi[0]] < 0.9


def test_centernet_transpose_view_and_tta_predict():
    tinyml.manual_seed(0)
    model = CenterNet(num_classes=1, size="tiny", in_channels=1, stride=1).eval()
    x = _image((1, 1, 32, 48), seed=2)
    heat, off, wh = model.dense(x, tta="t")
    h_t, o_t, w_t = model.dense(np.ascontiguousarray(x.swapaxes(-1, -2)), tta="t")
    np.testing.assert_allclose(h_t.swapaxes(-1, -2), heat, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(o_t[:, ::-1].swapaxes(-1, -2), off, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w_t[:, ::-1].swapaxes(-1, -2), wh, rtol=1e-5, atol=1e-5)
    h0, _, _ = model.dense(x)
    h1, _, _ = model.dense(np.ascontiguousarray(x.swapaxes(-1, -2)))
    np.testing.assert_allclose(heat, (h0 + h1.swapaxes(-1, -2)) / 2, rtol=1e-5, atol=1e-6)
    for tta in ("", "h", "hvt"):
        (boxes, scores, labels), = model.predict(x, conf_thres=0.0, max_det=10, tta=tta)
        assert boxes.shape == (len(scores), 4) and len(scores) <= 10 and (boxes[:, 2:] <= [48, 32]).all()


@pytest.mark.parametrize("tta", ["", "h", "v", "t", "hv", "vt", "hvt", "thv"])
def test_check_tta_accepts_distinct_letters(tta):
    assert check_tta("x", tta) == tta


@pytest.mark.parametrize("tta", ["x", "hh", "h v", 3, None])
def test_check_tta_refuses_the_rest(tta):
    with pytest.raises(ValueError, match="tta must be a string of distinct letters .* got"):
        check_tta("Detector.dense", tta)
    with pytest.raises(ValueError, match=r"Detector.dense: tta must"):
        _detector().dense(_image((1, 1, 32, 32)), tta=tta)
