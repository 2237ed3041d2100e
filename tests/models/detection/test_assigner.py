"""TaskAlignedAssigner: a case computed by hand, equality with ultralytics' formulas re-implemented in torch
(detect_torch_helpers.tal_assign) on random scenes, the highest-overlap tie break, background images,
and small boxes starved by the inside-the-box candidate test unless nearest_fallback is on."""
import math

import numpy as np
import pytest
from tinyml.models.detection.assigner import TaskAlignedAssigner, ciou_numpy

torch = pytest.importorskip("torch")
from detect_torch_helpers import bbox_iou_ciou, tal_assign  # noqa: E402


def _grid(n, stride):
    ys, xs = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5, indexing="ij")
    return (np.stack([xs, ys], -1).reshape(-1, 2) * stride).astype(np.float32)


def test_hand_computed_case():
    # 4 anchors on a 2 x 2 grid of stride 10 (centres 5 and 15); one gt box [0, 0, 12, 12] contains only
    # the anchor (5, 5); its predicted box equals the gt -> CIoU 1, score 0.64 -> metric 0.64^0.5 = 0.8.
    anchors = _grid(2, 10)
    pd_boxes = np.array([[[0, 0, 12, 12], [10, 0, 20, 10], [0, 10, 10, 20], [10, 10, 20, 20]]], np.float32)
    pd_scores = np.array([[[0.64], [0.9], [0.9], [0.9]]], np.float32)
    gt = np.array([[[0, 0, 12, 12]]], np.float32)
    assigner = TaskAlignedAssigner(topk=10, num_classes=1)
    labels, boxes, scores, fg, idx = assigner(pd_scores, pd_boxes, anchors, np.zeros((1, 1)), gt,
                                              np.ones((1, 1)))
    np.testing.assert_array_equal(fg, [[True, False, False, False]])
    np.testing.assert_array_equal(boxes[0, 0], gt[0, 0])
    # normalised score: t * u* / t* = u* = CIoU of the positive = 1 (up to the eps terms)
    np.testing.assert_allclose(scores[0, :, 0], [1, 0, 0, 0], atol=1e-5)
    # a worse prediction for the positive: u = IoU of [0, 0, 12, 12] and [0, 0, 12, 6] = 0.5 minus the
    # centre term rho^2 / c^2 = 9 / 288 and the aspect term v alpha
    pd_boxes[0, 0] = [0, 0, 12, 6]
    _, _, scores, fg, _ = assigner(pd_scores, pd_boxes, anchors, np.zeros((1, 1)), gt, np.ones((1, 1)))
    v = 4 / math.pi ** 2 * (math.atan(2) - math.atan(1)) ** 2
    u = 0.5 - 9 / 288 - v * v / (v + 0.5)
    assert abs(scores[0, 0, 0] - u) < 1e-4 and fg[0, 0]


def test_ciou_numpy_equals_ultralytics_formula():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 50, (64, 2)), rng.uniform(51, 100, (64, 2))], 1).astype(np.float32)
    b = a + rng.normal(0, 8, a.shape).astype(np.float32)
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 0.5)
    expected = bbox_iou_ciou(torch.from_numpy(a).double(), torch.from_numpy(b).double()).numpy()
    np.testing.assert_allclose(ciou_numpy(a.astype(np.float64), b.astype(np.float64)), expected, rtol=1e-9,
                               atol=1e-12)


def _scene(rng, bs=3, n_max=4, grid=16, stride=4, nc=3):
    anchors = _grid(grid, stride)
    na = len(anchors)
    size = grid * stride
    gt = np.zeros((bs, n_max, 4), np.float32)
    labels = rng.integers(0, nc, (bs, n_max))
    mask = np.zeros((bs, n_max), bool)
    for b in range(bs):
        n = rng.integers(0, n_max + 1)
        mask[b, :n] = True
        xy = rng.uniform(0, size - 24, (n_max, 2))
        wh = rng.uniform(6, 24, (n_max, 2))
        gt[b] = np.concatenate([xy, xy + wh], 1) * mask[b, :, None]
    # predictions: boxes around each anchor of random size, so every candidate overlaps its gt (no ties)
    half = rng.uniform(4, 14, (bs, na, 2))
    pd_boxes = np.concatenate([anchors - half, anchors + half], -1).astype(np.float32)
    pd_scores = rng.uniform(0.01, 0.99, (bs, na, nc)).astype(np.float32)
    return pd_scores, pd_boxes, anchors, labels, gt, mask


@pytest.mark.parametrize("seed", range(4))
def test_equals_ultralytics_formulas(seed):
    rng = np.random.default_rng(seed)
    pd_scores, pd_boxes, anchors, labels, gt, mask = _scene(rng)
    if not mask.any():
        mask[0, 0] = True
        gt[0, 0] = [10, 10, 30, 30]
    ours = TaskAlignedAssigner(topk=10, num_classes=3)(pd_scores, pd_boxes, anchors, labels, gt, mask)
    t = lambda a: torch.from_numpy(np.asarray(a))  # noqa: E731
    theirs = tal_assign(t(pd_scores), t(pd_boxes), t(anchors), t(labels[..., None]), t(gt),
                        t(mask[..., None].astype(np.float32)), num_classes=3)
    fg = theirs[3].numpy()
    np.testing.assert_array_equal(ours[3], fg)
    np.testing.assert_array_equal(ours[0][fg], theirs[0].numpy()[fg])
    np.testing.assert_array_equal(ours[4][fg], theirs[4].numpy()[fg])
    np.testing.assert_allclose(ours[1][fg], theirs[1].numpy()[fg])
    np.testing.assert_allclose(ours[2], theirs[2].numpy(), rtol=1e-5, atol=1e-7)
    assert fg.sum() > 0


def test_anchor_in_two_boxes_goes_to_the_higher_overlap():
    anchors = _grid(4, 8)  # centres 4, 12, 20, 28
    gt = np.array([[[0, 0, 16, 16], [2, 2, 30, 30]]], np.float32)  # both contain anchors (4, 4) .. (12, 12)
    pd_boxes = np.tile(np.array([0, 0, 16, 16], np.float32), (1, 16, 1))  # every prediction equals gt 0
    pd_scores = np.full((1, 16, 1), 0.5, np.float32)
    assigner = TaskAlignedAssigner(topk=10, num_classes=1)
    _, boxes, _, fg, idx = assigner(pd_scores, pd_boxes, anchors, np.zeros((1, 2)), gt, np.ones((1, 2)))
    shared = [0, 1, 4, 5]  # anchors (4, 4), (12, 4), (4, 12), (12, 12): inside both boxes
    assert fg[0, shared].all()
    np.testing.assert_array_equal(idx[0, shared], 0)  # CIoU with gt 0 is 1, with gt 1 lower
    assert (idx[0][fg[0]] == 1).any()  # gt 1 keeps the anchors only it contains


def test_background_and_padding():
    rng = np.random.default_rng(0)
    pd_scores, pd_boxes, anchors, labels, gt, _ = _scene(rng, bs=2)
    a = TaskAlignedAssigner(num_classes=3)
    out = a(pd_scores, pd_boxes, anchors, labels[:, :0], gt[:, :0], np.zeros((2, 0)))
    assert not out[3].any() and out[2].sum() == 0 and (out[0] == 3).all()
    out = a(pd_scores, pd_boxes, anchors, labels, gt, np.zeros((2, labels.shape[1]), bool))
    assert not out[3].any() and out[2].sum() == 0


def test_small_box_starved_by_default_and_nearest_fallback():
    anchors = np.concatenate([_grid(16, 4), _grid(8, 8), _grid(4, 16)])  # strides 4, 8, 16 over 64 px
    gt = np.array([[[4.5, 4.5, 5.5, 5.5], [20.5, 30.5, 23.5, 33.5]]], np.float32)  # 1 px and 3 px boxes
    half = np.full((1, len(anchors), 2), 3.0, np.float32)
    pd_boxes = np.concatenate([anchors - half, anchors + half], -1)
    pd_scores = np.full((1, len(anchors), 1), 0.5, np.float32)
    args = (pd_scores, pd_boxes, anchors, np.zeros((1, 2)), gt, np.ones((1, 2)))
    _, _, _, fg, _ = TaskAlignedAssigner(num_classes=1)(*args)
    assert not fg.any()  # no anchor centre (2, 6, 10, ...) lies inside either box: both starved
    for overlap in ("ciou", "nwd"):
        _, boxes, scores, fg, idx = TaskAlignedAssigner(num_classes=1, nearest_fallback=True,
                                                        overlap=overlap)(*args)
        assert fg.sum() == 2
        pos = np.flatnonzero(fg[0])
        np.testing.assert_array_equal(idx[0, pos], [0, 1])
        for p in pos:  # the nearest anchor: on the stride-4 level, within half a cell of the box centre
            centre = (boxes[0, p, :2] + boxes[0, p, 2:]) / 2
            assert np.abs(anchors[p] - centre).max() <= 2 and p < 256
        # CIoU of the 1 px box with a 6 px prediction 1.4 px off is <= 0, so its soft score is 0; NWD's is not
        assert (scores[0, pos[1:], 0] > 0).all()
        assert (scores[0, pos[0], 0] > 0) == (overlap == "nwd")


def test_nwd_overlap_equals_the_op():
    from tinyml.models.detection.assigner import nwd_numpy

    import tinyml
    from tinyml.ops.boxes import bbox_nwd
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.uniform(0, 20, (32, 2)), rng.uniform(21, 40, (32, 2))], 1).astype(np.float32)
    b = a + rng.normal(0, 3, a.shape).astype(np.float32)
    expected = bbox_nwd(tinyml.tensor(a), tinyml.tensor(b), xywh=False).numpy()
    np.testing.assert_allclose(nwd_numpy(a, b), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="overlap must be 'ciou' or 'nwd', got 'giou'"):
        TaskAlignedAssigner(overlap="giou")


def test_fallback_takes_the_finest_levels_nearest_anchor():
    """The levels' centres interleave: the 1 px box at (83.5, 99.5) is 0.7 px from a stride-8 centre (84, 100)
    and 2.1 px from the nearest stride-4 one (82, 98). Given the strides, the fallback keeps to stride 4."""
    grids = [(_grid(128 // s, s), s) for s in (4, 8, 16)]
    anchors = np.concatenate([g for g, _ in grids])
    strides = np.concatenate([np.full(len(g), s, np.float32) for g, s in grids])
    gt = np.array([[[83, 99, 84, 100]]], np.float32)
    half = np.full((1, len(anchors), 2), 1.0, np.float32)
    pd_boxes = np.concatenate([anchors - half, anchors + half], -1)
    args = (np.full((1, len(anchors), 1), 0.5, np.float32), pd_boxes, anchors, np.zeros((1, 1)), gt,
            np.ones((1, 1)))
    a = TaskAlignedAssigner(num_classes=1, nearest_fallback=True, overlap="nwd")
    fg_any = a(*args)[3][0]
    fg_finest = a(*args, anc_strides=strides[:, None])[3][0]
    assert strides[fg_any].tolist() == [8] and anchors[fg_any].tolist() == [[84, 100]]
    assert strides[fg_finest].tolist() == [4] and anchors[fg_finest].tolist() == [[82, 98]]


def test_min_candidates_adds_the_nearest_finest_anchors_to_tiny_boxes():
    """min_candidates=4: a 1 px box gets the 2 x 2 stride-4 anchors around its centre as candidates (soft
    targets by their predicted boxes' overlap), a 3 px box with one anchor inside gets its 3 nearest
    neighbours too, and a 12 px box (10 anchors inside) is left as it is."""
    grids = [(_grid(64 // s, s), s) for s in (4, 8, 16)]
    anchors = np.concatenate([g for g, _ in grids])
    strides = np.concatenate([np.full(len(g), s, np.float32) for g, s in grids])
    gt = np.array([[[20, 28, 21, 29], [33, 41, 36, 44], [40, 4, 52, 16]]], np.float32)
    valid = np.ones((1, 3), bool)
    base = TaskAlignedAssigner(num_classes=1, nearest_fallback=True, overlap="nwd")
    four = TaskAlignedAssigner(num_classes=1, nearest_fallback=True, overlap="nwd", min_candidates=4)
    c1 = base.candidates(anchors, gt, valid, strides)[0]
    c4 = four.candidates(anchors, gt, valid, strides)[0]
    assert c1.sum(-1).tolist() == [1, 1, 10]  # the 12 px box: 9 stride-4 anchors and 1 stride-8 one
    assert c4.sum(-1).tolist() == [4, 4, 10]
    assert sorted(map(tuple, anchors[c4[0]].tolist())) == [(18, 26), (18, 30), (22, 26), (22, 30)]
    assert c4[1][c1[1]].all() and (strides[c4[1]] == 4).all()  # the inside anchor stays, 3 neighbours join
    assert (c4[2] == c1[2]).all()
    half = np.full((1, len(anchors), 2), 1.0, np.float32)
    pd_boxes = np.concatenate([anchors - half, anchors + half], -1)
    args = (np.full((1, len(anchors), 1), 0.5, np.float32), pd_boxes, anchors, np.zeros((1, 3)), gt,
            np.ones((1, 3)))
    _, _, scores, fg, idx = four(*args, anc_strides=strides)
    assert (idx[0, fg[0]] == 0).sum() == 4 and (scores[0, fg[0] & (idx[0] == 0), 0] > 0).all()
    with pytest.raises(ValueError, match="min_candidates \\(0\\) must be >= 1"):
        TaskAlignedAssigner(min_candidates=0)
