"""Layers against torch.nn with the same weights: forward, input gradient and parameter gradients."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml import nn
from tinyml.testing import assert_close


def _copy_weights(tm: nn.Module, th: torch.nn.Module) -> None:
    # torch's weights (random ones where torch initialises to ones/zeros, to exercise the affine part)
    with torch.no_grad():
        for p in th.parameters():
            p.copy_(torch.randn_like(p))
    tm.load_state_dict({k: tinyml.tensor(v.detach().numpy()) for k, v in th.state_dict().items()})


def check_layer(tm, th, shape, *, kind="exact", int_input=None, seed=0, rtol=None, atol=None):
    torch.manual_seed(seed)
    _copy_weights(tm, th)
    rng = np.random.default_rng(seed)
    if int_input is not None:
        x_np = rng.integers(0, int_input, size=shape)
        x_tm, x_th = tinyml.tensor(x_np), torch.tensor(x_np)
    else:
        x_np = rng.standard_normal(shape).astype(np.float32)
        x_tm, x_th = tinyml.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    y_tm, y_th = tm(x_tm), th(x_th)
    assert tuple(y_tm.shape) == tuple(y_th.shape)
    assert_close(y_tm, y_th, kind=kind, rtol=rtol, atol=atol, msg="forward:")
    w = rng.standard_normal(tuple(y_th.shape)).astype(np.float32)
    (y_tm * tinyml.tensor(w)).sum().backward()
    (y_th * torch.tensor(w)).sum().backward()
    if int_input is None:
        assert_close(x_tm.grad, x_th.grad, kind=kind, rtol=rtol, atol=atol, msg="input grad:")
    th_params = dict(th.named_parameters())
    for name, p in tm.named_parameters():
        assert_close(p.grad, th_params[name].grad, kind="reduction", rtol=rtol, atol=atol, msg=f"grad of {name}:")
    return y_tm


def test_linear():
    check_layer(nn.Linear(5, 3), torch.nn.Linear(5, 3), (2, 4, 5), kind="reduction")
    check_layer(nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False), (7, 5), kind="reduction")
    check_layer(nn.Linear(1, 1), torch.nn.Linear(1, 1), (3, 1))


def test_embedding_with_padding_idx():
    tm, th = nn.Embedding(10, 4, padding_idx=2), torch.nn.Embedding(10, 4, padding_idx=2)
    check_layer(tm, th, (3, 5), int_input=10)
    ids = tinyml.tensor([[2, 2, 1]])
    tm.weight.grad = None
    tm(ids).sum().backward()
    assert tm.weight.grad[2].abs().sum().item() == 0.0 and tm.weight.grad[1].sum().item() == 4.0
    assert nn.Embedding(5, 3, padding_idx=-1).padding_idx == 4


def test_embedding_default_init_and_from_pretrained():
    e = nn.Embedding(1000, 16, padding_idx=0)
    w = e.weight.detach().numpy()
    assert np.all(w[0] == 0) and abs(w[1:].std() - 1.0) < 0.05  # N(0, 1), padding row zero
    pre = nn.Embedding.from_pretrained(tinyml.ones(4, 2))
    assert not pre.weight.requires_grad and pre(tinyml.tensor([3])).tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_layer_norm(affine, bias):
    check_layer(nn.LayerNorm(6, elementwise_affine=affine, bias=bias),
                torch.nn.LayerNorm(6, elementwise_affine=affine, bias=bias), (3, 4, 6), kind="reduction")


def test_layer_norm_over_two_dims():
    check_layer(nn.LayerNorm((4, 6), eps=1e-3), torch.nn.LayerNorm((4, 6), eps=1e-3), (2, 4, 6), kind="reduction")


def test_rms_norm():
    check_layer(nn.RMSNorm(6), torch.nn.RMSNorm(6), (3, 4, 6), kind="reduction")
    check_layer(nn.RMSNorm(6, eps=1e-5, elementwise_affine=False), torch.nn.RMSNorm(6, eps=1e-5,
                elementwise_affine=False), (5, 6), kind="reduction")


def test_group_norm():
    check_layer(nn.GroupNorm(3, 6), torch.nn.GroupNorm(3, 6), (2, 6, 5), kind="reduction")
    check_layer(nn.GroupNorm(2, 4, affine=False), torch.nn.GroupNorm(2, 4, affine=False), (2, 4, 3, 3),
                kind="reduction")
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(4, 6)


@pytest.mark.parametrize("name,args", [("ReLU", ()), ("GELU", ()), ("GELU", ("tanh",)), ("SiLU", ()), ("Tanh", ()),
                                       ("Sigmoid", ()), ("Softmax", (-1,)), ("LogSoftmax", (1,)), ("Identity", ()),
                                       ("Flatten", ()), ("Flatten", (0, 1))])
def test_activation_and_shape_modules(name, args):
    check_layer(getattr(nn, name)(*args), getattr(torch.nn, name)(*args), (3, 4, 5), kind="reduction")


@pytest.mark.parametrize("name,args", [("LeakyReLU", (0.2,)), ("ELU", (0.7,)), ("Softplus", (2.0, 5.0)), ("Mish", ()),
                                       ("Hardtanh", (-0.5, 0.8)), ("ReLU6", ()), ("GLU", (1,)), ("LogSigmoid", ())])
def test_more_activations(name, args):
    check_layer(getattr(nn, name)(*args), getattr(torch.nn, name)(*args), (3, 4, 6), kind="reduction")


def test_inplace_activation_writes_its_input():
    x = tinyml.tensor([-1.0, 2.0])
    y = nn.ReLU(inplace=True)(x)
    assert x.tolist() == [0.0, 2.0] and y.tolist() == [0.0, 2.0]


def _loss_pair(name, kwargs, x_np, t_np, int_target=False):
    tm, th = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    x_tm, x_th = tinyml.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    t_tm, t_th = tinyml.tensor(t_np), torch.tensor(t_np)
    out_tm, out_th = tm(x_tm, t_tm), th(x_th, t_th)
    assert_close(out_tm, out_th, kind="reduction", msg=f"{name} forward:")
    w = np.random.default_rng(1).standard_normal(tuple(out_th.shape)).astype(np.float32)
    (out_tm * tinyml.tensor(w)).sum().backward()
    (out_th * torch.tensor(w)).sum().backward()
    assert_close(x_tm.grad, x_th.grad, kind="reduction", msg=f"{name} grad:")
    assert repr(tm) == repr(th)


@pytest.mark.parametrize("name,kwargs", [("CrossEntropyLoss", {}), ("CrossEntropyLoss", {"label_smoothing": 0.1}),
                                         ("CrossEntropyLoss", {"ignore_index": 1, "reduction": "sum"}),
                                         ("NLLLoss", {"reduction": "none"})])
def test_classification_losses(name, kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    if name == "NLLLoss":
        x = x - np.log(np.exp(x).sum(-1, keepdims=True))
    _loss_pair(name, kwargs, x, rng.integers(0, 5, size=6))


@pytest.mark.parametrize("name,kwargs", [("MSELoss", {}), ("L1Loss", {"reduction": "sum"}),
                                         ("SmoothL1Loss", {"beta": 0.5}), ("HuberLoss", {"delta": 0.7}),
                                         ("BCEWithLogitsLoss", {}), ("BCELoss", {}),
                                         ("KLDivLoss", {"reduction": "batchmean", "log_target": True})])
def test_regression_and_binary_losses(name, kwargs):
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, 3)).astype(np.float32), rng.random((4, 3)).astype(np.float32)
    if name == "BCELoss":
        x = 1 / (1 + np.exp(-x))
    if name == "KLDivLoss":
        x, t = np.log(np.full((4, 3), 1 / 3, np.float32)) + 0.1 * x, np.log(t / t.sum(-1, keepdims=True))
    _loss_pair(name, kwargs, x, t)


def test_loss_weight_is_a_buffer_and_reduction_is_checked():
    crit = nn.CrossEntropyLoss(weight=tinyml.ones(3))
    assert "weight" in dict(crit.named_buffers()) and list(crit.parameters()) == []
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        nn.MSELoss(reduction="avg")


def test_unflatten():
    check_layer(nn.Unflatten(1, (2, 3)), torch.nn.Unflatten(1, (2, 3)), (4, 6, 2))


def test_dropout_train_and_eval():
    d = nn.Dropout(0.5)
    x = tinyml.ones(2000)
    y = d(x).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    d.eval()
    assert d(x) is x or np.all(d(x).numpy() == 1.0)
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_sequential_mlp_matches_torch():
    tm = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3), nn.Softmax(-1))
    th = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3),
                             torch.nn.Softmax(-1))
    check_layer(tm, th, (5, 4), kind="reduction")


def test_linear_default_init_bounds_as_torch():
    lin = nn.Linear(50, 40)
    bound = 1 / np.sqrt(50)  # kaiming_uniform_(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01
    ln = nn.LayerNorm(3)
    assert ln.weight.tolist() == [1.0] * 3 and ln.bias.tolist() == [0.0] * 3


def test_layers_in_float64_and_bfloat16():
    lin = nn.Linear(3, 2, dtype=tinyml.float64)
    assert lin.weight.dtype is tinyml.float64 and lin(tinyml.randn(4, 3, dtype=tinyml.float64)).dtype is tinyml.float64
    ln = nn.LayerNorm(3).to(tinyml.bfloat16)
    assert ln(tinyml.randn(2, 3, dtype=tinyml.bfloat16)).dtype is tinyml.bfloat16
