"""causal_conv1d and causal_conv1d_update (ops/causal_conv1d.py) against PyTorch (F.conv1d with
groups=D, padding=K-1, sliced to the first L outputs, then SiLU), forward and backward, on every
backend of the family (backend_device: the numpy reference, the C++ kernels, the Triton kernels)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import assert_close, gradcheck

RED = {"kind": "reduction"}
backend_device = backend_device_fixture()


def torch_causal_conv1d(x, weight, bias=None, activation=None):
    """Dao's causal_conv1d_ref: a depthwise conv1d padded by K - 1 on both sides, cut to L outputs."""
    k_width = weight.shape[1]
    y = TF.conv1d(x, weight[:, None, :], bias, padding=k_width - 1, groups=x.shape[1])[..., :x.shape[2]]
    return TF.silu(y) if activation else y


def torch_causal_conv1d_left_padded(x, weight, bias=None, activation=None):
    """The same with the zeros padded on the left only: no outputs past L exist, so their zero
    gradients do not meet an inf in x at the end of a row (0 * inf = NaN in conv1d's backward)."""
    y = TF.conv1d(TF.pad(x, (weight.shape[1] - 1, 0)), weight[:, None, :], bias, groups=x.shape[1])
    return TF.silu(y) if activation else y


def torch_update(x, conv_state, weight, bias=None, activation=None):
    """Dao's causal_conv1d_update_ref: y from the last K of cat(state, x); the state keeps the last S."""
    s_len, k_width = conv_state.shape[2], weight.shape[1]
    full = torch.cat([conv_state, x[:, :, None]], dim=2)
    y = (full[:, :, s_len + 1 - k_width:] * weight).sum(-1)
    y = y + bias if bias is not None else y
    conv_state.copy_(full[:, :, 1:].detach())
    return TF.silu(y) if activation else y


SHAPES = [(2, 3, 7, 4), (1, 5, 2, 4), (3, 2, 1, 2), (2, 4, 9, 3), (1, 6, 3, 3), (2, 3, 5, 1)]


@pytest.mark.parametrize("bt,d,length,k", SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("activation", [None, "silu"])
def test_causal_conv1d_matches_torch(backend_device, bt, d, length, k, activation):
    def fn(f):
        return lambda x, w, b: f(x, w, b, activation=activation)

    check_op([(bt, d, length), (d, k), (d,)], fn(tinyml.causal_conv1d), fn(torch_causal_conv1d),
             device=backend_device, **RED)
    check_op([(bt, d, length), (d, k)], lambda x, w: tinyml.causal_conv1d(x, w, activation=activation),
             lambda x, w: torch_causal_conv1d(x, w, activation=activation), device=backend_device, **RED)


@pytest.mark.parametrize("activation", [None, "swish"])
def test_causal_conv1d_noncontiguous_and_float64(backend_device, activation):
    def fn(f):
        return lambda x, w, b: f(x, w, b, activation=activation and "silu" if f is torch_causal_conv1d
                                 else activation)

    check_op([(2, 5, 11), (5, 4), (5,)], fn(tinyml.causal_conv1d), fn(torch_causal_conv1d),
             noncontiguous=True, device=backend_device, **RED)
    check_op([(3, 7, 13), (7, 3), (7,)], fn(tinyml.causal_conv1d), fn(torch_causal_conv1d),
             dtype="float64", device=backend_device, **RED)


def test_causal_conv1d_longer_sequences(backend_device):
    """Lengths past a Triton time block (128); on the cpu enough rows to run the C++ kernels' OpenMP
    loops (over 32768 elements), an odd channel count (few on cuda: Triton's interpreter is slow)."""
    d = 3 if backend_device == "cuda" else 121
    check_op([(2, d, 150), (d, 4), (d,)], lambda x, w, b: tinyml.causal_conv1d(x, w, b, "silu"),
             lambda x, w, b: torch_causal_conv1d(x, w, b, "silu"), device=backend_device, **RED)


def test_causal_conv1d_nonfinite_as_torch(backend_device):
    """NaN and inf in x reach the outputs and gradients PyTorch's left-padded conv reaches; a NaN
    weight taps only real inputs (the padding adds no 0 * NaN), as in PyTorch's padded conv1d."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    x[0, 0, 2], x[1, 2, 5], x[0, 1, 7] = np.nan, np.inf, -np.inf
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    for act in (None, "silu"):
        check_op(None, lambda x, w, b, a=act: tinyml.causal_conv1d(x, w, b, a),
                 lambda x, w, b, a=act: torch_causal_conv1d_left_padded(x, w, b, a), inputs=[x, w, b],
                 device=backend_device, **RED)
    w_nan = w.copy()
    w_nan[1, 0] = np.nan
    xf = rng.standard_normal((2, 3, 8)).astype(np.float32)
    dev = backend_device
    ours = tinyml.causal_conv1d(tinyml.tensor(xf, device=dev), tinyml.tensor(w_nan, device=dev))
    want = torch_causal_conv1d(torch.tensor(xf), torch.tensor(w_nan))
    np.testing.assert_allclose(ours.cpu().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)  # NaN where torch's
    assert not np.isnan(ours.cpu().numpy()[:, 1, :3]).any()


def test_causal_conv1d_gradcheck(kernels):
    rng = np.random.default_rng(1)
    ts = [tinyml.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3, 6), (3, 4), (3,))]
    assert gradcheck(lambda x, w, b: tinyml.causal_conv1d(x, w, b, "silu"), ts)
    assert gradcheck(lambda x, w: tinyml.causal_conv1d(x, w), ts[:2])


@pytest.mark.parametrize("s_extra", [-1, 0, 2])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_causal_conv1d_update_steps_equal_the_full_conv(backend_device, s_extra, activation):
    """Stepping through a sequence with a zero state of length S = K + s_extra gives the full
    causal conv's outputs, and the state ends as the last S inputs."""
    rng = np.random.default_rng(2)
    bt, d, length, k = 2, 5, 9, 4
    x = rng.standard_normal((bt, d, length)).astype(np.float32)
    w, b = rng.standard_normal((d, k)).astype(np.float32), rng.standard_normal(d).astype(np.float32)
    dev = backend_device
    tx, tw, tb = (tinyml.tensor(a, device=dev) for a in (x, w, b))
    full = tinyml.causal_conv1d(tx, tw, tb, activation).cpu().numpy()
    state = tinyml.zeros(bt, d, k + s_extra, device=dev)
    steps = [tinyml.causal_conv1d_update(tx[:, :, t], state, tw, tb, activation).cpu().numpy()
             for t in range(length)]
    assert_close(np.stack(steps, axis=2), full, **RED)
    np.testing.assert_array_equal(state.cpu().numpy(), x[:, :, length - (k + s_extra):])


def test_causal_conv1d_update_matches_torch_with_gradients(backend_device):
    rng = np.random.default_rng(4)
    bt, d, k = 3, 4, 4
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((bt, d), (d, k), (d,)))
    state0 = rng.standard_normal((bt, d, k)).astype(np.float32)
    state_t = torch.tensor(state0)
    state = tinyml.tensor(state0, device=backend_device)
    check_op(None, lambda x, w, b: tinyml.causal_conv1d_update(x, state, w, b, "silu"),
             lambda x, w, b: torch_update(x, state_t, w, b, "silu"), inputs=[x, w, b],
             device=backend_device, **RED)
    np.testing.assert_array_equal(state.cpu().numpy(), state_t.numpy())
    # a non-contiguous state (a view) is written through
    base = tinyml.tensor(np.ascontiguousarray(state0.transpose(0, 2, 1)), device=backend_device)
    view = base.transpose(1, 2)
    y = tinyml.causal_conv1d_update(tinyml.tensor(x, device=backend_device), view,
                                    tinyml.tensor(w, device=backend_device), None)
    want = torch_update(torch.tensor(x), torch.tensor(state0), torch.tensor(w))
    assert_close(y.cpu(), want, **RED)
    np.testing.assert_array_equal(base.cpu().numpy().transpose(0, 2, 1)[:, :, -1], x)


def test_causal_conv1d_update_gradcheck():
    rng = np.random.default_rng(5)
    state = tinyml.tensor(rng.standard_normal((2, 3, 3)))
    ts = [tinyml.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3), (3, 3), (3,))]
    snapshot = state.numpy().copy()

    def step(x, w, b):
        state.numpy()[...] = snapshot  # every evaluation starts from the same state
        return tinyml.causal_conv1d_update(x, state, w, b, "silu")

    assert gradcheck(step, ts)


def test_causal_conv1d_errors():
    x, w = tinyml.randn(2, 4, 6), tinyml.randn(4, 3)
    with pytest.raises(ValueError, match=r"x must be a \(batch, dim, seqlen\) Tensor, got \(4, 6\)"):
        tinyml.causal_conv1d(tinyml.randn(4, 6), w)
    with pytest.raises(ValueError, match=r"weight has shape \(5, 3\), expected \(4, width\).*\(2, 4, 6\)"):
        tinyml.causal_conv1d(x, tinyml.randn(5, 3))
    with pytest.raises(ValueError, match=r"weight has shape \(4, 1, 3\)"):
        tinyml.causal_conv1d(x, tinyml.randn(4, 1, 3))
    with pytest.raises(ValueError, match=r"bias has shape \(3,\), expected \(4,\)"):
        tinyml.causal_conv1d(x, w, tinyml.randn(3))
    with pytest.raises(ValueError, match="activation must be None, 'silu' or 'swish', got 'relu'"):
        tinyml.causal_conv1d(x, w, activation="relu")
    with pytest.raises(TypeError, match="weight has dtype tinyml.float64 but x has dtype tinyml.float32"):
        tinyml.causal_conv1d(x, w.double())
    with pytest.raises(TypeError, match="x has dtype tinyml.int64"):
        tinyml.causal_conv1d(tinyml.zeros(2, 4, 6, dtype=tinyml.int64), w)
    state = tinyml.zeros(2, 4, 3)
    with pytest.raises(ValueError, match=r"conv_state has shape \(2, 4, 1\), expected \(2, 4, S\) with S >= "
                                         r"width - 1 = 2"):
        tinyml.causal_conv1d_update(tinyml.randn(2, 4), tinyml.zeros(2, 4, 1), w)
    with pytest.raises(ValueError, match=r"conv_state has shape \(3, 4, 3\)"):
        tinyml.causal_conv1d_update(tinyml.randn(2, 4), tinyml.zeros(3, 4, 3), w)
    with pytest.raises(ValueError, match=r"x must be a \(batch, dim\) Tensor, got \(2, 4, 1\)"):
        tinyml.causal_conv1d_update(tinyml.randn(2, 4, 1), state, w)
    with pytest.raises(RuntimeError, match="conv_state .* requires grad"):
        tinyml.causal_conv1d_update(tinyml.randn(2, 4), tinyml.zeros(2, 4, 3, requires_grad=True), w)


@pytest.mark.parametrize("shape", [(2, 3, 0), (2, 0, 5), (0, 3, 4)])
def test_causal_conv1d_empty(backend_device, shape):
    """No time steps, channels or batch (PyTorch's conv1d refuses the first two): empty outputs and
    gradients, zero weight and bias gradients."""
    x, w, b = (tinyml.randn(*s, device=backend_device, requires_grad=True) for s in (shape, (shape[1], 4),
                                                                                      (shape[1],)))
    y = tinyml.causal_conv1d(x, w, b, "silu")
    assert tuple(y.shape) == shape
    y.sum().backward()
    assert tuple(x.grad.shape) == shape
    np.testing.assert_array_equal(w.grad.cpu().numpy(), np.zeros((shape[1], 4), np.float32))
    np.testing.assert_array_equal(b.grad.cpu().numpy(), np.zeros(shape[1], np.float32))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_causal_conv1d_float32_rows_every_width(backend_device, k, activation):
    """The float32 C++ rows run sixteen steps per vector after K-1 scalar steps and a scalar tail:
    lengths below, at and past sixteen (1, 3, 16, 19, 40), widths 1..5 (5 takes the runtime-width
    loop), and NaN / inf inside the vector body, against PyTorch's left-padded conv."""
    if backend_device == "cuda" and k != 4:
        pytest.skip("Triton's interpreter: one width")
    rng = np.random.default_rng(k)
    for length in (1, 3, 16, 19, 40):
        x = rng.standard_normal((2, 3, length)).astype(np.float32)
        if length == 40:
            x[0, 1, 20], x[1, 2, 33], x[1, 0, 17] = np.nan, np.inf, -np.inf
        w = rng.standard_normal((3, k)).astype(np.float32)
        b = rng.standard_normal(3).astype(np.float32)
        ours = tinyml.causal_conv1d(*(tinyml.tensor(a, device=backend_device) for a in (x, w, b)), activation)
        want = torch_causal_conv1d_left_padded(*(torch.tensor(a) for a in (x, w, b)), activation)
        assert_close(ours.cpu(), want, kind="reduction", msg=f"L={length}:")
