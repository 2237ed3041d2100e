"""CenterNet (models/detection/centernet.py): gaussian_radius / draw_gaussian against CenterNet's formulas,
targets (peak, offset, size, the minimum radius for tiny targets), the loss against CenterNet's _neg_loss
and RegL1Loss re-implemented in torch (value and gradient), shapes at strides 1/2/4, errors, fixed-size
boxes for points-only data, fuse(), and an overfit run on two images of 3-6 px squares."""
import json
import math

import numpy as np
import pytest
from tinyml.models.detection.centernet import CenterNet, draw_gaussian, gaussian_radius

import tinyml
from tinyml.ops.boxes import box_iou

torch = pytest.importorskip("torch")
from test_detect_yolo import _background, _squares  # noqa: E402


def _centernet_radius(det_size, min_overlap=0.7):
    """xingyizhou/CenterNet src/lib/utils/image.py gaussian_radius, as written there."""
    height, width = det_size
    a1, b1, c1 = 1, (height + width), width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4, 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _centernet_gaussian(shape, radius, center):
    """draw_umich_gaussian(heatmap, center, radius) on a fresh heatmap, with gaussian2D inlined."""
    heatmap = np.zeros(shape, np.float32)
    diameter = 2 * radius + 1
    m = (diameter - 1.) / 2.
    y, x = np.ogrid[-m:m + 1, -m:m + 1]
    g = np.exp(-(x * x + y * y) / (2 * (diameter / 6) ** 2))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    cx, cy = int(center[0]), int(center[1])
    h, w = shape
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    mh = heatmap[cy - top:cy + bottom, cx - left:cx + right]
    mg = g[radius - top:radius + bottom, radius - left:radius + right]
    np.maximum(mh, mg, out=mh)
    return heatmap


@pytest.mark.parametrize("hw", [(1, 1), (3, 2), (7, 12), (40, 40), (5.5, 90)])
def test_gaussian_radius_equals_centernet(hw):
    assert gaussian_radius(*hw) == pytest.approx(_centernet_radius(hw), rel=1e-12)


@pytest.mark.parametrize("radius,center", [(0, (3, 4)), (1, (0, 0)), (2, (9, 5)), (4, (5, 5)), (3, (1, 8))])
def test_draw_gaussian_equals_centernet(radius, center):
    heat = np.zeros((10, 12), np.float32)
    draw_gaussian(heat, center, radius)
    np.testing.assert_allclose(heat, _centernet_gaussian((10, 12), radius, center), rtol=1e-6)


def test_targets_peak_offset_size_and_min_radius():
    m = CenterNet(num_classes=2, stride=2)
    t = {"boxes": np.array([[10, 10, 13, 12], [20, 4, 60, 40]], np.float32), "labels": np.array([1, 0])}
    out = m.build_targets([t], (32, 32))
    heat = out["hm"][0]
    assert heat[1, 5, 5] == 1 and heat[0, 11, 20] == 1  # centres (11.5, 11) / 2 and (40, 22) / 2
    np.testing.assert_allclose(out["off"], [[0.75, 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(out["wh"], [[1.5, 1.0], [20, 18]])
    np.testing.assert_array_equal(out["index"], [5 * 32 + 5, 11 * 32 + 20])
    # the 3 x 2 px box: CornerNet's radius rounds to 0, min_radius 1 keeps a 3 x 3 blob
    assert int(gaussian_radius(1, 2)) == 0
    assert (heat[1, 4:7, 4:7] > 0).all() and heat[1, 3, 5] == 0
    # points, when given, set the centre
    out = m.build_targets([dict(t, points=np.array([[4, 6], [40, 22]], np.float32))], (32, 32))
    assert out["hm"][0, 1, 3, 2] == 1


def test_loss_equals_centernet_neg_loss_and_reg_l1():
    tinyml.manual_seed(0)
    m = CenterNet(num_classes=2, stride=4)
    rng = np.random.default_rng(0)
    raw_np = {"hm": rng.normal(-1, 2, (2, 2, 8, 8)), "off": rng.normal(0, 1, (2, 2, 8, 8)),
              "wh": rng.normal(2, 1, (2, 2, 8, 8))}
    raw_np = {k: v.astype(np.float32) for k, v in raw_np.items()}
    targets = [{"boxes": np.array([[2, 2, 9, 7], [14, 18, 30, 31]], np.float32), "labels": np.array([0, 1])},
               {"boxes": np.array([[5, 20, 11, 29]], np.float32), "labels": np.array([1])}]
    raw = {k: tinyml.tensor(v, requires_grad=True) for k, v in raw_np.items()}
    total, parts = m.loss(raw, targets)
    total.backward()
    t = m.build_targets(targets, (8, 8))
    rt = {k: torch.from_numpy(v).requires_grad_() for k, v in raw_np.items()}
    pred = torch.clamp(rt["hm"].sigmoid(), 1e-4, 1 - 1e-4)  # CenterNet's _sigmoid
    gt = torch.from_numpy(t["hm"])
    pos, neg = gt.eq(1).float(), gt.lt(1).float()
    pos_loss = (torch.log(pred) * torch.pow(1 - pred, 2) * pos).sum()
    neg_loss = (torch.log(1 - pred) * torch.pow(pred, 2) * torch.pow(1 - gt, 4) * neg).sum()
    hm = -(pos_loss + neg_loss) / pos.sum()
    idx = torch.from_numpy(t["index"])
    reg = {}
    for key in ("off", "wh"):
        p = rt[key].permute(0, 2, 3, 1).reshape(-1, 2)[idx]
        l1 = torch.nn.functional.l1_loss(p, torch.from_numpy(t[key]), reduction="sum")
        reg[key] = l1 / (2 * len(idx) + 1e-4)
    ref = hm + 0.1 * reg["wh"] + reg["off"]
    ref.backward()
    np.testing.assert_allclose(total.item(), ref.item(), rtol=1e-5)
    np.testing.assert_allclose([parts["hm"], parts["off"], parts["wh"]],
                               [hm.item(), reg["off"].item(), 0.1 * reg["wh"].item()], rtol=1e-5)
    for k in raw:
        np.testing.assert_allclose(raw[k].grad.numpy(), rt[k].grad.numpy(), rtol=1e-4, atol=1e-7)


def test_reg_radius_regresses_the_window_around_the_centre():
    m = CenterNet(num_classes=1, stride=1, reg_radius=1)
    # a 2 x 2 px target centred on the pixel corner (11, 7), one at the map's corner, two sharing cells
    boxes = np.array([[10, 6, 12, 8], [0, 0, 1, 1], [20, 20, 21, 21], [22, 20, 23, 21]], np.float32)
    t = m.build_targets([{"boxes": boxes, "labels": np.zeros(4, np.int64)}], (32, 32))
    cells = {int(i): k for k, i in enumerate(t["index"])}
    assert len(cells) == len(t["index"])  # every cell regresses one object
    sigma = 3 / 6  # min_radius 1
    near, diag = np.exp(-1 / (2 * sigma ** 2)), np.exp(-2 / (2 * sigma ** 2))
    total = 1 + 4 * near + 4 * diag
    for (x, y), off, w in [((11, 7), (0.0, 0.0), 1 / total), ((10, 7), (1.0, 0.0), near / total),
                           ((10, 6), (1.0, 1.0), diag / total), ((12, 8), (-1.0, -1.0), diag / total)]:
        k = cells[y * 32 + x]
        np.testing.assert_allclose(t["off"][k], off)
        np.testing.assert_allclose(t["wh"][k], [2, 2])
        np.testing.assert_allclose(t["weight"][k], w, rtol=1e-6)
    # the map's corner: only the 2 x 2 cells inside, their weights renormalised
    corner = [cells[y * 32 + x] for y in (0, 1) for x in (0, 1)]
    np.testing.assert_allclose(t["weight"][corner].sum(), 1, rtol=1e-6)
    # objects at x = 20.5 and 22.5 both reach column 21: the nearer centre of each cell wins, ties go to
    # the first object (their Gaussians are equal at column 21)
    np.testing.assert_allclose(t["off"][cells[20 * 32 + 21]], [-0.5, 0.5])
    np.testing.assert_allclose(t["off"][cells[20 * 32 + 22]], [0.5, 0.5])
    assert len(t["index"]) == 9 + 4 + 9 + 6


def test_reg_radius_loss_is_the_weighted_l1():
    rng = np.random.default_rng(1)
    raw_np = {"hm": rng.normal(-1, 2, (1, 1, 16, 16)), "off": rng.normal(0, 1, (1, 2, 16, 16)),
              "wh": rng.normal(2, 1, (1, 2, 16, 16))}
    raw_np = {k: v.astype(np.float32) for k, v in raw_np.items()}
    targets = [{"boxes": np.array([[2, 2, 5, 4], [9, 9, 11, 13]], np.float32), "labels": np.array([0, 0])}]
    wide, centre = CenterNet(stride=1, reg_radius=1), CenterNet(stride=1)
    raw = {k: tinyml.tensor(v, requires_grad=True) for k, v in raw_np.items()}
    total, parts = wide.loss(raw, targets)
    total.backward()
    t = wide.build_targets(targets, (16, 16))
    expect = {}
    for key in ("off", "wh"):
        pred = raw_np[key].transpose(0, 2, 3, 1).reshape(-1, 2)[t["index"]]
        expect[key] = (np.abs(pred - t[key]) * t["weight"][:, None]).sum() / (2 * 2 + 1e-4)
    np.testing.assert_allclose([parts["off"], parts["wh"]], [expect["off"], 0.1 * expect["wh"]], rtol=1e-5)
    grad = raw["off"].grad.numpy().transpose(0, 2, 3, 1).reshape(-1, 2)
    assert np.count_nonzero(grad.any(axis=1)) == 9 + 9  # each object's 3 x 3 window
    # reg_radius 0 is CenterNet's: the centre cells alone, weight 1
    t0 = centre.build_targets(targets, (16, 16))
    np.testing.assert_array_equal(t0["weight"], [1, 1])
    with pytest.raises(ValueError, match="reg_radius must be a whole number >= 0, got -1"):
        CenterNet(reg_radius=-1)


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_shapes_background_and_config(stride):
    tinyml.manual_seed(0)
    m = CenterNet(num_classes=3, in_channels=3, stride=stride)
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    raw = m(x)
    assert {k: tuple(v.shape) for k, v in raw.items()} == {
        "hm": (1, 3, 32 // stride, 32 // stride), "off": (1, 2, 32 // stride, 32 // stride),
        "wh": (1, 2, 32 // stride, 32 // stride)}
    total, parts = m.loss(raw, _background())
    assert np.isfinite(total.item()) and parts["hm"] > 0 and parts["off"] == 0
    total.backward()
    m2 = CenterNet.from_config(json.loads(json.dumps(m.config)))  # JSON-able, for checkpoints
    m2.load_state_dict(m.state_dict())
    m.eval(), m2.eval()
    with tinyml.no_grad():
        np.testing.assert_array_equal(m(x)["hm"].numpy(), m2(x)["hm"].numpy())


def test_errors():
    m = CenterNet(num_classes=1)
    with pytest.raises(ValueError, match="images have 2 channels but the model was built with in_channels=1"):
        m(np.zeros((1, 2, 32, 32), np.float32))
    with pytest.raises(ValueError, match="image size 32x24 is not divisible by the largest stride 16"):
        m(np.zeros((1, 1, 32, 24), np.float32))
    raw = m(np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"class ids \[1\] outside 0..0"):
        m.loss(raw, [{"boxes": np.zeros((1, 4)), "labels": np.array([1])}])
    with pytest.raises(ValueError, match=r"boxes must have shape \(n, 4\), got \(4,\)"):
        m.loss(raw, [{"boxes": np.zeros(4), "labels": np.array([0])}])
    with pytest.raises(ValueError, match="stride must be 1, 2 or 4, got 8"):
        CenterNet(stride=8)


def test_fixed_box_size_for_points_and_fuse():
    tinyml.manual_seed(0)
    m = CenterNet(stride=4, box_size=6.0)
    assert m.wh is None
    x = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    raw = m(x)
    assert "wh" not in raw
    t = {"boxes": np.zeros((1, 4), np.float32), "labels": np.zeros(1, np.int64),
         "points": np.array([[10.0, 12.0]], np.float32)}
    total, parts = m.loss(raw, [t, t])
    assert set(parts) == {"hm", "off"} and np.isfinite(total.item())
    boxes, scores, _ = m.predict(x, conf_thres=0.0, iou_thres=1.0, max_det=50)[0]
    inside = (boxes[:, :2] > 0).all(1) & (boxes[:, 2:] < 32).all(1)  # boxes at the border are clipped
    assert inside.sum() >= 1
    np.testing.assert_allclose(boxes[inside, 2:] - boxes[inside, :2], 6.0, atol=1e-5)
    m.eval()
    with tinyml.no_grad():
        before = m(x)["hm"].numpy()
        after = m.fuse()(x)["hm"].numpy()
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)


def test_overfit_two_images_of_small_squares():
    tinyml.manual_seed(0)
    images, targets = _squares(2, 48, seed=0)
    m = CenterNet(stride=2)
    for bn in (b for b in m.modules() if isinstance(b, tinyml.nn.BatchNorm2d)):
        bn.momentum = 0.3  # a short run: let the running statistics settle
    opt = tinyml.optim.Adam(m.parameters(), lr=5e-3)
    for _ in range(50):
        total, parts = m.loss(m(images), targets)
        opt.zero_grad()
        total.backward()
        opt.step()
    m.eval()
    with tinyml.no_grad():
        total, parts = m.loss(m(images), targets)
    assert total.item() < 0.2, parts
    for (boxes, scores, _), t in zip(m.predict(images, conf_thres=0.3), targets):
        assert len(boxes) == 2, (boxes, scores)
        iou = box_iou(tinyml.tensor(t["boxes"]), tinyml.tensor(boxes)).numpy()
        assert (iou.max(1) > 0.5).all(), (boxes, t["boxes"])
    assert math.isfinite(total.item())


def test_the_neck_is_the_fpn_and_an_older_config_loads_its_unused_bottom_up_weights():
    """The head reads the neck's finest map alone, so CenterNet builds no PAN bottom-up modules; a config
    saved before (no "neck_bottom_up") builds them for its weights to load, never runs them, and gives the
    same outputs as the new model with the weights it shares."""
    tinyml.manual_seed(0)
    new = CenterNet(stride=1)
    assert new.config["neck_bottom_up"] is False
    assert not any(k.startswith(("neck.down.", "neck.bottom_up.")) for k in new.state_dict())
    older = {k: v for k, v in new.config.items() if k not in ("neck_bottom_up", "reg_radius")}
    tinyml.manual_seed(1)
    legacy = CenterNet.from_config(older)
    assert legacy.config["neck_bottom_up"] is True and legacy.config["reg_radius"] == 0
    extra = {k: v for k, v in legacy.state_dict().items() if k.startswith(("neck.down.", "neck.bottom_up."))}
    assert extra
    legacy.load_state_dict({**new.state_dict(), **extra})  # strict: the older checkpoint's keys
    x = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    legacy.eval(), new.eval()
    with tinyml.no_grad():
        a, b = legacy(x), new(x)
    for k in ("hm", "off", "wh"):
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
