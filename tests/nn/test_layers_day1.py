"""First-day layers against torch.nn: Dropout1d/Dropout2d (channel-wise), PReLU, Embedding's max_norm,
and Conv1d/Conv2d with dilation and groups as modules."""
import warnings

import numpy as np
import pytest
import torch
from helpers import check_op

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F
from tinyml.testing import assert_close, gradcheck


def _state_from_torch(ours, theirs):
    ours.load_state_dict({k: tinyml.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})


# -- Dropout1d / Dropout2d -------------------------------------------------------------------------
@pytest.mark.parametrize("fn,shape", [(F.dropout1d, (64, 32, 5)), (F.dropout1d, (32, 7)),
                                      (F.dropout2d, (64, 32, 3, 4))])
def test_channel_dropout_zeroes_whole_channels(fn, shape):
    tinyml.manual_seed(0)
    p = 0.3
    x = tinyml.tensor(np.random.default_rng(0).random(shape).astype(np.float32) + 1.0, requires_grad=True)
    y = fn(x, p, training=True)
    ratio = y.detach().numpy() / x.detach().numpy()
    channels = shape[:2] if len(shape) > 2 else (1, shape[0])  # an unbatched (C, L) is one sample
    per_element = ratio.reshape(channels + (-1,))
    per_channel = per_element[..., 0]
    assert np.allclose(per_element, per_channel[..., None])  # one draw per (sample, channel)
    kept = np.isclose(per_channel, 1 / (1 - p))
    assert np.all(kept | (per_channel == 0))  # zeroed, or scaled by 1 / (1 - p)
    assert abs(1 - kept.mean() - p) < 0.06
    y.backward(tinyml.ones(*shape))
    assert np.allclose(x.grad.numpy(), ratio)  # the gradient is the same mask


def test_channel_dropout_eval_p0_p1_and_modules():
    x = tinyml.randn(2, 3, 4, 4)
    x3 = x[0]
    assert F.dropout2d(x, 0.5, training=False) is x and F.dropout1d(x3, 0.0) is x3
    np.testing.assert_array_equal(F.dropout2d(x, 1.0).numpy(), np.zeros((2, 3, 4, 4)))
    m = nn.Dropout2d(0.4)
    assert repr(m) == repr(torch.nn.Dropout2d(0.4)) and repr(nn.Dropout1d()) == repr(torch.nn.Dropout1d())
    m.eval()
    np.testing.assert_array_equal(m(x).numpy(), x.numpy())
    m.train()
    tinyml.manual_seed(3)
    a = m(x).numpy()
    tinyml.manual_seed(3)
    np.testing.assert_array_equal(a, m(x).numpy())  # seeded


def test_channel_dropout_inplace():
    tinyml.manual_seed(1)
    x = tinyml.ones(4, 8, 3)
    y = F.dropout1d(x, 0.5, inplace=True)
    assert y is x and set(np.unique(x.numpy())) <= {0.0, 2.0}


def test_channel_dropout_errors_and_warnings():
    with pytest.raises(RuntimeError, match=r"dropout1d: Expected 2D or 3D input, but received a 4D input"):
        F.dropout1d(tinyml.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        F.dropout2d(tinyml.randn(2, 3, 4, 5), 1.5)
    with pytest.raises(ValueError, match="between 0 and 1, but got -0.1"):
        nn.Dropout1d(-0.1)
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        y = F.dropout2d(tinyml.ones(2, 3, 4), 0.5)
    assert np.allclose(y.numpy(), y.numpy()[:, :, :1])  # (N, C, L): channel-wise over L
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.dropout2d(tinyml.ones(2, 3, 4, 4), 0.5)


# -- PReLU -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_parameters,shape", [(1, (4, 5)), (3, (2, 3, 4)), (3, (2, 3, 2, 2)), (1, (7,))])
def test_prelu_against_torch(num_parameters, shape):
    ours, theirs = nn.PReLU(num_parameters), torch.nn.PReLU(num_parameters)
    assert ours.weight.detach().numpy().tolist() == theirs.weight.detach().numpy().tolist()  # init 0.25
    check_op([shape, (num_parameters,)], lambda x, w: F.prelu(x, w),
             lambda x, w: torch.nn.functional.prelu(x, w))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x[..., 0] = 0.0  # the kink: both take the slope branch at 0
    xt, tx = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours(xt).sum().backward()
    theirs(tx).sum().backward()
    assert_close(xt.grad, tx.grad)
    assert_close(ours.weight.grad, theirs.weight.grad, kind="reduction")


def test_prelu_init_gradcheck_and_errors():
    m = nn.PReLU(2, init=-0.5, dtype=tinyml.float64)
    assert m.weight.dtype == tinyml.float64 and m.weight.detach().numpy().tolist() == [-0.5, -0.5]
    assert repr(m) == "PReLU(num_parameters=2)"
    x = tinyml.tensor(np.random.default_rng(1).standard_normal((3, 2, 2)), requires_grad=True)
    w = tinyml.tensor([0.1, -0.3], dtype=tinyml.float64, requires_grad=True)
    assert gradcheck(lambda x, w: F.prelu(x, w), [x, w])
    with pytest.raises(RuntimeError, match=r"parameter numbers = 2 and channel size = 3"):
        F.prelu(tinyml.randn(4, 3), tinyml.randn(2))


# -- Embedding max_norm ----------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_embedding_max_norm_renormalises_looked_up_rows(norm_type):
    theirs = torch.nn.Embedding(6, 4, max_norm=1.0, norm_type=norm_type)
    with torch.no_grad():
        theirs.weight.mul_(3)
    ours = nn.Embedding(6, 4, max_norm=1.0, norm_type=norm_type)
    _state_from_torch(ours, theirs)
    ids = [[0, 2, 2], [5, 0, 1]]
    y, ty = ours(tinyml.tensor(ids)), theirs(torch.tensor(ids))
    assert_close(y, ty)
    assert_close(ours.weight, theirs.weight)  # rows 0, 1, 2, 5 rescaled in place, 3 and 4 untouched
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    assert_close(ours.weight.grad, theirs.weight.grad, kind="reduction")


def test_embedding_max_norm_from_pretrained_and_repr():
    w = np.array([[3.0, 4.0], [0.3, 0.4]], np.float32)
    e = nn.Embedding.from_pretrained(tinyml.tensor(w), max_norm=2.0)
    out = e(tinyml.tensor([0, 1])).numpy()
    assert np.allclose(out, [[1.2, 1.6], [0.3, 0.4]], atol=1e-6)
    assert repr(e) == repr(torch.nn.Embedding.from_pretrained(torch.tensor(w), max_norm=2.0))
    assert repr(nn.Embedding(3, 2, max_norm=1, norm_type=1.0)) == repr(torch.nn.Embedding(3, 2, max_norm=1,
                                                                                           norm_type=1.0))


# -- Conv1d / Conv2d dilation and groups, as modules ------------------------------------------------
@pytest.mark.parametrize("cls,args,kw,shape", [
    ("Conv2d", (4, 6, 3), {"dilation": 2, "groups": 2, "padding": 2}, (2, 4, 9, 8)),
    ("Conv2d", (6, 6, (3, 2)), {"dilation": (2, 1), "groups": 6, "stride": (1, 2)}, (1, 6, 8, 7)),
    ("Conv1d", (4, 8, 3), {"dilation": 3, "groups": 4, "padding": "same"}, (2, 4, 11)),
])
def test_conv_modules_with_dilation_and_groups(cls, args, kw, shape):
    ours, theirs = getattr(nn, cls)(*args, **kw), getattr(torch.nn, cls)(*args, **kw)
    _state_from_torch(ours, theirs)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    xt, tx = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = ours(xt), theirs(tx)
    assert_close(y, ty, kind="reduction")
    y.sum().backward()
    ty.sum().backward()
    assert_close(xt.grad, tx.grad, kind="reduction")
    assert_close(ours.weight.grad, theirs.weight.grad, kind="reduction")
