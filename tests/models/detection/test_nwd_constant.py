"""NWD's constant C in the Detector (`tinyml detect train --nwd-c / --assign-nwd-c`): the box loss uses
nwd_constant (checked against the formula sum_P w (1 - exp(-W2 / C)) / S on the assigner's own positives),
the assigner's NWD overlap uses assign_nwd_constant (default: nwd_constant), both survive the config round
trip, and bad values are refused naming them."""
import json

import numpy as np
import pytest
from tinyml.models.detection.assigner import nwd_numpy
from tinyml.models.detection.targets import pad_targets
from tinyml.models.detection.yolo import Detector
from tinyml.train.detect.run import DetectRun
from tinyml.train.runs import UsageError

import tinyml


def _detector(**kw):
    tinyml.manual_seed(0)
    return Detector(num_classes=1, nearest_fallback=True, assign_overlap="nwd", box_prior=1.0,
                    box_loss="nwd", **kw)


def _sample():
    rng = np.random.default_rng(3)
    x = rng.random((2, 1, 32, 32), dtype=np.float32)
    targets = [{"boxes": np.array([[3.0, 4.0, 5.0, 5.0], [10.0, 12.0, 17.0, 18.0]], np.float32),
                "labels": np.zeros(2, np.int64)},
               {"boxes": np.array([[20.0, 7.0, 21.0, 8.0]], np.float32), "labels": np.zeros(1, np.int64)}]
    return x, targets


def test_defaults_and_config_round_trip():
    m = _detector()
    assert m.config["nwd_constant"] == 12.8 and m.assigner.nwd_constant == 12.8
    m = _detector(nwd_constant=4.7)
    assert m.assigner.nwd_constant == 4.7  # the assigner follows the box loss's C unless given its own
    m = _detector(nwd_constant=4.7, assign_nwd_constant=2.5)
    m2 = Detector.from_config(json.loads(json.dumps(m.config)))
    assert m2.config["nwd_constant"] == 4.7 and m2.assigner.nwd_constant == 2.5
    old = {k: v for k, v in m.config.items() if k != "assign_nwd_constant"}  # checkpoints from before
    assert Detector.from_config(old).assigner.nwd_constant == 4.7


@pytest.mark.parametrize("c", [4.7, 12.8])
def test_box_loss_is_one_minus_nwd_with_the_given_constant(c):
    m = _detector(nwd_constant=c, assign_nwd_constant=12.8)
    x, targets = _sample()
    raw = m(x)
    _, parts = m.loss(raw, targets)
    # the same positives and weights as the loss sees them, then the formula in numpy
    with tinyml.no_grad():
        _, logits, boxes, anchors, stride = m._decode(raw)
    gl, gb, mask = pad_targets(targets)
    _, t_boxes, t_scores, fg, _ = m.assigner(logits.sigmoid().numpy(), boxes.numpy(), anchors * stride, gl,
                                             gb, mask, anc_strides=stride)
    assert fg.any()
    w = t_scores.sum(-1)[fg]
    box = (w * (1 - nwd_numpy(boxes.numpy()[fg], t_boxes[fg], c))).sum() / max(t_scores.sum(), 1.0)
    np.testing.assert_allclose(parts["box"], 7.5 * box, rtol=1e-4)


def test_assigner_constant_changes_the_soft_targets_only_through_the_assigner():
    x, targets = _sample()
    a = _detector(nwd_constant=12.8, assign_nwd_constant=12.8)
    b = _detector(nwd_constant=12.8, assign_nwd_constant=3.0)
    raw = a(x)
    _, pa = a.loss(raw, targets)
    _, pb = b.loss(raw, targets)
    # same weights and outputs: only the assignment's overlaps (hence soft scores and weights) differ
    assert pa["cls"] != pb["cls"]
    assert np.isfinite([pa["box"], pb["box"], pa["cls"], pb["cls"]]).all()


@pytest.mark.parametrize("kw", [{"nwd_constant": 0.0}, {"nwd_constant": -1.0},
                                {"assign_nwd_constant": float("nan")}])
def test_bad_constants_are_refused(kw):
    with pytest.raises(ValueError, match="must be > 0 pixels"):
        _detector(**kw)


@pytest.mark.parametrize("field,flag", [("nwd_c", "--nwd-c"), ("assign_nwd_c", "--assign-nwd-c")])
def test_detect_run_refuses_bad_constants(tmp_path, field, flag):
    with pytest.raises(UsageError, match=f"{flag} 0.0: NWD's constant C must be a positive number"):
        DetectRun(out=str(tmp_path / "r"), **{field: 0.0}).check()
