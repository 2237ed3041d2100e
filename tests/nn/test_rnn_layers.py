"""nn.RNN/LSTM/GRU, the cells and nn.utils.rnn against torch with copied weights: outputs, h_n/c_n,
gradients of inputs, h0/c0 and every weight; num_layers, bidirectional, batch_first, bias, relu,
unbatched inputs, packed sequences (sorted and enforce_sorted=False), dropout between layers."""

import numpy as np
import pytest
import torch

import tinyml
import tinyml.nn as nn
from tinyml.nn.utils import rnn as U
from tinyml.testing import assert_close

RED = {"kind": "reduction"}


def _pair(cls, *args, **kwargs):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, cls)(*args, **kwargs)
    ours = getattr(nn, cls)(*args, **kwargs)
    state = theirs.state_dict()
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict({k: tinyml.tensor(v.numpy()) for k, v in state.items()})
    return ours, theirs


def _leaves(shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return [tinyml.tensor(a).requires_grad_(True) for a in arrays], [
        torch.tensor(a, requires_grad=True) for a in arrays
    ]


def _flat(out):
    """(output, h) or (output, (h, c)) -> list of tensors; a PackedSequence contributes its data."""
    y, h = out
    y = y.data if isinstance(y, (U.PackedSequence, torch.nn.utils.rnn.PackedSequence)) else y
    return [y] + (list(h) if isinstance(h, tuple) else [h])


def _backward_and_compare(ours_out, theirs_out, ours_leaves, theirs_leaves, ours, theirs):
    a, b = _flat(ours_out), _flat(theirs_out)
    rng = np.random.default_rng(7)
    loss_a = loss_b = 0
    for x, y in zip(a, b):
        assert_close(x, y.detach(), **RED)
        w = rng.standard_normal(tuple(y.shape)).astype(np.float32)
        loss_a, loss_b = loss_a + (x * tinyml.tensor(w)).sum(), loss_b + (y * torch.tensor(w)).sum()
    loss_a.backward()
    loss_b.backward()
    for x, y in zip(ours_leaves, theirs_leaves):
        assert_close(x.grad, y.grad, **RED)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, tparams[name].grad, **RED)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_layers_match_torch(cls, bidirectional, batch_first):
    ours, theirs = _pair(cls, 4, 6, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    T, B, D = 5, 3, 2 if bidirectional else 1
    shapes = [(B, T, 4) if batch_first else (T, B, 4), (2 * D, B, 6)] + (
        [(2 * D, B, 6)] if cls == "LSTM" else []
    )
    xs, txs = _leaves(shapes)
    hx = (xs[1], xs[2]) if cls == "LSTM" else xs[1]
    thx = (txs[1], txs[2]) if cls == "LSTM" else txs[1]
    _backward_and_compare(ours(xs[0], hx), theirs(txs[0], thx), xs, txs, ours, theirs)


@pytest.mark.parametrize("options", [{"bias": False}, {"nonlinearity": "relu"}, {"num_layers": 3}])
def test_rnn_options_and_default_state(options):
    ours, theirs = _pair("RNN", 3, 5, **options)
    xs, txs = _leaves([(4, 2, 3)])
    _backward_and_compare(ours(xs[0]), theirs(txs[0]), xs, txs, ours, theirs)


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_unbatched_input(cls):
    ours, theirs = _pair(cls, 3, 4, bidirectional=True)
    shapes = [(5, 3), (2, 4)] + ([(2, 4)] if cls == "LSTM" else [])
    xs, txs = _leaves(shapes)
    hx = (xs[1], xs[2]) if cls == "LSTM" else xs[1]
    thx = (txs[1], txs[2]) if cls == "LSTM" else txs[1]
    _backward_and_compare(ours(xs[0], hx), theirs(txs[0], thx), xs, txs, ours, theirs)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequences_match_torch(cls, enforce_sorted):
    ours, theirs = _pair(cls, 3, 4, num_layers=2, bidirectional=True, batch_first=True)
    lengths = [5, 3, 3, 1] if enforce_sorted else [3, 5, 1, 3]
    shapes = [(4, 5, 3), (4, 4, 4)] + ([(4, 4, 4)] if cls == "LSTM" else [])
    xs, txs = _leaves(shapes)
    packed = U.pack_padded_sequence(xs[0], lengths, batch_first=True, enforce_sorted=enforce_sorted)
    tpacked = torch.nn.utils.rnn.pack_padded_sequence(
        txs[0], lengths, batch_first=True, enforce_sorted=enforce_sorted
    )
    assert_close(packed.data, tpacked.data.detach())
    assert packed.batch_sizes.tolist() == tpacked.batch_sizes.tolist()
    hx = (xs[1], xs[2]) if cls == "LSTM" else xs[1]
    thx = (txs[1], txs[2]) if cls == "LSTM" else txs[1]
    out, tout = ours(packed, hx), theirs(tpacked, thx)
    padded, lens = U.pad_packed_sequence(out[0], batch_first=True, total_length=6)
    tpadded, tlens = torch.nn.utils.rnn.pad_packed_sequence(tout[0], batch_first=True, total_length=6)
    assert lens.tolist() == tlens.tolist() == lengths
    assert_close(padded, tpadded.detach(), **RED)
    _backward_and_compare(out, tout, xs, txs, ours, theirs)


def test_pad_and_pack_sequence_match_torch():
    xs, txs = _leaves([(4, 2), (2, 2), (3, 2)])
    for kw in ({}, {"batch_first": True, "padding_value": -1.0}, {"padding_side": "left"}):
        assert_close(U.pad_sequence(xs, **kw), torch.nn.utils.rnn.pad_sequence(txs, **kw).detach())
    p = U.pack_sequence(xs, enforce_sorted=False)
    tp = torch.nn.utils.rnn.pack_sequence(txs, enforce_sorted=False)
    assert_close(p.data, tp.data.detach())
    assert p.sorted_indices.tolist() == tp.sorted_indices.tolist()
    assert p.unsorted_indices.tolist() == tp.unsorted_indices.tolist()
    padded, lengths = U.pad_packed_sequence(p, padding_value=9.0)
    tpadded, tlengths = torch.nn.utils.rnn.pad_packed_sequence(tp, padding_value=9.0)
    assert_close(padded, tpadded.detach())
    assert lengths.tolist() == tlengths.tolist()
    (
        padded * tinyml.tensor(np.arange(padded.numel(), dtype=np.float32).reshape(padded.shape))
    ).sum().backward()
    (tpadded * torch.arange(tpadded.numel(), dtype=torch.float32).reshape(tpadded.shape)).sum().backward()
    for x, tx in zip(xs, txs):
        assert_close(x.grad, tx.grad)


def test_packing_errors():
    x = tinyml.zeros((3, 2, 1))
    with pytest.raises(RuntimeError, match=r"sorted in decreasing order .*\[1, 3\]"):
        U.pack_padded_sequence(x, [1, 3])
    with pytest.raises(RuntimeError, match="greater than 0"):
        U.pack_padded_sequence(x, [2, 0])
    with pytest.raises(RuntimeError, match="batch_size, but got 3"):
        U.pack_padded_sequence(x, [3, 2, 1])
    with pytest.raises(ValueError, match="total_length=1 and max sequence length being 3"):
        U.pad_packed_sequence(U.pack_padded_sequence(x, [3, 2]), total_length=1)


@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch(cls, batched):
    ours, theirs = _pair(cls, 3, 5)
    B = (2,) if batched else ()
    shapes = [B + (3,), B + (5,)] + ([B + (5,)] if cls == "LSTMCell" else [])
    xs, txs = _leaves(shapes)
    hx = (xs[1], xs[2]) if cls == "LSTMCell" else xs[1]
    thx = (txs[1], txs[2]) if cls == "LSTMCell" else txs[1]
    out, tout = ours(xs[0], hx), theirs(txs[0], thx)
    out, tout = (out if isinstance(out, tuple) else (out,)), (tout if isinstance(tout, tuple) else (tout,))
    _backward_and_compare((out[0], out[1:]), (tout[0], tout[1:]), xs, txs, ours, theirs)
    h = ours(xs[0].detach())  # default zero state
    th = theirs(txs[0].detach())
    assert_close(h[0] if cls == "LSTMCell" else h, (th[0] if cls == "LSTMCell" else th).detach(), **RED)


def test_dropout_between_layers_and_eval():
    model = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = tinyml.randn(5, 2, 3)
    model.eval()
    assert_close(model(x)[0], model(x)[0])
    model.train()
    a, b = model(x)[0].detach().numpy(), model(x)[0].detach().numpy()
    assert not np.allclose(a, b)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.2)


def test_errors_name_the_values():
    lstm = nn.LSTM(3, 4)
    with pytest.raises(RuntimeError, match="Expected 3, got 5"):
        lstm(tinyml.zeros((2, 1, 5)))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 1, 4\), got \(1, 2, 4\)"):
        lstm(tinyml.zeros((2, 1, 3)), (tinyml.zeros((1, 2, 4)), tinyml.zeros((1, 1, 4))))
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size, got proj_size=4"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="positive integer or zero.*got -1"):
        nn.LSTM(3, 4, proj_size=-1)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        nn.RNNBase("GRU", 3, 4, proj_size=2)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 1, 2\), got \(1, 1, 4\)"):
        z = tinyml.zeros((1, 1, 4))
        nn.LSTM(3, 4, proj_size=2)(tinyml.zeros((2, 1, 3)), (z, z))
    with pytest.raises(ValueError, match="range \\[0, 1\\].*got 1.5"):
        nn.GRU(3, 4, dropout=1.5)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_layers_on_cuda_match_torch(cls):
    """The layers on the cuda device run the Triton rnn kernels (a GPU, or Triton's interpreter)."""
    if not tinyml.cuda.is_available():
        pytest.skip("no cuda device and Triton's interpreter is not enabled")
    ours, theirs = _pair(cls, 3, 5, num_layers=2, bidirectional=True, batch_first=True)
    ours.to("cuda")
    x = np.random.default_rng(1).standard_normal((2, 4, 3)).astype(np.float32)
    xs, tx = tinyml.tensor(x, device="cuda").requires_grad_(True), torch.tensor(x, requires_grad=True)
    out, tout = _flat(ours(xs)), _flat(theirs(tx))
    for a, b in zip(out, tout):
        assert a.device.type == "cuda"
        assert_close(a.cpu(), b.detach(), **RED)
    sum(o.sum() for o in out).backward()
    sum(o.sum() for o in tout).backward()
    assert_close(xs.grad.cpu(), tx.grad, **RED)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad.cpu(), tparams[name].grad, **RED)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_proj_size_matches_torch(bidirectional, batch_first):
    """proj_size: weight_hr_l{k} (P, H), h_n (L*D, B, P), c_n (L*D, B, H), output D*P features;
    state_dict keys in torch's order (checked by _pair)."""
    ours, theirs = _pair("LSTM", 4, 6, num_layers=2, bidirectional=bidirectional, batch_first=batch_first,
                         proj_size=3)
    assert repr(ours) == repr(theirs)
    T, B, D = 5, 3, 2 if bidirectional else 1
    xs, txs = _leaves([(B, T, 4) if batch_first else (T, B, 4), (2 * D, B, 3), (2 * D, B, 6)])
    out, tout = ours(xs[0], (xs[1], xs[2])), theirs(txs[0], (txs[1], txs[2]))
    assert out[0].shape == tout[0].shape and out[1][0].shape == tout[1][0].shape
    _backward_and_compare(out, tout, xs, txs, ours, theirs)


def test_lstm_proj_size_packed_and_default_state():
    ours, theirs = _pair("LSTM", 3, 5, num_layers=2, bidirectional=True, proj_size=2)
    xs, txs = _leaves([(4, 3, 3)])
    packed = U.pack_padded_sequence(xs[0], [3, 4, 1], enforce_sorted=False)
    tpacked = torch.nn.utils.rnn.pack_padded_sequence(txs[0], [3, 4, 1], enforce_sorted=False)
    _backward_and_compare(ours(packed), theirs(tpacked), xs, txs, ours, theirs)
