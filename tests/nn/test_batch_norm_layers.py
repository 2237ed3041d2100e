"""nn.BatchNorm1d/2d/3d against torch.nn: training steps, running statistics, eval mode, momentum=None,
track_running_stats=False, affine=False, state_dict interchange, float64; and nn.utils.fusion."""
import numpy as np
import pytest
import torch

import tinyml
import tinyml.nn as nn
from tinyml.testing import assert_close

RED = {"kind": "reduction"}


def _t(a, dtype=None):
    return tinyml.tensor(np.asarray(a), dtype=dtype)


def _load_torch_state(module, torch_module):
    state = torch_module.state_dict()
    module.load_state_dict({k: tinyml.tensor(v.detach().numpy()) for k, v in state.items()})


def _steps(ours, theirs, shape, steps=3, dtype=np.float32, train=True):
    """Run both modules on the same inputs (in their current modes); compare outputs and input gradients."""
    rng = np.random.default_rng(0)
    for step in range(steps):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        xt = _t(x).requires_grad_(True)
        tx = torch.tensor(x, requires_grad=True)
        y, ty = ours(xt), theirs(tx)
        assert_close(y, ty, **RED)
        g = rng.standard_normal(shape).astype(dtype)
        (y * _t(g)).sum().backward()
        (ty * torch.tensor(g)).sum().backward()
        assert_close(xt.grad, tx.grad, **RED)
    for name in ("running_mean", "running_var"):
        if getattr(theirs, name) is not None:
            assert_close(getattr(ours, name), getattr(theirs, name), **RED)
    if theirs.num_batches_tracked is not None:
        assert ours.num_batches_tracked.item() == theirs.num_batches_tracked.item()
    for name in ("weight", "bias"):
        if getattr(theirs, name) is not None:
            assert_close(getattr(ours, name).grad, getattr(theirs, name).grad, **RED)


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (6, 4)), ("BatchNorm1d", (5, 4, 3)),
                                       ("BatchNorm2d", (3, 4, 5, 6)), ("BatchNorm3d", (2, 4, 3, 2, 3))])
@pytest.mark.parametrize("kw", [{}, {"momentum": None}, {"momentum": 0.3, "eps": 1e-3}, {"affine": False},
                                {"track_running_stats": False}, {"bias": False}])
def test_train_then_eval_matches_torch(cls, shape, kw):
    ours, theirs = getattr(nn, cls)(4, **kw), getattr(torch.nn, cls)(4, **kw)
    _load_torch_state(ours, theirs)
    _steps(ours, theirs, shape)
    ours.eval(), theirs.eval()
    _steps(ours, theirs, shape, steps=1)


def test_float64_module():
    ours, theirs = nn.BatchNorm2d(3, dtype=tinyml.float64), torch.nn.BatchNorm2d(3, dtype=torch.float64)
    assert ours.running_mean.dtype == tinyml.float64 and ours.num_batches_tracked.dtype == tinyml.int64
    _steps(ours, theirs, (2, 3, 4, 4), dtype=np.float64)


def test_state_dict_keys_and_loading_from_torch():
    theirs = torch.nn.BatchNorm2d(5)
    with torch.no_grad():
        for _ in range(3):
            theirs(torch.randn(4, 5, 3, 3) * 2 + 1)
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
    ours = nn.BatchNorm2d(5)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _load_torch_state(ours, theirs)
    assert ours.num_batches_tracked.item() == 3 and ours.num_batches_tracked.dtype == tinyml.int64
    ours.eval(), theirs.eval()
    x = np.random.default_rng(1).standard_normal((2, 5, 4, 4)).astype(np.float32)
    assert_close(ours(_t(x)), theirs(torch.tensor(x)), **RED)


def test_state_dict_without_counter_loads_as_torch():
    """A checkpoint from before num_batches_tracked: the counter stays, the caller's dict is untouched."""
    ours = nn.BatchNorm1d(3)
    ours(tinyml.randn(4, 3))
    old = {k: v for k, v in nn.BatchNorm1d(3).state_dict().items() if k != "num_batches_tracked"}
    result = ours.load_state_dict(old)
    assert result.missing_keys == [] and "num_batches_tracked" not in old
    assert ours.num_batches_tracked.item() == 1
    untracked = nn.BatchNorm1d(3, track_running_stats=False)
    assert list(untracked.state_dict()) == ["weight", "bias"]
    with pytest.raises(RuntimeError, match="Unexpected key"):
        untracked.load_state_dict(nn.BatchNorm1d(3).state_dict())


def test_momentum_none_is_the_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None)
    xs = [np.random.default_rng(i).standard_normal((8, 2)).astype(np.float32) + i for i in range(4)]
    for x in xs:
        bn(_t(x))
    assert_close(bn.running_mean, np.mean([x.mean(0) for x in xs], axis=0), **RED)
    assert_close(bn.running_var, np.mean([x.var(0, ddof=1) for x in xs], axis=0), **RED)


def test_eval_without_running_stats_uses_the_batch():
    ours = nn.BatchNorm1d(3, track_running_stats=False).eval()
    theirs = torch.nn.BatchNorm1d(3, track_running_stats=False).eval()
    x = np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)
    assert_close(ours(_t(x)), theirs(torch.tensor(x)), **RED)


def test_input_dims_and_single_value_errors():
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input"):
        nn.BatchNorm2d(3)(tinyml.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input"):
        nn.BatchNorm1d(3)(tinyml.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"per channel when training, got input size \[1, 3"):
        nn.BatchNorm1d(3)(tinyml.randn(1, 3))
    nn.BatchNorm1d(3).eval()(tinyml.randn(1, 3))  # one sample is fine in eval mode


def test_repr_and_reset_and_to():
    bn = nn.BatchNorm2d(4, momentum=None, affine=False)
    assert repr(bn) == repr(torch.nn.BatchNorm2d(4, momentum=None, affine=False))
    bn(tinyml.randn(3, 4, 2, 2) + 5)
    bn.reset_running_stats()
    assert bn.running_mean.numpy().tolist() == [0] * 4 and bn.num_batches_tracked.item() == 0
    bn.to(tinyml.float64)
    assert bn.running_var.dtype == tinyml.float64 and bn.num_batches_tracked.dtype == tinyml.int64


def test_learns_in_a_small_cnn():
    tinyml.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 2))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 1, 4, 4)).astype(np.float32)
    y = (x[:, 0, :2].sum((1, 2)) > x[:, 0, 2:].sum((1, 2))).astype(np.int64)
    opt = tinyml.optim.SGD(model.parameters(), lr=0.2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(_t(x)), _t(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2


@pytest.mark.parametrize("conv_kw", [{"bias": True}, {"bias": False, "groups": 2, "stride": 2, "padding": 1}])
def test_fuse_conv_bn_eval_same_outputs(conv_kw):
    tinyml.manual_seed(1)
    conv, bn = nn.Conv2d(4, 6, 3, **conv_kw), nn.BatchNorm2d(6)
    for _ in range(3):
        bn(conv(tinyml.randn(4, 4, 7, 7) * 2 + 1))
    with tinyml.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    with pytest.raises(AssertionError, match="Fusion only for eval"):
        nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
    conv.eval(), bn.eval()
    fused = nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
    assert isinstance(fused, nn.Conv2d) and fused is not conv and fused.bias is not None
    x = tinyml.randn(2, 4, 7, 7)
    assert_close(fused(x), bn(conv(x)), rtol=1e-5, atol=1e-5)
    assert fused.weight.requires_grad and fused.weight is not conv.weight


def test_fuse_linear_bn_eval_and_weights():
    from tinyml.nn.utils.fusion import fuse_linear_bn_eval

    lin, bn = nn.Linear(5, 3), nn.BatchNorm1d(3)
    bn(lin(tinyml.randn(8, 5) * 3))
    lin.eval(), bn.eval()
    x = tinyml.randn(4, 5)
    assert_close(fuse_linear_bn_eval(lin, bn)(x), bn(lin(x)), rtol=1e-5, atol=1e-5)
    with pytest.raises(AssertionError, match="bn.running_mean and bn.running_var must not be None"):
        nn.utils.fuse_linear_bn_eval(lin, nn.BatchNorm1d(3, track_running_stats=False).eval())
