"""nn.Conv1d / Conv2d / MaxPool2d / AvgPool2d / AdaptiveAvgPool2d / Upsample vs torch.nn."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml import nn
from tinyml.testing import assert_close


def _copy_params(mine, theirs):
    mine.weight.data = tinyml.tensor(theirs.weight.detach().numpy())
    if theirs.bias is not None:
        mine.bias.data = tinyml.tensor(theirs.bias.detach().numpy())


@pytest.mark.parametrize("cls,tcls,args,kw,shape", [
    (nn.Conv2d, torch.nn.Conv2d, (4, 6, 3), {"stride": 2, "padding": 1, "groups": 2}, (2, 4, 9, 8)),
    (nn.Conv2d, torch.nn.Conv2d, (3, 5, (2, 3)), {"padding": "same", "bias": False}, (2, 3, 7, 6)),
    (nn.Conv1d, torch.nn.Conv1d, (4, 4, 5), {"dilation": 2, "groups": 4}, (3, 4, 20)),
])
def test_conv_layers_match_torch(cls, tcls, args, kw, shape):
    torch.manual_seed(0)
    theirs = tcls(*args, **kw)
    mine = cls(*args, **kw)
    assert tuple(mine.weight.shape) == tuple(theirs.weight.shape)
    assert (mine.bias is None) == (theirs.bias is None)
    _copy_params(mine, theirs)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y, ty = mine(tinyml.tensor(x)), theirs(torch.tensor(x))
    assert_close(y, ty, kind="reduction")
    y.sum().backward()
    ty.sum().backward()
    assert_close(mine.weight.grad, theirs.weight.grad, kind="reduction")


def test_conv_default_init_bounds():
    tinyml.manual_seed(0)
    m = nn.Conv2d(8, 16, 3, groups=2)
    bound = 1 / np.sqrt(4 * 9)  # fan_in = in/groups * k * k
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound  # U(-a, a) has std a / sqrt(3)
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]


def test_conv_layer_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(NotImplementedError, match="padding_mode='reflect'"):
        nn.Conv2d(3, 6, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="strided"):
        nn.Conv1d(3, 6, 3, stride=2, padding="same")


@pytest.mark.parametrize("mine,theirs", [
    (nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
    (nn.MaxPool2d(2, ceil_mode=True), torch.nn.MaxPool2d(2, ceil_mode=True)),
    (nn.AvgPool2d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
    (nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3))),
    (nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
    (nn.Upsample(size=(9, 4), mode="bilinear", align_corners=True),
     torch.nn.Upsample(size=(9, 4), mode="bilinear", align_corners=True)),
])
def test_pool_and_upsample_layers(mine, theirs):
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 7)).astype(np.float32)
    assert_close(mine(tinyml.tensor(x)), theirs(torch.tensor(x)), kind="reduction")
    assert type(mine).__name__ in repr(mine)
