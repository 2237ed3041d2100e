"""nn.MultiheadAttention against torch.nn.MultiheadAttention with the same weights (torch's state dict
loaded into ours): outputs, attention weights and gradients of inputs and parameters, over batch_first,
unbatched inputs, bool/float key_padding_mask and attn_mask (2-D and 3-D), kdim/vdim, add_bias_kv,
add_zero_attn, bias=False, need_weights/average_attn_weights and is_causal."""

import numpy as np
import pytest
import torch

import tinyml
import tinyml.nn as nn
from tinyml.testing import assert_close

RED = {"kind": "reduction"}


def load_torch_state(module, torch_module):
    module.load_state_dict(
        {k: tinyml.tensor(v.detach().numpy()) for k, v in torch_module.state_dict().items()}
    )


def _pair(*args, **kwargs):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(*args, **kwargs)
    ours = nn.MultiheadAttention(*args, **kwargs)
    load_torch_state(ours, theirs)
    return ours, theirs


def _inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return (
        [tinyml.tensor(a).requires_grad_(True) for a in arrays],
        [torch.tensor(a, requires_grad=True) for a in arrays],
    )


def _masks(N, L, S, H, kind, bool_masks, seed=1):
    """(key_padding_mask, attn_mask) numpy arrays; no row is fully masked (that row is NaN in both)."""
    rng = np.random.default_rng(seed)
    kpm = rng.random((N, S)) < 0.3
    kpm[:, 0] = False
    am = rng.random((L, S) if kind == "2d" else (N * H, L, S)) < 0.3
    am[..., 0] = False
    if not bool_masks:
        kpm = np.where(kpm, -1e4, rng.standard_normal((N, S))).astype(np.float32)
        am = np.where(am, -1e4, rng.standard_normal(am.shape)).astype(np.float32)
    return kpm, am


def _compare(ours, theirs, xs, txs, kw, weights_expected=True):
    out, w = ours(*xs, **kw)
    tout, tw = theirs(
        *txs, **{k: (torch.tensor(v.numpy()) if isinstance(v, tinyml.Tensor) else v) for k, v in kw.items()}
    )
    assert_close(out, tout.detach(), **RED)
    if weights_expected:
        assert_close(w, tw.detach(), **RED)
    else:
        assert w is None and tw is None
    g = np.random.default_rng(5).standard_normal(tuple(out.shape)).astype(np.float32)
    (out * tinyml.tensor(g)).sum().backward()
    (tout * torch.tensor(g)).sum().backward()
    for x, tx in zip(xs, txs):
        assert_close(x.grad, tx.grad, **RED)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, tparams[name].grad, **RED)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_self_attention_matches_torch(batch_first, need_weights, average):
    ours, theirs = _pair(16, 4, batch_first=batch_first)
    N, L = 3, 5
    shape = (N, L, 16) if batch_first else (L, N, 16)
    (x,), (tx,) = _inputs([shape])
    _compare(
        ours,
        theirs,
        [x, x, x],
        [tx, tx, tx],
        {"need_weights": need_weights, "average_attn_weights": average},
        weights_expected=need_weights,
    )


@pytest.mark.parametrize("kind", ["2d", "3d"])
@pytest.mark.parametrize("bool_masks", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
def test_masks_match_torch(kind, bool_masks, need_weights):
    N, L, S, H, E = 2, 4, 6, 2, 8
    ours, theirs = _pair(E, H, batch_first=True)
    xs, txs = _inputs([(N, L, E), (N, S, E), (N, S, E)])
    kpm, am = _masks(N, L, S, H, kind, bool_masks)
    kw = {
        "key_padding_mask": tinyml.tensor(kpm),
        "attn_mask": tinyml.tensor(am),
        "need_weights": need_weights,
    }
    _compare(ours, theirs, xs, txs, kw, weights_expected=need_weights)


@pytest.mark.parametrize(
    "options",
    [
        {"kdim": 5, "vdim": 7},
        {"add_bias_kv": True},
        {"add_zero_attn": True},
        {"bias": False},
        {"add_bias_kv": True, "add_zero_attn": True, "kdim": 3},
    ],
)
@pytest.mark.parametrize("need_weights", [True, False])
def test_projection_options_match_torch(options, need_weights):
    N, L, S, H, E = 2, 3, 4, 2, 8
    ours, theirs = _pair(E, H, **options)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    kdim, vdim = options.get("kdim", E), options.get("vdim", E)
    xs, txs = _inputs([(L, N, E), (S, N, kdim), (S, N, vdim)])
    kpm, am = _masks(N, L, S, H, "2d", True)
    kw = {
        "key_padding_mask": tinyml.tensor(kpm),
        "attn_mask": tinyml.tensor(am),
        "need_weights": need_weights,
    }
    _compare(ours, theirs, xs, txs, kw, weights_expected=need_weights)


def test_unbatched_and_causal_match_torch():
    ours, theirs = _pair(8, 2)
    (x,), (tx,) = _inputs([(5, 8)])
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    assert_close(mask, causal)
    _compare(
        ours,
        theirs,
        [x, x, x],
        [tx, tx, tx],
        {"attn_mask": mask, "is_causal": True, "need_weights": False},
        weights_expected=False,
    )
    out, w = ours(x, x, x, attn_mask=mask)
    tout, tw = theirs(tx, tx, tx, attn_mask=causal)
    assert_close(out, tout.detach(), **RED)
    assert_close(w, tw.detach(), **RED)


def test_dropout_in_training_and_eval():
    ours = nn.MultiheadAttention(8, 2, dropout=0.5)
    x = tinyml.randn(4, 2, 8)
    ours.eval()
    a, _ = ours(x, x, x)
    b, _ = ours(x, x, x)
    assert_close(a, b)
    ours.train()
    _, w = ours(x, x, x, average_attn_weights=False)
    assert (w.detach().numpy() == 0).any()  # dropped weights; the rest are scaled by 2


def test_errors_name_the_values():
    mha = nn.MultiheadAttention(8, 2)
    x = tinyml.randn(3, 2, 8)
    with pytest.raises(AssertionError, match="divisible"):
        nn.MultiheadAttention(8, 3)
    with pytest.raises(AssertionError, match="embedding dimension of 8, but got 6"):
        mha(tinyml.randn(3, 2, 6), x, x)
    with pytest.raises(RuntimeError, match=r"2D attn_mask is \(3, 4\)"):
        mha(x, x, x, attn_mask=tinyml.zeros((3, 4)))
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(AssertionError, match=r"key_padding_mask shape of \(2, 3\)"):
        mha(x, x, x, key_padding_mask=tinyml.zeros((3, 2)).bool())
