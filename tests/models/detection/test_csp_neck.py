"""models/vision/csp.py and neck.py: C2f, SPPF and the PAN neck against the same blocks written with
torch.nn.functional on the same weights (forward and backward, training-mode BN), backbone/neck shapes for
P2-P4 and P3-P5, Conv+BN folding, and errors."""
import numpy as np
import pytest
from tinyml.models.vision.csp import SPPF, C2f, ConvBNAct, CSPBackbone, fuse_modules
from tinyml.models.vision.neck import PAN

import tinyml

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_params(module):
    return {k: torch.from_numpy(v.detach().numpy().copy()).requires_grad_()
            for k, v in module.named_parameters()}


def _cba(p, prefix, x, stride=1):
    w = p[prefix + ".conv.weight"]
    y = F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2)
    y = F.batch_norm(y, None, None, p[prefix + ".bn.weight"], p[prefix + ".bn.bias"], training=True, eps=1e-3)
    return F.silu(y)


def _c2f(p, prefix, x, n, shortcut):
    a, b = _cba(p, prefix + ".cv1", x).chunk(2, 1)
    parts = [a, b]
    for i in range(n):
        y = _cba(p, f"{prefix}.m.{i}.cv2", _cba(p, f"{prefix}.m.{i}.cv1", parts[-1]))
        parts.append(parts[-1] + y if shortcut else y)
    return _cba(p, prefix + ".cv2", torch.cat(parts, 1))


def _sppf(p, prefix, x):
    x = _cba(p, prefix + ".cv1", x)
    p1 = F.max_pool2d(x, 5, 1, 2)
    p2 = F.max_pool2d(p1, 5, 1, 2)
    return _cba(p, prefix + ".cv2", torch.cat([x, p1, p2, F.max_pool2d(p2, 5, 1, 2)], 1))


def _check(ours_module, x_np, ref_fn):
    x = tinyml.tensor(x_np, requires_grad=True)
    y = ours_module(x)
    g = np.random.default_rng(1).normal(size=tuple(y.shape)).astype(np.float32)
    (y * tinyml.tensor(g)).sum().backward()
    p = _torch_params(ours_module)
    xt = torch.from_numpy(x_np).requires_grad_()
    yt = ref_fn(p, xt)
    (yt * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-3, atol=1e-4)
    for name, param in ours_module.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), p[name].grad.numpy(), rtol=1e-3, atol=1e-4,
                                   err_msg=name)


@pytest.mark.parametrize("n,shortcut", [(1, True), (2, False)])
def test_c2f_matches_torch(n, shortcut):
    tinyml.manual_seed(0)
    m = C2f(6, 8, n=n, shortcut=shortcut)
    x = np.random.default_rng(0).normal(size=(2, 6, 7, 9)).astype(np.float32)
    _check(m, x, lambda p, xt: _c2f({"." + k: v for k, v in p.items()}, "", xt, n, shortcut))


def test_sppf_matches_torch():
    tinyml.manual_seed(0)
    m = SPPF(8, 6)
    x = np.random.default_rng(0).normal(size=(2, 8, 9, 7)).astype(np.float32)
    _check(m, x, lambda p, xt: _sppf({"." + k: v for k, v in p.items()}, "", xt))


def test_pan_matches_torch():
    tinyml.manual_seed(0)
    chans = (4, 6, 8)
    pan = PAN(chans)
    rng = np.random.default_rng(0)
    feats_np = [rng.normal(size=(2, c, 16 >> i, 16 >> i)).astype(np.float32) for i, c in enumerate(chans)]
    feats = [tinyml.tensor(f, requires_grad=True) for f in feats_np]
    outs = pan(feats)
    gs = [rng.normal(size=tuple(o.shape)).astype(np.float32) for o in outs]
    sum((o * tinyml.tensor(g)).sum() for o, g in zip(outs, gs)).backward()
    p = {"." + k: v for k, v in _torch_params(pan).items()}
    ft = [torch.from_numpy(f).requires_grad_() for f in feats_np]
    td = [None, None, ft[2]]
    for i in (1, 0):
        up = F.interpolate(td[i + 1], scale_factor=2.0)
        td[i] = _c2f(p, f".top_down.{i}", torch.cat([up, ft[i]], 1), 1, False)
    ref = [td[0]]
    for i in (1, 2):
        down = _cba(p, f".down.{i - 1}", ref[-1], stride=2)
        ref.append(_c2f(p, f".bottom_up.{i - 1}", torch.cat([down, td[i]], 1), 1, False))
    sum((r * torch.from_numpy(g)).sum() for r, g in zip(ref, gs)).backward()
    for o, r in zip(outs, ref):
        np.testing.assert_allclose(o.detach().numpy(), r.detach().numpy(), rtol=1e-4, atol=1e-5)
    for f, r in zip(feats, ft):
        np.testing.assert_allclose(f.grad.numpy(), r.grad.numpy(), rtol=1e-3, atol=1e-4)

def test_pan_without_bottom_up_is_the_fpn():
    """PAN(bottom_up=False) builds no down / bottom_up modules and returns the top-down maps t_0 .. t_L; its
    t_0 is the full PAN's o_0 with the same top-down weights."""
    tinyml.manual_seed(0)
    chans = (4, 6, 8)
    full, fpn = PAN(chans), PAN(chans, bottom_up=False)
    assert not any(k.startswith(("down.", "bottom_up.")) for k in fpn.state_dict())
    fpn.load_state_dict({k: v for k, v in full.state_dict().items() if k.startswith("top_down.")})
    rng = np.random.default_rng(1)
    feats = [tinyml.tensor(rng.normal(size=(2, c, 16 >> i, 16 >> i)).astype(np.float32))
             for i, c in enumerate(chans)]
    full.eval(), fpn.eval()
    with tinyml.no_grad():
        outs, maps, td = full(feats), fpn(feats), full.top_down_maps(feats)
    assert [tuple(m.shape) for m in maps] == [tuple(o.shape) for o in outs]
    np.testing.assert_array_equal(maps[0].numpy(), outs[0].numpy())
    for m, t in zip(maps, td):
        np.testing.assert_array_equal(m.numpy(), t.numpy())
    assert not np.array_equal(maps[1].numpy(), outs[1].numpy())  # o_1 has the bottom-up path, t_1 not



@pytest.mark.parametrize("strides,size", [((4, 8, 16), "tiny"), ((8, 16, 32), "tiny"), ((2, 4), "small")])
def test_backbone_and_neck_shapes(strides, size):
    tinyml.manual_seed(0)
    bb = CSPBackbone(in_channels=2, size=size, strides=strides)
    x = tinyml.tensor(np.random.default_rng(0).random((1, 2, 64, 64), dtype=np.float32))
    feats = bb(x)
    expected = [(1, c, 64 // s, 64 // s) for c, s in zip(bb.out_channels, strides)]
    assert [tuple(f.shape) for f in feats] == expected
    outs = PAN(bb.out_channels)(feats)
    assert [tuple(o.shape) for o in outs] == [tuple(f.shape) for f in feats]


def test_fuse_folds_every_bn():
    tinyml.manual_seed(0)
    bb = CSPBackbone(1, "tiny", (4, 8))
    rng = np.random.default_rng(0)
    for m in bb.modules():
        if isinstance(m, ConvBNAct):
            m.bn.running_mean.copy_(tinyml.tensor(rng.normal(0, 0.3, m.bn.num_features).astype(np.float32)))
            m.bn.running_var.copy_(tinyml.tensor(rng.uniform(0.5, 2, m.bn.num_features).astype(np.float32)))
    x = tinyml.tensor(rng.random((2, 1, 32, 32), dtype=np.float32))
    with pytest.raises(RuntimeError, match="is in training mode; call .eval"):
        fuse_modules(bb)
    bb.eval()
    with tinyml.no_grad():
        before = [f.numpy() for f in bb(x)]
        after = [f.numpy() for f in fuse_modules(bb)(x)]
    assert all(m.fused for m in bb.modules() if isinstance(m, ConvBNAct))
    for a, b in zip(after, before):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="unknown size 'nano'"):
        CSPBackbone(size="nano")
    with pytest.raises(ValueError, match=r"got \(8, 4\)"):
        CSPBackbone(strides=(8, 4))
    with pytest.raises(ValueError, match=r"got \(64,\)"):
        CSPBackbone(strides=(64,))
    with pytest.raises(ValueError, match=r"needs at least two levels, got channels \(8,\)"):
        PAN((8,))
    with pytest.raises(ValueError, match="expected 2 feature maps, got 1"):
        PAN((4, 8))([tinyml.zeros(1, 4, 8, 8)])
