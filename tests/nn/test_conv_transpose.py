"""nn.ConvTranspose1d / ConvTranspose2d against torch.nn: weights copied from torch, forward and
backward, output_size, init bounds, repr, errors."""
import math

import numpy as np
import pytest
import torch

import tinyml
import tinyml.nn as nn
from tinyml.testing import assert_close

RED = {"kind": "reduction"}


def _pair(cls, *args, **kw):
    ours, theirs = getattr(nn, cls)(*args, **kw), getattr(torch.nn, cls)(*args, **kw)
    ours.load_state_dict({k: tinyml.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def _compare(ours, theirs, shape, **call):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    xt, tx = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = ours(xt, **call), theirs(tx, **call)
    assert tuple(y.shape) == tuple(ty.shape)
    assert_close(y, ty, **RED)
    g = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(np.float32)
    (y * tinyml.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    assert_close(xt.grad, tx.grad, **RED)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        assert_close(p.grad, q.grad, msg=name, **RED)


@pytest.mark.parametrize("args,kw,shape", [
    ((3, 4, 3), {}, (2, 3, 5, 6)),
    ((4, 6, (3, 2)), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2, "bias": False},
     (2, 4, 4, 5)),
    ((2, 3, 3), {"stride": (2, 1), "dilation": (1, 2), "padding": (0, 1)}, (2, 5, 4)),  # unbatched
])
def test_conv_transpose2d_module(args, kw, shape):
    _compare(*_pair("ConvTranspose2d", *args, **kw), shape)


@pytest.mark.parametrize("args,kw,shape", [
    ((3, 4, 3), {}, (2, 3, 7)),
    ((4, 2, 4), {"stride": 3, "padding": 1, "output_padding": 2, "groups": 2, "dilation": 2}, (2, 4, 5)),
])
def test_conv_transpose1d_module(args, kw, shape):
    _compare(*_pair("ConvTranspose1d", *args, **kw), shape)


def test_output_size_picks_output_padding():
    ours, theirs = _pair("ConvTranspose2d", 3, 2, 3, stride=2, padding=1)
    _compare(ours, theirs, (1, 3, 4, 4), output_size=(8, 7))
    _compare(ours, theirs, (1, 3, 4, 4), output_size=[1, 2, 8, 8])
    with pytest.raises(ValueError, match=r"requested an output size of \[9, 7\], but valid sizes range from "
                                         r"\[7, 7\] to \[8, 8\]"):
        ours(tinyml.randn(1, 3, 4, 4), output_size=(9, 7))


def test_upsampling_decoder_learns():
    """A conv encoder + ConvTranspose2d decoder fits an identity map on small images."""
    tinyml.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
                          nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1))
    x = tinyml.tensor(np.random.default_rng(0).random((16, 1, 6, 6)).astype(np.float32))
    opt = tinyml.optim.Adam(model.parameters(), lr=0.02)
    first = None
    for _ in range(80):
        loss = ((model(x) - x) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model(x).shape == x.shape and loss.item() < 0.25 * first


def test_init_bounds_and_repr():
    m = nn.ConvTranspose2d(4, 6, (3, 2), groups=2, stride=2, output_padding=1)
    assert tuple(m.weight.shape) == (4, 3, 3, 2) and tuple(m.bias.shape) == (6,)
    bound = 1 / math.sqrt(3 * 3 * 2)  # fan_in = out/groups * prod(k), as torch's
    assert np.abs(m.weight.detach().numpy()).max() <= bound and np.abs(m.bias.detach().numpy()).max() <= bound
    assert repr(m) == repr(torch.nn.ConvTranspose2d(4, 6, (3, 2), groups=2, stride=2, output_padding=1))
    with pytest.raises(ValueError, match="integer padding"):
        nn.ConvTranspose2d(2, 2, 3, padding="same")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.ConvTranspose1d(3, 4, 3, groups=2)
