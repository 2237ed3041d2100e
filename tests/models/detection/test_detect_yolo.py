"""Detector (models/detection/yolo.py): output shapes, config round trip, errors naming the values, the loss
against ultralytics' v8DetectionLoss re-implemented in torch (value and gradient), every cls/box loss
finite on background images with gradients reaching every head parameter, fuse(), predict's format,
and an overfit run on two fixed images of 3-6 px squares."""
import json

import numpy as np
import pytest
from tinyml.models.detection.yolo import Detector

import tinyml
from tinyml.ops.boxes import box_iou

torch = pytest.importorskip("torch")
from detect_torch_helpers import v8_detection_loss  # noqa: E402


def _squares(n_images=2, size=48, per_image=2, seed=0):
    rng = np.random.default_rng(seed)
    images = np.zeros((n_images, 1, size, size), np.float32)
    targets = []
    for i in range(n_images):
        boxes = []
        for _ in range(per_image):
            s = int(rng.integers(3, 7))
            x, y = rng.integers(2, size - 8, 2)
            images[i, 0, y:y + s, x:x + s] = 1.0
            boxes.append([x, y, x + s, y + s])
        targets.append({"boxes": np.array(boxes, np.float32), "labels": np.zeros(per_image, np.int64)})
    return images, targets


def _background(n=1):
    return [{"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)} for _ in range(n)]


@pytest.mark.parametrize("strides", [(4, 8, 16), (8, 16, 32)])
def test_forward_shapes_and_config_round_trip(strides):
    tinyml.manual_seed(0)
    m = Detector(num_classes=3, in_channels=3, strides=strides)
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    raw = m(x)
    assert [tuple(r.shape) for r in raw] == [(2, 64 + 3, 32 // s, 32 // s) for s in strides]
    assert m.num_classes == 3 and m.in_channels == 3
    m2 = Detector.from_config(json.loads(json.dumps(m.config)))  # JSON-able, for checkpoints
    m2.load_state_dict(m.state_dict())
    m.eval(), m2.eval()
    with tinyml.no_grad():
        for a, b in zip(m(x), m2(x)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_errors_name_the_values():
    m = Detector(num_classes=2, in_channels=1)
    with pytest.raises(ValueError, match="images have 3 channels but the model was built with in_channels=1"):
        m(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="image size 40x32 is not divisible by the largest stride 16"):
        m(np.zeros((1, 1, 40, 32), np.float32))
    raw = m(np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"class ids \[2, 5\] outside 0..1 \(num_classes=2\)"):
        m.loss(raw, [{"boxes": np.zeros((3, 4)), "labels": np.array([0, 2, 5])}])
    with pytest.raises(ValueError, match=r"target 0 boxes must have shape \(n, 4\), got \(2, 5\)"):
        m.loss(raw, [{"boxes": np.zeros((2, 5)), "labels": np.array([0, 1])}])
    with pytest.raises(ValueError, match="expected a list of 1 target dicts"):
        m.loss(raw, _background(2))
    with pytest.raises(ValueError, match="unknown box_loss 'iou'"):
        Detector(box_loss="iou")
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        Detector(size="huge")
    with pytest.raises(ValueError, match=r"increasing values from \(2, 4, 8, 16, 32\), got \(4, 3\)"):
        Detector(strides=(4, 3))


def test_loss_equals_ultralytics_v8_loss():
    """Value and gradient w.r.t. the raw head outputs, on maps with boxes the assigner can match."""
    tinyml.manual_seed(0)
    rng = np.random.default_rng(0)
    m = Detector(num_classes=2, strides=(4, 8, 16))
    shapes = [(2, 64 + 2, 64 // s, 64 // s) for s in m.strides]
    raw_np = [rng.normal(0, 1, s).astype(np.float32) for s in shapes]
    targets = [{"boxes": np.array([[8, 8, 30, 26], [40, 36, 60, 62]], np.float32),
                "labels": np.array([0, 1])},
               {"boxes": np.array([[20, 4, 44, 30]], np.float32), "labels": np.array([1])}]
    raw = [tinyml.tensor(r, requires_grad=True) for r in raw_np]
    total, parts = m.loss(raw, targets)
    total.backward()
    raw_t = [torch.from_numpy(r).requires_grad_() for r in raw_np]
    gt_labels = torch.tensor([[[0], [1]], [[1], [0]]])
    gt_boxes = torch.tensor([[[8, 8, 30, 26], [40, 36, 60, 62]], [[20, 4, 44, 30], [0, 0, 0, 0]]],
                            dtype=torch.float32)
    mask = torch.tensor([[[1.0], [1.0]], [[1.0], [0.0]]])
    ref_total, (box, cls, dfl) = v8_detection_loss(raw_t, m.strides, gt_labels, gt_boxes, mask, 2)
    ref_total.backward()
    assert parts["box"] > 0 and parts["dfl"] > 0
    np.testing.assert_allclose(total.item(), ref_total.item(), rtol=1e-4)
    np.testing.assert_allclose([parts["box"], parts["cls"], parts["dfl"]],
                               [box.item(), cls.item(), dfl.item()], rtol=1e-4)
    for ours, ref in zip(raw, raw_t):
        np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("cls_loss,box_loss", [("bce", "ciou"), ("focal", "ciou"), ("atfl", "ciou"),
                                               ("varifocal", "ciou"), ("bce", "nwd"), ("bce", "giou")])
def test_losses_finite_on_background_and_reach_every_head_parameter(cls_loss, box_loss):
    tinyml.manual_seed(1)
    m = Detector(box_loss=box_loss, cls_loss=cls_loss, nearest_fallback=True, assign_overlap="nwd",
                 box_prior=1.0)
    images = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    # a 3 px, a 10 px and a 24 px box: positives on every level (strides 4, 8, 16)
    target = {"boxes": np.array([[2, 3, 5, 6], [12, 14, 22, 24], [4, 6, 28, 30]], np.float32),
              "labels": np.zeros(3, np.int64)}
    total, parts = m.loss(m(images[:1]), _background())
    assert np.isfinite(total.item()) and all(np.isfinite(v) for v in parts.values())
    assert parts["box"] == 0 and parts["dfl"] == 0 and parts["cls"] > 0
    total.backward()
    m.zero_grad()
    total, parts = m.loss(m(images), [target, _background()[0]])
    assert np.isfinite(total.item()) and parts["box"] > 0 and parts["dfl"] > 0
    total.backward()
    for name, p in m.head.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), name
        assert np.abs(p.grad.numpy()).max() > 0, name


def test_fuse_matches_unfused_eval():
    tinyml.manual_seed(0)
    m = Detector(size="tiny")
    rng = np.random.default_rng(0)
    for bn in (b for b in m.modules() if isinstance(b, tinyml.nn.BatchNorm2d)):  # non-trivial statistics
        bn.running_mean.copy_(tinyml.tensor(rng.normal(0, 0.5, bn.num_features).astype(np.float32)))
        bn.running_var.copy_(tinyml.tensor(rng.uniform(0.5, 2, bn.num_features).astype(np.float32)))
    x = rng.random((2, 1, 32, 32), dtype=np.float32)
    m.eval()
    with tinyml.no_grad():
        before = [r.numpy() for r in m(x)]
        m.fuse()
        after = [r.numpy() for r in m(x)]
    assert not any(isinstance(b, tinyml.nn.BatchNorm2d) for b in m.modules())
    for a, b in zip(after, before):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_predict_format():
    tinyml.manual_seed(0)
    m = Detector(num_classes=2)
    m.train()
    out = m.predict(np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32), conf_thres=0.0,
                    iou_thres=1.0, max_det=7)  # iou_thres 1: NMS drops nothing, max_det caps
    assert m.training  # predict restores the mode
    assert len(out) == 3
    for boxes, scores, labels in out:
        assert boxes.shape == (7, 4) and boxes.dtype == np.float32
        assert scores.dtype == np.float32 and labels.dtype == np.int64 and labels.max() < 2
        assert (np.diff(scores) <= 0).all() and (boxes >= 0).all() and (boxes <= 32).all()
    boxes, scores, labels = m.predict(np.zeros((1, 1, 32, 32), np.float32), conf_thres=1.0)[0]
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)


def test_overfit_two_images_of_small_squares():
    tinyml.manual_seed(0)
    images, targets = _squares(2, 48, seed=0)
    m = Detector(nearest_fallback=True, assign_overlap="nwd", box_prior=1.0)
    for bn in (b for b in m.modules() if isinstance(b, tinyml.nn.BatchNorm2d)):
        bn.momentum = 0.3  # a 80-step run: ultralytics' 0.03 would leave the running statistics unsettled
    opt = tinyml.optim.Adam(m.parameters(), lr=5e-3)
    losses = []
    for _ in range(80):
        total, parts = m.loss(m(images), targets)
        losses.append(total.item())
        opt.zero_grad()
        total.backward()
        opt.step()
    m.eval()
    with tinyml.no_grad():
        total, parts = m.loss(m(images), targets)
    # 1 - IoU near zero; the DFL term is bounded below by the entropy of the fractional bin split
    assert parts["box"] / 7.5 < 0.1 and parts["cls"] < 0.2 and total.item() < max(losses) / 3
    for (boxes, scores, _), t in zip(m.predict(images, conf_thres=0.25), targets):
        assert len(boxes) >= 2
        iou = box_iou(tinyml.tensor(t["boxes"]), tinyml.tensor(boxes[:2])).numpy()
        assert (iou.max(1) > 0.5).all(), (boxes, t["boxes"])
