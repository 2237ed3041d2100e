"""SmallTargetSegmenter: forward and gradients against the same U-Net in PyTorch, the soft-IoU + BCE loss
against its formula, padding of odd sizes, predict / predict_masks, config round trip, learning, errors."""
import numpy as np
import pytest
from tinyml.models.detection.segment import SmallTargetSegmenter, soft_iou_loss

import tinyml
from tinyml.testing import assert_close

torch = pytest.importorskip("torch")
tnn = torch.nn


class TorchBlock(tnn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(cin, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout)
        self.conv2, self.bn2 = tnn.Conv2d(cout, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class TorchUNet(tnn.Module):
    def __init__(self, cin, base, depth):
        super().__init__()
        w = [base * 2 ** i for i in range(depth)]
        self.encoder = tnn.ModuleList([TorchBlock(cin if i == 0 else w[i - 1], w[i]) for i in range(depth)])
        self.decoder = tnn.ModuleList([TorchBlock(w[i + 1] + w[i], w[i]) for i in reversed(range(depth - 1))])
        self.head = tnn.Conv2d(w[0], 1, 1)

    def forward(self, x):
        H, W = x.shape[2:]
        m = 2 ** (len(self.encoder) - 1)
        x = tnn.functional.pad(x, (0, -W % m, 0, -H % m))
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else tnn.functional.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            up = tnn.functional.interpolate(x, scale_factor=2, mode="nearest")
            x = block(torch.cat([up, skips.pop()], 1))
        return self.head(x)[:, :, :H, :W]


def _torch_loss(logits, g):
    p = logits.sigmoid().flatten(1)
    gf = g.flatten(1)
    inter = (p * gf).sum(1)
    iou = 1 - (inter + 1) / (p.sum(1) + gf.sum(1) - inter + 1)
    return tnn.functional.binary_cross_entropy_with_logits(logits, g) + iou.mean()


@pytest.mark.parametrize("size", [(8, 12), (7, 9)])
def test_forward_loss_and_gradients_match_torch(size):
    tinyml.manual_seed(0)
    ours = SmallTargetSegmenter(in_channels=2, base_channels=3, depth=3)
    peer = TorchUNet(2, 3, 3)
    state = {k: torch.tensor(v.detach().numpy()) for k, v in ours.state_dict().items()}
    peer.load_state_dict(state, strict=True)
    rng = np.random.default_rng(0)
    x = rng.random((2, 2, *size), dtype=np.float32)
    masks = (rng.random((2, *size)) < 0.1).astype(np.uint8)
    out = ours(tinyml.tensor(x))
    ref = peer(torch.tensor(x))
    assert out.shape == (2, 1, *size)
    assert_close(out.detach().numpy(), ref.detach().numpy(), rtol=1e-4, atol=1e-5)
    total, parts = ours.loss(out, [{"mask": m} for m in masks])
    ref_total = _torch_loss(ref, torch.tensor(masks[:, None].astype(np.float32)))
    assert_close(np.float32(total.item()), np.float32(ref_total.item()), rtol=1e-5, atol=1e-6)
    assert set(parts) == {"bce", "soft_iou"} and all(isinstance(v, float) for v in parts.values())
    total.backward()
    ref_total.backward()
    peer_params = dict(peer.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad.numpy(), peer_params[name].grad.numpy(), rtol=2e-3, atol=1e-5, msg=name)


def test_soft_iou_loss_formula():
    logits = np.array([[[[2.0, -1.0], [0.5, -3.0]]], [[[-2.0, -2.0], [-2.0, -2.0]]]], np.float32)
    g = np.array([[[[1, 0], [1, 0]]], [[[0, 0], [0, 0]]]], np.float32)
    p = 1 / (1 + np.exp(-logits))
    expected = []
    for pi, gi in zip(p, g):
        inter = (pi * gi).sum()
        expected.append(1 - (inter + 1) / (pi.sum() + gi.sum() - inter + 1))
    got = soft_iou_loss(tinyml.tensor(logits), tinyml.tensor(g)).item()
    assert got == pytest.approx(np.mean(expected), rel=1e-5)
    # A perfect, confident prediction costs ~0; the empty image gives 1 - 1/(sum p + 1).
    perfect = soft_iou_loss(tinyml.tensor(np.where(g > 0, 30.0, -30.0)), tinyml.tensor(g)).item()
    assert perfect == pytest.approx(0.0, abs=1e-6)


def test_learns_a_bright_square_and_predicts_it():
    rng = np.random.default_rng(0)
    images = 0.2 * rng.random((8, 1, 16, 16)).astype(np.float32)
    masks = np.zeros((8, 16, 16), np.uint8)
    for i in range(8):
        y, x = rng.integers(2, 12, size=2)
        images[i, 0, y:y + 3, x:x + 3] += 0.7
        masks[i, y:y + 3, x:x + 3] = 1
    tinyml.manual_seed(0)
    model = SmallTargetSegmenter(base_channels=4, depth=2)
    opt = tinyml.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(90):  # measured: loss 1.14 -> 0.19, predicted masks IoU 1.0
        total, _ = model.loss(model(tinyml.tensor(images)), masks)
        opt.zero_grad()
        total.backward()
        opt.step()
        first = total.item() if first is None else first
    assert total.item() < 0.3 * first
    pred = model.predict_masks(images)
    assert pred.shape == (8, 16, 16) and pred.dtype == np.uint8
    iou = (pred & masks).sum() / (pred | masks).sum()
    assert iou > 0.5, iou
    assert model.training  # predict_* restore the mode
    detections = model.predict(images, conf_thres=0.5)
    assert len(detections) == 8
    boxes, scores, labels = detections[0]
    assert boxes.dtype == np.float32 and labels.dtype == np.int64 and (scores >= 0.5).all()
    ys, xs = np.nonzero(masks[0])
    truth = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    assert len(boxes) >= 1 and np.abs(boxes[np.argmax(scores)] - truth).max() <= 1


def test_predict_boxes_from_components():
    model = SmallTargetSegmenter(base_channels=2, depth=1)
    # The component-to-box step alone, on a fixed probability map.
    prob = np.zeros((1, 10, 12), np.float32)
    prob[0, 1:3, 2:5] = 0.9
    prob[0, 7, 10] = 0.6
    model.predict_probabilities = lambda images: prob
    (boxes, scores, labels), = model.predict(np.zeros((1, 1, 10, 12), np.float32), conf_thres=0.5)
    assert_close(boxes, np.array([[2, 1, 5, 3], [10, 7, 11, 8]], np.float32))
    assert_close(scores, np.array([0.9, 0.6], np.float32))
    assert labels.tolist() == [0, 0]
    (boxes, _, _), = model.predict(np.zeros((1, 1, 10, 12), np.float32), conf_thres=0.5, max_det=1)
    assert len(boxes) == 1


def test_config_round_trip():
    model = SmallTargetSegmenter(in_channels=3, base_channels=4, depth=2, bce_weight=0.5, iou_weight=2.0,
                                 prior_prob=0.1)
    assert_close(model.head.bias.detach().numpy(), np.array([np.log(0.1 / 0.9)], np.float32))
    clone = SmallTargetSegmenter.from_config(model.config)
    clone.load_state_dict(model.state_dict())
    x = tinyml.rand(1, 3, 8, 8)
    model.eval()
    clone.eval()
    assert_close(clone(x).detach().numpy(), model(x).detach().numpy())
    assert model.num_classes == 1 and model.in_channels == 3


def test_errors_name_the_values():
    with pytest.raises(ValueError, match="got 0, 4, 2"):
        SmallTargetSegmenter(in_channels=0, base_channels=4, depth=2)
    with pytest.raises(ValueError, match="bce_weight=0.0, iou_weight=0.0"):
        SmallTargetSegmenter(bce_weight=0.0, iou_weight=0.0)
    with pytest.raises(ValueError, match="prior_prob must be in \\(0, 1\\), got 1.0"):
        SmallTargetSegmenter(prior_prob=1.0)
    model = SmallTargetSegmenter(base_channels=2, depth=2)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got \(1, 3, 8, 8\)"):
        model(tinyml.rand(1, 3, 8, 8))
    out = model(tinyml.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"shape \(2, 8, 9\), logits need \(2, 8, 8\)"):
        model.loss(out, np.zeros((2, 8, 9)))
    with pytest.raises(ValueError, match="target 1 has no 'mask'"):
        model.loss(out, [{"mask": np.zeros((8, 8))}, {"boxes": np.zeros((0, 4))}])
    with pytest.raises(ValueError, match="threshold must be in"):
        model.predict_masks(np.zeros((1, 1, 8, 8), np.float32), threshold=1.5)


@pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device (nor Triton's interpreter)")
def test_cuda_matches_cpu_forward_loss_and_predict():
    tinyml.manual_seed(0)
    model = SmallTargetSegmenter(base_channels=2, depth=2).eval()  # running stats stay put between devices
    x = np.random.default_rng(0).random((1, 1, 6, 6), dtype=np.float32)
    masks = np.zeros((1, 6, 6), np.uint8)
    masks[0, 2:4, 2:4] = 1
    total, _ = model.loss(model(tinyml.tensor(x)), masks)
    total.backward()
    cpu_grad = model.head.weight.grad.numpy().copy()
    cpu_prob = model.predict_probabilities(x)
    model.zero_grad()
    model.to("cuda")
    total_cuda, _ = model.loss(model(tinyml.tensor(x, device="cuda")), masks)
    total_cuda.backward()
    assert total_cuda.device.type == "cuda"
    assert total_cuda.item() == pytest.approx(total.item(), rel=1e-5)
    assert_close(model.head.weight.grad.cpu().numpy(), cpu_grad, rtol=1e-4, atol=1e-6)
    assert_close(model.predict_probabilities(x), cpu_prob, rtol=1e-4, atol=1e-6)  # numpy in, weights' device
