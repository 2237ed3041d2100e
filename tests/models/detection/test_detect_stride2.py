"""The Detector with a stride-2 level (strides 2, 4, 8, 16; `tinyml detect train --strides 2,4,8,16`): map
shapes, anchors, target assignment of 1-3 px boxes to the stride-2 level, box decoding at stride 2 against a
hand computation, gradients reaching the stride-2 branches, and predict's boxes in input pixels."""
import numpy as np
import pytest
from tinyml.models.detection.head import make_anchors
from tinyml.models.detection.yolo import Detector

import tinyml

STRIDES = (2, 4, 8, 16)


def _detector(**kw):
    tinyml.manual_seed(0)
    return Detector(num_classes=2, strides=STRIDES, nearest_fallback=True, assign_overlap="nwd",
                    box_prior=1.0, box_loss="nwd", **kw)


def test_shapes_and_anchors():
    m = _detector()
    x = np.random.default_rng(0).random((2, 1, 32, 48), dtype=np.float32)
    raw = m(x)
    assert [tuple(r.shape) for r in raw] == [(2, 64 + 2, 32 // s, 48 // s) for s in STRIDES]
    anchors, stride = make_anchors([tuple(r.shape[2:]) for r in raw], STRIDES)
    assert anchors.shape == (16 * 24 + 8 * 12 + 4 * 6 + 2 * 3, 2)
    # the stride-2 level comes first: cell (x, y) has its centre at pixel (2x + 1, 2y + 1)
    np.testing.assert_array_equal(anchors[:3] * stride[:3], [[1, 1], [3, 1], [5, 1]])
    np.testing.assert_array_equal(anchors[24] * stride[24], [1, 3])
    assert (stride[:16 * 24] == 2).all() and (stride[16 * 24:16 * 24 + 96] == 4).all()


def test_decode_at_stride_2_equals_the_hand_computation():
    """Box logits peaked on bin j give distance j cells; the box is (a - l, a - t, a + r, a + b) * s."""
    m = _detector(reg_max=8)
    b, h, w = 1, 8, 8
    raw = []
    rng = np.random.default_rng(1)
    ltrb = rng.integers(0, 8, (4, h // 2, w // 2))  # per side, per cell of the stride-2 map
    for s in STRIDES:
        level = np.full((b, 4 * 8 + 2, h // s, w // s), -50.0, np.float32)
        if s == 2:
            for side in range(4):
                for y in range(h // 2):
                    for x in range(w // 2):
                        level[0, side * 8 + ltrb[side, y, x], y, x] = 50.0
        raw.append(tinyml.tensor(level))
    _, _, boxes, anchors, stride = m._decode(raw)
    boxes = boxes.numpy()[0]
    for y in range(h // 2):
        for x in range(w // 2):
            a = np.array([x + 0.5, y + 0.5])
            l_, t_, r_, b_ = ltrb[:, y, x]
            expected = np.array([a[0] - l_, a[1] - t_, a[0] + r_, a[1] + b_]) * 2
            np.testing.assert_allclose(boxes[y * (w // 2) + x], expected, atol=1e-4)


@pytest.mark.parametrize("box, only_stride_2", [([5, 5, 6, 6], True), ([10, 7, 12, 9], True),
                                                ([20, 13, 23, 16], False)])
def test_tiny_boxes_are_assigned_on_the_stride_2_level(box, only_stride_2):
    """1-2 px boxes contain no stride-4 anchor centre: their positives are stride-2 anchors within a pixel
    of the box centre; a 3 px box here contains one of each level, both are positives."""
    m = _detector()
    images = np.zeros((1, 1, 32, 32), np.float32)
    raw = m(images)
    _, logits, boxes, anchors, stride = m._decode(raw)
    gt = np.array([[box]], np.float32)
    _, _, t_scores, fg, _ = m.assigner(logits.detach().sigmoid().numpy(), boxes.detach().numpy(),
                                       anchors * stride, np.zeros((1, 1), np.int64), gt, np.ones((1, 1)))
    pos = np.flatnonzero(fg[0])
    assert (stride[pos, 0] == 2).all() if only_stride_2 else (stride[pos, 0] == 2).any()
    pos = pos[stride[pos, 0] == 2]
    centres = anchors[pos] * stride[pos]
    centre = (gt[0, 0, :2] + gt[0, 0, 2:]) / 2
    assert (np.abs(centres - centre).max(1) <= 1.0).all()
    assert (t_scores[0, pos, 0] > 0).all()  # NWD overlap: a soft score above 0 even for a 1 px box


def test_loss_reaches_the_stride_2_branches_and_predict_maps_to_pixels():
    m = _detector()
    images = np.random.default_rng(2).random((1, 1, 32, 32), dtype=np.float32)
    target = {"boxes": np.array([[5, 5, 6, 6], [12, 14, 22, 24]], np.float32), "labels": np.array([0, 1])}
    total, parts = m.loss(m(images), [target])
    assert np.isfinite(total.item()) and parts["box"] > 0 and parts["dfl"] > 0
    total.backward()
    for branch in (m.head.box_branches[0], m.head.cls_branches[0]):
        grads = [p.grad for p in branch.parameters()]
        assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in grads)
    boxes, scores, labels = m.predict(images, conf_thres=0.0, max_det=50)[0]
    assert boxes.shape[1] == 4 and len(boxes) <= 50
    assert (boxes >= 0).all() and (boxes <= 32).all() and set(labels.tolist()) <= {0, 1}
