"""nn.TransformerEncoderLayer/DecoderLayer, TransformerEncoder/Decoder and nn.Transformer against
torch.nn with the same weights (torch's state dict copied across), in eval mode (dropout off):
outputs and gradients of inputs and parameters, post-norm and pre-norm, relu/gelu/callable
activations, batch_first both ways, bias=False, causal and padding masks."""

import numpy as np
import pytest
import torch

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F
from tinyml.testing import assert_close

RED = {"kind": "reduction"}


def _load(ours, theirs):
    state = {k: tinyml.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()}
    assert set(ours.state_dict()) == set(state)
    ours.load_state_dict(state)


def _arrays(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _check(ours, theirs, arrays, kwargs, tkwargs):
    ours.eval()
    theirs.eval()
    xs = [tinyml.tensor(a).requires_grad_(True) for a in arrays]
    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = ours(*xs, **kwargs), theirs(*txs, **tkwargs)
    assert_close(y, ty.detach(), **RED)
    g = _arrays([tuple(y.shape)], seed=9)[0]
    (y * tinyml.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    for x, tx in zip(xs, txs):
        assert_close(x.grad, tx.grad, **RED)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, tparams[name].grad, **RED)


def _causal_and_padding(N, T, seed=3):
    mask = np.triu(np.full((T, T), -np.inf, np.float32), 1)
    kpm = np.random.default_rng(seed).random((N, T)) < 0.3
    kpm[:, 0] = False  # no fully masked row; float like the mask (torch warns on mixed mask types)
    return mask, np.where(kpm, -np.inf, 0.0).astype(np.float32)


def _both(mask, kpm):
    return (
        {"src_mask": tinyml.tensor(mask), "src_key_padding_mask": tinyml.tensor(kpm)},
        {"src_mask": torch.tensor(mask), "src_key_padding_mask": torch.tensor(kpm)},
    )


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first, batch_first, activation):
    kw = {
        "dim_feedforward": 24,
        "norm_first": norm_first,
        "batch_first": batch_first,
        "activation": activation,
    }
    torch.manual_seed(0)
    theirs = torch.nn.TransformerEncoderLayer(16, 4, **kw)
    ours = nn.TransformerEncoderLayer(16, 4, **kw)
    _load(ours, theirs)
    N, T = 2, 5
    x = _arrays([(N, T, 16) if batch_first else (T, N, 16)])
    mask, kpm = _causal_and_padding(N, T)
    ok, tk = _both(mask, kpm)
    _check(ours, theirs, x, ok, tk)


def test_encoder_layer_callable_activation_and_no_bias():
    torch.manual_seed(0)
    theirs = torch.nn.TransformerEncoderLayer(
        8, 2, 16, activation=torch.nn.functional.silu, bias=False, batch_first=True
    )
    ours = nn.TransformerEncoderLayer(8, 2, 16, activation=F.silu, bias=False, batch_first=True)
    _load(ours, theirs)
    _check(ours, theirs, _arrays([(3, 4, 8)]), {}, {})


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_layer_matches_torch(norm_first, batch_first):
    kw = {"dim_feedforward": 24, "norm_first": norm_first, "batch_first": batch_first}
    torch.manual_seed(0)
    theirs = torch.nn.TransformerDecoderLayer(16, 4, **kw)
    ours = nn.TransformerDecoderLayer(16, 4, **kw)
    _load(ours, theirs)
    N, T, S = 2, 4, 6
    arrays = _arrays([(N, T, 16), (N, S, 16)] if batch_first else [(T, N, 16), (S, N, 16)])
    mask, _ = _causal_and_padding(N, T)
    _, mkpm = _causal_and_padding(N, S)
    ok = {
        "tgt_mask": tinyml.tensor(mask),
        "memory_key_padding_mask": tinyml.tensor(mkpm),
        "tgt_is_causal": True,
    }
    tk = {
        "tgt_mask": torch.tensor(mask),
        "memory_key_padding_mask": torch.tensor(mkpm),
        "tgt_is_causal": True,
    }
    _check(ours, theirs, arrays, ok, tk)


def test_stacks_with_final_norm_match_torch():
    torch.manual_seed(0)
    tenc = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True),
        2,
        torch.nn.LayerNorm(8),
        enable_nested_tensor=False,
    )
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2, nn.LayerNorm(8))
    _load(enc, tenc)
    N, T = 2, 5
    mask, kpm = _causal_and_padding(N, T)
    _check(
        enc,
        tenc,
        _arrays([(N, T, 8)]),
        {"mask": tinyml.tensor(mask), "src_key_padding_mask": tinyml.tensor(kpm)},
        {"mask": torch.tensor(mask), "src_key_padding_mask": torch.tensor(kpm)},
    )
    tdec = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, 16), 2, torch.nn.LayerNorm(8))
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 2, nn.LayerNorm(8))
    _load(dec, tdec)
    _check(
        dec,
        tdec,
        _arrays([(T, N, 8), (3, N, 8)]),
        {"tgt_mask": tinyml.tensor(mask)},
        {"tgt_mask": torch.tensor(mask)},
    )


@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_matches_torch(batch_first):
    kw = {
        "d_model": 8,
        "nhead": 2,
        "num_encoder_layers": 1,
        "num_decoder_layers": 2,
        "dim_feedforward": 16,
        "batch_first": batch_first,
    }
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(**kw)
    ours = nn.Transformer(**kw)
    _load(ours, theirs)
    N, S, T = 2, 5, 4
    shapes = [(N, S, 8), (N, T, 8)] if batch_first else [(S, N, 8), (T, N, 8)]
    mask = nn.Transformer.generate_square_subsequent_mask(T)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(T)
    assert_close(mask, tmask)
    _check(ours, theirs, _arrays(shapes), {"tgt_mask": mask}, {"tgt_mask": tmask})


def test_transformer_init_and_training_dropout():
    model = nn.Transformer(8, 2, 1, 1, 16, dropout=0.5)
    w = model.encoder.layers[0].linear1.weight.detach().numpy()
    bound = np.sqrt(6.0 / (8 + 16))  # xavier_uniform_
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.5 * bound
    src, tgt = tinyml.randn(5, 2, 8), tinyml.randn(4, 2, 8)
    model.train()
    a, b = model(src, tgt), model(src, tgt)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    model.eval()
    assert_close(model(src, tgt), model(src, tgt))


def test_errors():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    model = nn.Transformer(8, 2, 1, 1, 16)
    with pytest.raises(RuntimeError, match=r"batch number of src \(2\) and tgt \(3\)"):
        model(tinyml.randn(5, 2, 8), tinyml.randn(4, 3, 8))
    with pytest.raises(RuntimeError, match=r"feature number of src \(6\)"):
        model(tinyml.randn(5, 2, 6), tinyml.randn(4, 2, 8))
