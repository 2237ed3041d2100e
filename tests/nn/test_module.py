"""Module: registration, traversal, state_dict/load_state_dict, modes, dtype moves, hooks, repr."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import tinyml
from tinyml import nn


class Block(nn.Module):
    def __init__(self, lib=nn):
        super().__init__()
        self.fc = lib.Linear(3, 4)
        self.norm = lib.LayerNorm(4)
        self.register_buffer("running", tinyml.zeros(4) if lib is nn else torch.zeros(4))
        self.register_buffer("cache", tinyml.ones(2) if lib is nn else torch.ones(2), persistent=False)

    def forward(self, x):
        return self.norm(self.fc(x))


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.register_buffer("running", torch.zeros(4))
        self.register_buffer("cache", torch.ones(2), persistent=False)


def _pair():
    tm = nn.Sequential(OrderedDict(block=Block(), act=nn.GELU(), head=nn.ModuleList([nn.Linear(4, 2)])))
    th = torch.nn.Sequential(OrderedDict(block=TorchBlock(), act=torch.nn.GELU(),
                                         head=torch.nn.ModuleList([torch.nn.Linear(4, 2)])))
    return tm, th


def test_parameter_is_a_flagged_leaf_tensor():
    w = nn.Parameter(tinyml.randn(2, 3))
    assert isinstance(w, nn.Parameter) and isinstance(w, tinyml.Tensor) and w.requires_grad and w.is_leaf
    assert not isinstance(w.detach(), nn.Parameter) and not isinstance(tinyml.randn(2), nn.Parameter)
    assert not nn.Parameter(tinyml.randn(2), requires_grad=False).requires_grad
    base = tinyml.zeros(3)
    p = nn.Parameter(base)
    with tinyml.no_grad():
        p.add_(1.0)
    assert base.tolist() == [1.0, 1.0, 1.0]  # shares the storage of its data, as torch's


def test_names_order_and_state_dict_keys_match_torch():
    tm, th = _pair()
    assert [n for n, _ in tm.named_parameters()] == [n for n, _ in th.named_parameters()]
    assert [n for n, _ in tm.named_buffers()] == [n for n, _ in th.named_buffers()]
    assert list(tm.state_dict()) == list(th.state_dict())  # non-persistent "cache" left out
    assert [n for n, _ in tm.named_modules()] == [n for n, _ in th.named_modules()]
    assert [n for n, _ in tm.named_children()] == [n for n, _ in th.named_children()]
    assert [tuple(p.shape) for p in tm.parameters()] == [tuple(p.shape) for p in th.parameters()]
    assert len(list(tm.block.parameters(recurse=False))) == 0
    assert tm.get_submodule("head.0").out_features == 2 and tm.get_parameter("block.fc.bias").shape == (4,)


def test_repr_matches_torch():
    tm, th = _pair()
    assert repr(tm).replace("TorchBlock", "Block") == repr(th).replace("TorchBlock", "Block")
    layers = [(nn.Embedding(10, 3, padding_idx=0), torch.nn.Embedding(10, 3, padding_idx=0)),
              (nn.Dropout(0.1), torch.nn.Dropout(0.1)), (nn.RMSNorm(4), torch.nn.RMSNorm(4)),
              (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)), (nn.Flatten(), torch.nn.Flatten()),
              (nn.Softmax(-1), torch.nn.Softmax(-1)), (nn.ReLU(), torch.nn.ReLU()), (nn.SiLU(), torch.nn.SiLU()),
              (nn.GELU("tanh"), torch.nn.GELU("tanh")), (nn.Linear(2, 3, bias=False), torch.nn.Linear(2, 3, False)),
              (nn.LayerNorm((2, 3), elementwise_affine=False), torch.nn.LayerNorm((2, 3), elementwise_affine=False))]
    for a, b in layers:
        assert repr(a) == repr(b)


def test_shared_parameters_are_deduplicated():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight  # tied
    model = nn.ModuleList([a, b, a])
    assert len(list(model.parameters())) == 3  # a.weight, a.bias, b.bias
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    assert len(list(model.modules())) == 3


def test_load_state_dict_copies_in_place_and_reports_keys():
    tm, th = _pair()
    sd = {k: tinyml.tensor(v.numpy()) for k, v in th.state_dict().items()}
    weight = tm.block.fc.weight
    assert repr(tm.load_state_dict(sd)) == "<All keys matched successfully>"
    assert tm.block.fc.weight is weight  # same Parameter object, new values
    np.testing.assert_array_equal(weight.detach().numpy(), th.block.fc.weight.detach().numpy())
    sd.pop("head.0.bias")
    sd["extra.weight"] = tinyml.zeros(1)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "head.0.bias"'):
        tm.load_state_dict(sd)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra.weight"'):
        tm.load_state_dict(sd)
    result = tm.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["head.0.bias"] and result.unexpected_keys == ["extra.weight"]


def test_load_state_dict_names_both_shapes_on_mismatch_even_when_not_strict():
    model = nn.Linear(3, 4)
    sd = model.state_dict()
    sd["weight"] = tinyml.zeros(4, 5)
    msg = (r"size mismatch for weight: copying a param with shape \(4, 5\) from checkpoint, the shape in current "
           r"model is \(4, 3\)")
    with pytest.raises(RuntimeError, match=msg):
        model.load_state_dict(sd, strict=False)
    with pytest.raises(TypeError, match="dict-like"):
        model.load_state_dict([1, 2])


def test_load_state_dict_converts_dtype_and_assign_replaces():
    model = nn.Linear(2, 2)
    sd = {"weight": tinyml.ones(2, 2, dtype=tinyml.float64), "bias": tinyml.zeros(2, dtype=tinyml.bfloat16)}
    model.load_state_dict(sd)
    assert model.weight.dtype is tinyml.float32 and model.weight.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    model.load_state_dict(sd, assign=True)
    assert model.weight.dtype is tinyml.float64 and isinstance(model.weight, nn.Parameter)
    assert model.weight.requires_grad


def test_state_dict_tensors_are_detached_views():
    model = nn.Linear(2, 2)
    w = model.state_dict()["weight"]
    assert not w.requires_grad and not isinstance(w, nn.Parameter)
    assert model.state_dict(keep_vars=True)["weight"] is model.weight


def test_train_eval_requires_grad_apply_zero_grad():
    tm, _ = _pair()
    tm.eval()
    assert not any(m.training for m in tm.modules())
    tm.train()
    assert all(m.training for m in tm.modules())
    tm.requires_grad_(False)
    assert not any(p.requires_grad for p in tm.parameters())
    tm.requires_grad_()
    seen = []
    tm.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Sequential" and seen.count("Linear") == 2
    out = tm.block(tinyml.randn(5, 3)).sum() + tm.head[0](tinyml.randn(5, 4)).sum()
    out.backward()
    assert all(p.grad is not None for p in tm.parameters())
    tm.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0.0 for p in tm.parameters())
    tm.zero_grad()
    assert all(p.grad is None for p in tm.parameters())


def test_to_dtype_keeps_parameter_identity_and_casts_float_buffers_only():
    model = Block()
    model.register_buffer("steps", tinyml.tensor([3]))
    w = model.fc.weight
    model.to(tinyml.float64)
    assert model.fc.weight is w and w.dtype is tinyml.float64 and isinstance(w, nn.Parameter)
    assert model.running.dtype is tinyml.float64 and model.steps.dtype is tinyml.int64
    assert model(tinyml.randn(2, 3, dtype=tinyml.float64)).dtype is tinyml.float64
    model.bfloat16()
    assert w.dtype is tinyml.bfloat16
    model.float()
    assert w.dtype is tinyml.float32
    with pytest.raises(TypeError, match="only accepts floating point dtypes, but got desired dtype=tinyml.int64"):
        model.to(tinyml.int64)


def test_setattr_rules():
    m = nn.Module()
    m.w = nn.Parameter(tinyml.zeros(2))
    m.sub = nn.Linear(1, 1)
    m.register_buffer("buf", tinyml.zeros(1))
    m.plain = 3
    assert list(m._parameters) == ["w"] and list(m._modules) == ["sub"] and list(m._buffers) == ["buf"]
    m.buf = tinyml.ones(1)  # assigning a tensor to a buffer name updates the buffer
    assert m._buffers["buf"].tolist() == [1.0]
    m.nb = nn.Buffer(tinyml.zeros(1), persistent=False)
    assert "nb" in m._buffers and "nb" not in m.state_dict()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'w'"):
        m.w = tinyml.zeros(2)
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'sub'"):
        m.sub = 1
    m.w = None
    assert m.w is None and "w" not in m.state_dict()
    del m.sub
    assert "sub" not in m._modules
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nothing'"):
        m.nothing
    with pytest.raises(KeyError, match="buffer name can.*contain"):
        m.register_buffer("a.b", tinyml.zeros(1))

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tinyml.zeros(1))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Early()
    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        nn.Module()(1)


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    y = lin(tinyml.randn(3, 2))
    np.testing.assert_allclose(y.detach().numpy(), (lin.bias.detach().numpy() + 1)[None].repeat(3, 0), rtol=1e-6)
    assert calls == [(3, 2)]
    h1.remove()
    h2.remove()
    x = tinyml.randn(3, 2)
    np.testing.assert_allclose(lin(x).detach().numpy(), (x @ lin.weight.T + lin.bias).detach().numpy(), rtol=1e-6)


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and isinstance(seq[1:], nn.Sequential)
    assert len(seq[1:]) == 2 and seq(tinyml.randn(4, 2)).shape == (4, 1)
    del seq[1]
    assert list(seq._modules) == ["0", "1"]
    with pytest.raises(IndexError, match="index 5 is out of range for Sequential of length 2"):
        seq[5]
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml += [nn.Linear(1, 2)]
    ml.insert(0, nn.Identity())
    assert len(ml) == 3 and isinstance(ml[0], nn.Identity) and [n for n, _ in ml.named_parameters()][0] == "1.weight"
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.ReLU()
    assert list(md) == ["a", "b"] and "a" in md and len(md) == 2 and list(md.state_dict()) == ["a.weight", "a.bias"]
    assert md.pop("b").__class__ is nn.ReLU and len(md) == 1


def test_deepcopy_keeps_parameters_and_ties():
    import copy

    a = nn.Linear(2, 2)
    model = nn.ModuleList([a, a])
    clone = copy.deepcopy(model)
    assert clone[0] is clone[1] and isinstance(clone[0].weight, nn.Parameter)
    assert clone[0].weight is not a.weight and clone[0].weight.tolist() == a.weight.tolist()


def test_parameter_list_and_dict():
    pl = nn.ParameterList([tinyml.zeros(2), nn.Parameter(tinyml.ones(3))])
    pl.append(tinyml.ones(1))
    assert len(pl) == 3 and all(isinstance(p, nn.Parameter) for p in pl) and list(pl.state_dict()) == ["0", "1", "2"]
    assert pl[-1].shape == (1,) and len(list(pl.parameters())) == 3
    pd = nn.ParameterDict({"scale": tinyml.ones(1)})
    pd["shift"] = nn.Parameter(tinyml.zeros(1))
    assert list(pd) == ["scale", "shift"] and "scale" in pd and isinstance(pd["scale"], nn.Parameter)
    holder = nn.Module()
    holder.extra = pd
    assert [n for n, _ in holder.named_parameters()] == ["extra.scale", "extra.shift"]


def test_tinyml_nn_attribute_is_the_nn_package():
    # `from .ops import *` in tinyml/__init__ used to leave tinyml.nn pointing at tinyml.ops.nn
    import subprocess
    import sys

    code = "import tinyml; assert tinyml.nn.__name__ == 'tinyml.nn', tinyml.nn; tinyml.nn.Linear(1, 1)"
    root = __file__.rsplit("/tests/", 1)[0]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
