"""nn.ZeroPad/ConstantPad/ReflectionPad/ReplicationPad/CircularPad (nn/padding.py), nn.InstanceNorm1d/2d/3d
and F.instance_norm (nn/instancenorm.py), nn.Bilinear and F.bilinear (nn/bilinear.py), F.gumbel_softmax
(nn/gumbel.py): against PyTorch, forward and backward."""
import numpy as np
import pytest
import torch
from helpers import check_op

import tinyml
from tinyml.testing import assert_close, gradcheck


def lib(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch


PADS = [("ZeroPad1d", (2,), (2, 3, 5)), ("ZeroPad2d", ((1, 2, 0, 3),), (2, 3, 4, 5)),
        ("ZeroPad3d", (1,), (1, 2, 3, 3, 3)),
        ("ConstantPad1d", ((1, 2), 3.5), (2, 3, 5)), ("ConstantPad2d", (1, -1.0), (3, 4, 5)),
        ("ConstantPad3d", ((1, 0, 0, 1, 1, 0), 2.0), (1, 2, 3, 3, 3)), ("ReflectionPad1d", (2,), (2, 3, 5)),
        ("ReflectionPad2d", ((1, 2, 2, 1),), (2, 3, 4, 5)), ("ReplicationPad1d", ((0, 3),), (2, 3, 5)),
        ("ReplicationPad2d", (2,), (1, 3, 4, 5)), ("ReplicationPad3d", (1,), (1, 2, 3, 3, 3)),
        ("CircularPad1d", (2,), (2, 3, 5)), ("CircularPad2d", ((1, 1, 2, 0),), (2, 3, 4, 5))]


@pytest.mark.parametrize("name,args,shape", PADS, ids=[p[0] for p in PADS])
def test_padding_layers_match_torch(name, args, shape):
    check_op([shape], lambda x: getattr(lib(x).nn, name)(*args)(x))
    assert repr(getattr(tinyml.nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))


def test_padding_layer_errors_name_the_padding():
    with pytest.raises(ValueError, match=r"ZeroPad2d.*4 ints.*\(1, 2\)"):
        tinyml.nn.ZeroPad2d((1, 2))


@pytest.mark.parametrize("name,shape", [("InstanceNorm1d", (2, 3, 7)), ("InstanceNorm2d", (2, 3, 4, 5)),
                                        ("InstanceNorm3d", (2, 3, 2, 3, 4)), ("InstanceNorm2d", (3, 4, 5))])
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_matches_torch(name, shape, affine):
    def fn(x):
        layer = getattr(lib(x).nn, name)(3, affine=affine)  # every shape has 3 channels
        if affine:
            with lib(x).no_grad():
                layer.weight.copy_(lib(x).arange(layer.num_features, dtype=x.dtype) * 0.5 + 1)
                layer.bias.copy_(lib(x).arange(layer.num_features, dtype=x.dtype) - 1)
        return layer(x)

    check_op([shape], fn)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_instance_norm_running_stats_and_eval_match_torch(momentum):
    layers = [m.InstanceNorm2d(3, momentum=momentum, affine=True, track_running_stats=True)
              for m in (tinyml.nn, torch.nn)]
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32) * 2 + 1
        outs = [layer(m.tensor(a)) for layer, m in zip(layers, (tinyml, torch))]
        assert_close(outs[0], outs[1].detach())
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert_close(layers[0].state_dict()[key], layers[1].state_dict()[key], msg=key)
    for layer in layers:
        layer.eval()
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    assert_close(layers[0](tinyml.tensor(a)), layers[1](torch.tensor(a)).detach(), msg="eval:")
    assert repr(layers[0]) == repr(layers[1])


def test_functional_instance_norm_and_gradcheck():
    check_op([(2, 3, 6)], lambda x: lib(x).nn.functional.instance_norm(x, eps=1e-3))
    x = tinyml.tensor(np.random.default_rng(1).standard_normal((2, 2, 5)), requires_grad=True)
    w = tinyml.tensor([1.5, -0.5], dtype=tinyml.float64, requires_grad=True)
    assert gradcheck(lambda t, g: tinyml.nn.functional.instance_norm(t, weight=g), [x, w])
    with pytest.raises(ValueError, match=r"instance_norm.*\(3, 4\)"):
        tinyml.nn.functional.instance_norm(tinyml.ones(3, 4))


def test_bilinear_matches_torch():
    rng = np.random.default_rng(3)
    wt, b = rng.standard_normal((2, 4, 3)), rng.standard_normal(2)
    check_op([(5, 4), (5, 3)], lambda x1, x2: lib(x1).nn.functional.bilinear(
        x1, x2, lib(x1).tensor(wt, dtype=x1.dtype), lib(x1).tensor(b, dtype=x1.dtype)))
    check_op([(2, 5, 4), (2, 5, 3)], lambda x1, x2: lib(x1).nn.functional.bilinear(
        x1, x2, lib(x1).tensor(wt, dtype=x1.dtype)))
    layer = tinyml.nn.Bilinear(4, 3, 2)
    assert layer.weight.shape == (2, 4, 3) and layer.bias.shape == (2,)
    assert float(layer.weight.abs().max()) <= 0.5 and repr(layer) == repr(torch.nn.Bilinear(4, 3, 2))
    with pytest.raises(RuntimeError, match=r"\(5, 4\).*\(5, 2\).*\(2, 4, 3\)"):
        tinyml.nn.functional.bilinear(tinyml.ones(5, 4), tinyml.ones(5, 2), tinyml.ones(2, 4, 3))


def test_gumbel_softmax_soft_hard_and_straight_through():
    tinyml.manual_seed(0)
    logits = tinyml.tensor([[2.0, 0.0, -1.0, 0.5]] * 2000, requires_grad=True)
    soft = tinyml.nn.functional.gumbel_softmax(logits, tau=0.5)
    assert np.allclose(soft.sum(-1).detach().numpy(), 1.0, atol=1e-5)
    hard = tinyml.nn.functional.gumbel_softmax(logits, hard=True)
    h = hard.detach().numpy()
    assert set(np.unique(h)) == {0.0, 1.0} and np.all(h.sum(-1) == 1)
    # argmax of logits + Gumbel noise is a sample of softmax(logits)
    freq = h.mean(0)
    assert np.allclose(freq, torch.softmax(torch.tensor([2.0, 0.0, -1.0, 0.5]), 0).numpy(), atol=0.04)
    # straight-through: the gradient is the soft sample's (a weighted sum's gradient through softmax)
    (hard * tinyml.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert logits.grad is not None and np.abs(logits.grad.numpy()).sum() > 0
    assert np.allclose(logits.grad.numpy().sum(-1), 0.0, atol=1e-5)  # softmax's Jacobian rows sum to 0
    with pytest.raises(RuntimeError, match="floating point.*int64"):
        tinyml.nn.functional.gumbel_softmax(tinyml.tensor([1, 2]))


def test_relu_in_place_functional():
    x = tinyml.tensor([-1.0, 2.0])
    assert tinyml.nn.functional.relu_(x) is x and x.tolist() == [0.0, 2.0]


def test_distance_layers_match_torch():
    for args in ({}, dict(dim=0), dict(dim=1, eps=0.5)):
        check_op([(3, 4), (3, 4)], lambda a, b: lib(a).nn.CosineSimilarity(**args)(a, b))
    for args in ({}, dict(p=1.0), dict(p=3.0, eps=0.1, keepdim=True)):
        check_op([(3, 4), (3, 4)], lambda a, b: lib(a).nn.PairwiseDistance(**args)(a, b))


def test_softmin_matches_torch():
    check_op([(3, 4)], lambda x: lib(x).nn.functional.softmin(x, dim=1))
    check_op([(3, 4)], lambda x: lib(x).nn.functional.softmin(x, 0, dtype=lib(x).float64))
    with pytest.raises(TypeError, match="dim must be given"):
        tinyml.nn.functional.softmin(tinyml.ones(3))
