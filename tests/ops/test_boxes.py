"""Box ops (tinyml/ops/boxes.py): forward and backward against torchvision's and ultralytics' formulas
re-implemented in torch here (torchvision's wheel for this torch does not import on a CPU-only
torch), gradcheck in float64, degenerate (zero-area) boxes and NaN, on every backend of the family
(CIoU's box_aspect_atan kernel). NMS and merging are in test_boxes_nms.py."""
import math

import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
import tinyml.ops as O
from tinyml.testing import assert_close, gradcheck

backend_device = backend_device_fixture()


def random_boxes(n, seed=0, fmt="xyxy", dtype=np.float64, low=1.0, high=30.0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 50, (n, 2))
    wh = rng.uniform(low, high, (n, 2))
    if fmt == "xyxy":
        out = np.concatenate([xy, xy + wh], 1)
    elif fmt == "xywh":
        out = np.concatenate([xy, wh], 1)
    else:
        out = np.concatenate([xy + wh / 2, wh], 1)
    return out.astype(dtype)


# -- torchvision.ops formulas (torchvision/ops/boxes.py), in torch -----------------------------------------
def tv_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def tv_inter_union(b1, b2):
    lt = torch.max(b1[:, None, :2], b2[:, :2])
    rb = torch.min(b1[:, None, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter, tv_area(b1)[:, None] + tv_area(b2) - inter


def tv_box_iou(b1, b2):
    inter, union = tv_inter_union(b1, b2)
    return inter / union


def tv_giou(b1, b2):
    inter, union = tv_inter_union(b1, b2)
    iou = inter / union
    lti = torch.min(b1[:, None, :2], b2[:, :2])
    rbi = torch.max(b1[:, None, 2:], b2[:, 2:])
    whi = (rbi - lti).clamp(min=0)
    areai = whi[:, :, 0] * whi[:, :, 1]
    return iou - (areai - union) / areai


def tv_diou(b1, b2, eps=1e-7):
    iou = tv_box_iou(b1, b2)
    lti = torch.min(b1[:, None, :2], b2[:, :2])
    rbi = torch.max(b1[:, None, 2:], b2[:, 2:])
    whi = (rbi - lti).clamp(min=0)
    diag = whi[:, :, 0] ** 2 + whi[:, :, 1] ** 2 + eps
    xp, yp = (b1[:, 0] + b1[:, 2]) / 2, (b1[:, 1] + b1[:, 3]) / 2
    xg, yg = (b2[:, 0] + b2[:, 2]) / 2, (b2[:, 1] + b2[:, 3]) / 2
    cd = (xp[:, None] - xg[None, :]) ** 2 + (yp[:, None] - yg[None, :]) ** 2
    return iou - cd / diag, iou


def tv_ciou(b1, b2, eps=1e-7):
    diou, iou = tv_diou(b1, b2, eps)
    wp, hp = b1[:, None, 2] - b1[:, None, 0], b1[:, None, 3] - b1[:, None, 1]
    wg, hg = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    v = (4 / torch.pi ** 2) * torch.pow(torch.atan(wp / hp) - torch.atan(wg / hg), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


def tv_convert(b, in_fmt, out_fmt):
    if in_fmt == "xywh":
        b = torch.stack([b[..., 0], b[..., 1], b[..., 0] + b[..., 2], b[..., 1] + b[..., 3]], -1)
    elif in_fmt == "cxcywh":
        cx, cy, w, h = b.unbind(-1)
        b = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)
    x1, y1, x2, y2 = b.unbind(-1)
    if out_fmt == "xywh":
        return torch.stack([x1, y1, x2 - x1, y2 - y1], -1)
    if out_fmt == "cxcywh":
        return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)
    return b


# -- ultralytics.utils.metrics.bbox_iou (v8.4), in torch ---------------------------------------------------
def ul_bbox_iou(box1, box2, xywh=True, GIoU=False, DIoU=False, CIoU=False, eps=1e-7):  # noqa: N803
    if xywh:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
        w1_, h1_, w2_, h2_ = w1 / 2, h1 / 2, w2 / 2, h2 / 2
        b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1_, x1 + w1_, y1 - h1_, y1 + h1_
        b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2_, x2 + w2_, y2 - h2_, y2 + h2_
    else:
        b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
        b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
        w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
        w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(0) * \
        (b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if CIoU or DIoU or GIoU:
        cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)
        ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
        if CIoU or DIoU:
            c2 = cw.pow(2) + ch.pow(2) + eps
            rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
            if CIoU:
                v = (4 / math.pi ** 2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
                with torch.no_grad():
                    alpha = v / (1 - iou + v + eps)
                return (iou - (rho2 / c2 + v * alpha)).squeeze(-1)
            return (iou - rho2 / c2).squeeze(-1)
        c_area = cw * ch + eps
        return (iou - (c_area - union) / c_area).squeeze(-1)
    return iou.squeeze(-1)


def torch_nwd(b1, b2, c=12.8, eps=1e-7):
    """The NWD paper's formula on xyxy boxes (pairwise when given (N, 1, 4) and (1, M, 4))."""
    g1 = torch.stack([(b1[..., 0] + b1[..., 2]) / 2, (b1[..., 1] + b1[..., 3]) / 2,
                      (b1[..., 2] - b1[..., 0]) / 2, (b1[..., 3] - b1[..., 1]) / 2], -1)
    g2 = torch.stack([(b2[..., 0] + b2[..., 2]) / 2, (b2[..., 1] + b2[..., 3]) / 2,
                      (b2[..., 2] - b2[..., 0]) / 2, (b2[..., 3] - b2[..., 1]) / 2], -1)
    return torch.exp(-torch.sqrt(((g1 - g2) ** 2).sum(-1) + eps) / c)


PAIRWISE = [(O.box_iou, tv_box_iou), (O.generalized_box_iou, tv_giou),
            (O.distance_box_iou, lambda a, b: tv_diou(a, b)[0]), (O.complete_box_iou, tv_ciou),
            (O.nwd, lambda a, b: torch_nwd(a[:, None], b[None]))]


@pytest.mark.parametrize("ours,theirs", PAIRWISE, ids=lambda f: getattr(f, "__name__", ""))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pairwise_matches_torchvision_forward_and_backward(ours, theirs, dtype):
    inputs = [random_boxes(5, 1), random_boxes(4, 2)]
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {}
    check_op(None, ours, theirs, inputs=inputs, dtype=dtype, **tol)


def test_ciou_on_every_backend(backend_device):
    """CIoU is the box op with a kernel of this family (box_aspect_atan); the others compose ops whose
    kernels their own families test on every backend."""
    inputs = [random_boxes(4, 1), random_boxes(3, 2)]
    check_op(None, O.complete_box_iou, tv_ciou, inputs=inputs, dtype="float64", device=backend_device)
    check_op(None, lambda a, b: O.bbox_iou(a, b, xywh=False, CIoU=True),
             lambda a, b: ul_bbox_iou(a, b, xywh=False, CIoU=True), inputs=inputs[:1] * 2, dtype="float32",
             device=backend_device, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("flags", [{}, {"GIoU": True}, {"DIoU": True}, {"CIoU": True}])
@pytest.mark.parametrize("xywh", [True, False])
def test_bbox_iou_matches_ultralytics(flags, xywh):
    fmt = "cxcywh" if xywh else "xyxy"
    inputs = [random_boxes(6, 3, fmt), random_boxes(6, 4, fmt)]
    check_op(None, lambda a, b: O.bbox_iou(a, b, xywh=xywh, **flags),
             lambda a, b: ul_bbox_iou(a, b, xywh=xywh, **flags), inputs=inputs, dtype="float64")
    # broadcast (N, 1, 4) x (1, M, 4): the pairwise matrix
    check_op(None, lambda a, b: O.bbox_iou(a.unsqueeze(1), b.unsqueeze(0), xywh=xywh, **flags),
             lambda a, b: ul_bbox_iou(a.unsqueeze(1), b.unsqueeze(0), xywh=xywh, **flags), inputs=inputs,
             dtype="float64")


def test_bbox_nwd_and_nwd_follow_the_paper():
    inputs = [random_boxes(5, 5, "cxcywh"), random_boxes(5, 6, "cxcywh")]

    def theirs(a, b, c=12.8):
        return torch_nwd(tv_convert(a, "cxcywh", "xyxy"), tv_convert(b, "cxcywh", "xyxy"), c)

    check_op(None, O.bbox_nwd, theirs, inputs=inputs, dtype="float64")
    check_op(None, lambda a, b: O.bbox_nwd(a, b, constant=4.0), lambda a, b: theirs(a, b, 4.0), inputs=inputs,
             dtype="float64")
    # identical boxes: distance sqrt(eps) -> nwd ~ 1, and the gradient stays finite
    b = tinyml.tensor(random_boxes(3, 7), requires_grad=True)
    d = O.bbox_nwd(b, b.detach(), xywh=False)
    assert_close(d, np.exp(-np.sqrt(1e-7) / 12.8) * np.ones(3))
    d.sum().backward()
    assert np.isfinite(b.grad.numpy()).all()
    with pytest.raises(ValueError, match="constant must be positive, got 0"):
        O.bbox_nwd(b, b, constant=0)


def test_box_ios_and_area():
    b1, b2 = random_boxes(5, 8), random_boxes(4, 9)
    b2[0] = [10, 10, 10, 20]  # zero area: IoS 0 (sahi's safe ratio)
    t1, t2 = torch.tensor(b1), torch.tensor(b2)
    inter, _ = tv_inter_union(t1, t2)
    smaller = torch.minimum(tv_area(t1)[:, None], tv_area(t2)[None])
    want = torch.where(smaller > 0, inter / smaller.clamp(min=1e-300), torch.zeros(()))
    got = O.box_ios(tinyml.tensor(b1), tinyml.tensor(b2))
    assert_close(got, want)
    assert np.all(got.numpy()[:, 0] == 0)
    assert_close(O.box_area(tinyml.tensor(b1)), tv_area(t1))

    def torch_ios(a, b):
        smaller = torch.minimum(tv_area(a)[:, None], tv_area(b)[None])
        return torch.where(smaller > 0, tv_inter_union(a, b)[0] / smaller, torch.zeros((), dtype=a.dtype))

    check_op(None, O.box_ios, torch_ios, inputs=[random_boxes(4, 10), random_boxes(3, 11)], dtype="float64")


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert(in_fmt, out_fmt):
    check_op(None, lambda b: O.box_convert(b, in_fmt, out_fmt), lambda b: tv_convert(b, in_fmt, out_fmt),
             inputs=[random_boxes(5, 12, in_fmt)], dtype="float64")


# CIoU is left out of gradcheck: its alpha is a constant to autograd (torchvision, ultralytics), which finite
# differences cannot see; its backward is checked against torch above, and its atan kernel here.
@pytest.mark.parametrize("fn", [O.box_iou, O.generalized_box_iou, O.distance_box_iou, O.nwd, O.box_ios],
                         ids=lambda f: f.__name__)
def test_gradcheck_pairwise(fn):
    a = tinyml.tensor(random_boxes(3, 13), requires_grad=True)
    b = tinyml.tensor(random_boxes(4, 14), requires_grad=True)
    assert gradcheck(fn, [a, b])


def test_gradcheck_aspect_atan():
    w = tinyml.tensor(np.random.default_rng(19).uniform(-3, 3, 6), requires_grad=True)
    h = tinyml.tensor(np.random.default_rng(20).uniform(0.2, 3, 6), requires_grad=True)
    assert gradcheck(lambda a, b: O.boxes._aspect_atan(a, b), [w, h])


@pytest.mark.parametrize("flags", [{}, {"GIoU": True}, {"DIoU": True}])
def test_gradcheck_bbox_iou(flags):
    a = tinyml.tensor(random_boxes(4, 15, "cxcywh"), requires_grad=True)
    b = tinyml.tensor(random_boxes(4, 16, "cxcywh"), requires_grad=True)
    assert gradcheck(lambda x, y: O.bbox_iou(x, y, **flags), [a, b])


def test_degenerate_boxes_match_torchvision():
    """Zero-area boxes: torchvision divides without eps, so two empty boxes give 0 / 0 = NaN."""
    b = np.array([[0, 0, 0, 0], [1, 1, 1, 5], [0, 0, 4, 4], [2, 2, 2, 2]], np.float64)
    tb = torch.tensor(b)
    for ours, theirs in PAIRWISE[:4]:
        assert_close(ours(tinyml.tensor(b), tinyml.tensor(b)), theirs(tb, tb))
    # ultralytics adds eps: finite everywhere
    got = O.bbox_iou(tinyml.tensor(b), tinyml.tensor(b), xywh=False, CIoU=True)
    assert_close(got, ul_bbox_iou(tb, tb, xywh=False, CIoU=True))


def test_nan_propagates():
    b = random_boxes(3, 17)
    b[1, 2] = np.nan
    tb = torch.tensor(b)
    for ours, theirs in PAIRWISE:
        got, want = ours(tinyml.tensor(b), tinyml.tensor(b)), theirs(tb, tb)
        assert np.array_equal(np.isnan(got.numpy()), np.isnan(want.numpy())), ours.__name__
        assert_close(got, want)


def test_aspect_atan_kernel_on_every_backend(backend_device):
    rng = np.random.default_rng(18)
    w = np.concatenate([rng.uniform(-50, 50, 40), [0.0, 1.0, np.inf, np.nan, 3.0]])
    h = np.concatenate([rng.uniform(0.01, 50, 40), [1.0, 0.0, 2.0, 1.0, np.inf]])
    for dt in (np.float32, np.float64):
        got = tinyml.backends.run("box_aspect_atan", tinyml.tensor(w.astype(dt), device=backend_device),
                                  tinyml.tensor(h.astype(dt), device=backend_device))
        with np.errstate(divide="ignore"):
            want = np.arctan(w.astype(dt) / h.astype(dt))
        assert got.dtype.name == np.dtype(dt).name
        assert_close(got, want)


def test_bad_input_names_the_shapes():
    with pytest.raises(ValueError, match=r"expected boxes1 \(N, 4\) and boxes2 \(M, 4\), got \(2, 3, 4\)"):
        O.box_iou(tinyml.zeros(2, 3, 4), tinyml.zeros(2, 4))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\), got \(2, 5\)"):
        O.box_area(tinyml.zeros(2, 5))
    with pytest.raises(ValueError, match="in_fmt='xyzw'"):
        O.box_convert(tinyml.zeros(2, 4), "xyzw", "xyxy")
    with pytest.raises(TypeError, match="got list"):
        O.box_iou([[0, 0, 1, 1]], tinyml.zeros(1, 4))
