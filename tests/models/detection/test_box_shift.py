"""The Detector's box_shift (`tinyml detect train --box-shift`): signed side distances d = E[bin] - b, so a
box may stop up to b cells short of its anchor. Checked: the loss's targets (bbox2dist with the shift) and
the decoding agree (a box coded by its targets decodes back to it, also 1 px boxes beside the anchor, which
b = 0 cannot code), training on such a box runs with finite gradients, the config round-trips, and bad
values are refused."""
import numpy as np
import pytest
from tinyml.models.detection.head import bbox2dist, make_anchors
from tinyml.models.detection.yolo import Detector
from tinyml.train.detect.run import DetectRun
from tinyml.train.runs import UsageError

import tinyml

R = 8


def _detector(**kw):
    tinyml.manual_seed(0)
    return Detector(num_classes=1, strides=(4, 8, 16), nearest_fallback=True, assign_overlap="nwd",
                    box_prior=1.0, box_loss="nwd", reg_max=R, **kw)


def _two_hot_logits(target: np.ndarray) -> np.ndarray:
    """(4,) distances in bins -> (4 R,) logits whose softmax puts weight on the two bins around each target
    (expectation = the target, up to the -50 logits of the other bins)."""
    logits = np.full((4, R), -50.0)
    for side, t in enumerate(target):
        lo = int(np.floor(t))
        frac = t - lo
        logits[side, lo] = np.log(max(1.0 - frac, 1e-30))
        if lo + 1 < R:
            logits[side, lo + 1] = np.log(max(frac, 1e-30))
    return logits.reshape(-1)


@pytest.mark.parametrize("shift", [0.0, 0.25, 0.5])
def test_targets_decode_back_to_the_box(shift):
    m = _detector(box_shift=shift)
    h = w = 16
    anchors, stride = make_anchors([(h // s, w // s) for s in (4, 8, 16)], (4, 8, 16))
    # a 1 px box 1 px right of the first anchor (pixel 2, 2): its left side is 0.25 cells short of it
    box = np.array([3.0, 2.0, 4.0, 3.0])
    a = 0  # the first stride-4 anchor
    target = bbox2dist(anchors[a], box / stride[a], R, shift)
    raw = [np.full((1, 4 * R + 1, h // s, w // s), -50.0, np.float32) for s in (4, 8, 16)]
    raw[0][0, :4 * R, 0, 0] = _two_hot_logits(target)
    _, _, boxes, _, _ = m._decode([tinyml.tensor(r) for r in raw])
    decoded = boxes.numpy()[0, a]
    if shift >= 0.25:
        np.testing.assert_allclose(decoded, box, atol=1e-4)
    else:  # b = 0: the box must contain its anchor; the nearest codable box is [2, 2, 4, 3]
        np.testing.assert_allclose(decoded, [2.0, 2.0, 4.0, 3.0], atol=1e-4)


def test_bbox2dist_shift_adds_then_clamps():
    d = bbox2dist(np.array([[1.5, 1.5]]), np.array([[1.75, 1.0, 2.0, 5.0]]), 4, 0.25)
    np.testing.assert_allclose(d, [[0.0, 0.75, 0.75, 2.99]])  # -0.25 + 0.25; 3.5 + 0.25 clamped at R-1-0.01


def test_training_step_on_tiny_boxes_is_finite_and_reaches_the_box_branch():
    m = _detector(box_shift=0.25)
    rng = np.random.default_rng(0)
    images = rng.random((2, 1, 32, 32), dtype=np.float32)
    boxes = [np.array([[3, 3, 4, 4], [13, 20, 15, 22]], np.float32), np.array([[25, 9, 26, 10]], np.float32)]
    targets = [{"boxes": b, "labels": np.zeros(len(b), np.int64)} for b in boxes]
    loss, parts = m.loss(m(images), targets)
    assert np.isfinite(loss.item()) and parts["box"] > 0 and parts["dfl"] > 0
    loss.backward()
    grad = m.head.box_branches[0][-1].weight.grad.numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_config_round_trip_and_errors():
    m = _detector(box_shift=0.25)
    assert m.config["box_shift"] == 0.25
    assert Detector.from_config(m.config).config == m.config
    old = {k: v for k, v in m.config.items() if k != "box_shift"}  # a config saved before the option
    assert Detector.from_config(old).config["box_shift"] == 0.0
    with pytest.raises(ValueError, match="box_shift must be in \\[0, 3.5\\) cells \\(reg_max 8\\), got -0.1"):
        _detector(box_shift=-0.1)
    with pytest.raises(UsageError, match="--box-shift 1.5: expected 0 to 1 cells"):
        DetectRun(out="/nonexistent/run", box_shift=1.5).check()
