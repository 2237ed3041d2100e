"""scaled_dot_product_attention_packed: attention over a fused (B, T, 3 H D) q/k/v projection,
against torch (split, view as heads, SDPA, merge the heads), on every backend of the family; the
C++ kernels (csrc/attention.cpp) called directly against the reference and bit for bit against
the (B, H, T, D) kernels; gradcheck in float64, double backward; errors; the GPT block using it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, DTYPES, close, impls, needs_C, rand
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.ops.attention import scaled_dot_product_attention_packed as packed
from tinyml.testing import gradcheck

RED = {"kind": "reduction"}
backend_device = backend_device_fixture()


def _torch_packed(qkv, n_head, is_causal=False, scale=None):
    b, t, c3 = qkv.shape
    q, k, v = qkv.view(b, t, 3, n_head, c3 // (3 * n_head)).unbind(2)
    y = TF.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                        is_causal=is_causal, scale=scale)
    return y.transpose(1, 2).reshape(b, t, c3 // 3)


def _torch_math(qkv, n_head):
    """Causal attention in plain torch ops (torch's fused SDPA has no double backward on the cpu)."""
    b, t, c3 = qkv.shape
    q, k, v = qkv.view(b, t, 3, n_head, c3 // (3 * n_head)).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, D)
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c3 // 3)


@pytest.mark.parametrize("shape,n_head,kw", [
    ((2, 5, 3 * 3 * 4), 3, {"is_causal": True}),
    ((1, 7, 3 * 2 * 5), 2, {}),
    ((2, 20, 3 * 2 * 8), 2, {"is_causal": True, "scale": 0.3}),
    ((1, 1, 3), 1, {"is_causal": True}),
])
def test_packed_matches_torch_on_every_backend(backend_device, shape, n_head, kw):
    check_op([shape], lambda x: packed(x, n_head, **kw), lambda x: _torch_packed(x, n_head, **kw),
             device=backend_device, **RED)


def test_packed_float64_and_noncontiguous_input():
    check_op([(2, 6, 3 * 2 * 4)], lambda x: packed(x, 2, True), lambda x: _torch_packed(x, 2, True),
             dtype="float64", **RED)
    check_op([(2, 6, 3 * 2 * 4)], lambda x: packed(x, 2, True), lambda x: _torch_packed(x, 2, True),
             noncontiguous=True, **RED)


def test_packed_bf16(backend_device):
    check_op([(1, 9, 3 * 2 * 16)], lambda x: packed(x, 2, True), lambda x: _torch_packed(x, 2, True),
             device=backend_device, dtype="bfloat16", **RED)


def test_gradcheck_and_double_backward_float64():
    rng = np.random.default_rng(2)
    x = tinyml.tensor(rng.standard_normal((1, 4, 3 * 2 * 3)), requires_grad=True)
    assert gradcheck(lambda x: packed(x, 2, is_causal=True), [x])
    assert gradcheck(lambda x: packed(x, 2, scale=0.7), [x])
    # create_graph: the first gradient is itself differentiable, and its gradient matches torch's
    g = tinyml.tensor(rng.standard_normal((1, 4, 6)))
    x = tinyml.tensor(x.detach().numpy(), requires_grad=True)
    (gx,) = tinyml.autograd.grad((packed(x, 2, True) * g).sum(), [x], create_graph=True)
    (gx * gx).sum().backward()
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    loss = (_torch_math(xt, 2) * torch.tensor(g.numpy())).sum()
    (gxt,) = torch.autograd.grad(loss, [xt], create_graph=True)
    (gxt * gxt).sum().backward()
    np.testing.assert_allclose(gx.detach().numpy(), gxt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_errors():
    with pytest.raises(RuntimeError, match=r"n_head=2, got shape \(1, 4, 9\)"):
        packed(tinyml.randn(1, 4, 9), 2)
    with pytest.raises(RuntimeError, match=r"got shape \(4, 12\)"):
        packed(tinyml.randn(4, 12), 2)
    with pytest.raises(ValueError, match="n_head must be a positive int, got 0"):
        packed(tinyml.randn(1, 4, 12), 0)
    with pytest.raises(RuntimeError, match="floating point qkv, got tinyml.int64"):
        packed(tinyml.zeros(1, 4, 12, dtype=tinyml.int64), 2)
    with pytest.raises(TypeError, match="must be a Tensor, not ndarray"):
        packed(np.zeros((1, 4, 12)), 2)


# -- the C++ kernels (csrc/attention.cpp) called directly -----------------------------------------
CPU_CASES = [  # B, T, H, D: head sizes no multiple of the vector width, lengths no multiple of the tile
    (1, 1, 1, 1), (2, 5, 3, 3), (1, 67, 2, 17), (2, 130, 1, 64),
]


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CPU_CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_cpu_packed_kernels_match_reference_and_the_head_layout_kernels(dtype, case, causal):
    b, t, h, d = case
    rng = np.random.default_rng(sum(case))
    qkv = rand(rng, (b, t, 3 * h * d), dtype)
    scale = 1.0 / np.sqrt(d)
    cpu_fwd, ref_fwd = impls("attention_packed_forward")
    want = ref_fwd(qkv, h, causal, scale)
    got = cpu_fwd(qkv, h, causal, scale)
    close(got, want, dtype, "packed forward")
    dout = rand(rng, want[0].shape, dtype)
    cpu_bwd, ref_bwd = impls("attention_packed_backward")
    grad = cpu_bwd(qkv, *want, dout, h, causal, scale)
    close(grad, ref_bwd(qkv, *want, dout, h, causal, scale), dtype, "packed backward")
    # the same tile code as the (B, H, T, D) kernels: equal bit for bit
    q, k, v = (np.ascontiguousarray(a) for a in qkv.reshape(b, t, 3, h, d).transpose(2, 0, 3, 1, 4))
    out, lse = _C.attention_forward(q, k, v, None, causal, scale)
    np.testing.assert_array_equal(got[0], out.transpose(0, 2, 1, 3).reshape(b, t, h * d))
    np.testing.assert_array_equal(got[1], lse)
    heads = np.ascontiguousarray(dout.reshape(b, t, h, d).transpose(0, 2, 1, 3))
    dq, dk, dv = _C.attention_backward(q, k, v, out, lse, heads, None, causal, scale)
    heads_grad = np.stack([a.transpose(0, 2, 1, 3) for a in (dq, dk, dv)], 2).reshape(b, t, 3 * h * d)
    np.testing.assert_array_equal(cpu_bwd(qkv, *got, dout, h, causal, scale), heads_grad)


@needs_C
def test_cpu_packed_binding_errors_and_fallback():
    x = np.ones((1, 4, 12), np.float32)
    with pytest.raises(ValueError, match=r"qkv of shape \(1, 4, 12\) does not split into q, k, v of 5 heads"):
        _C.attention_packed_forward(x, 5, False, 1.0)
    with pytest.raises(ValueError, match=r"qkv of shape \(B, T, 3 \* n_head \* head_dim\), got \(4, 12\)"):
        _C.attention_packed_forward(x[0], 2, False, 1.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.attention_packed_forward(np.ones((1, 12, 4), np.float32).transpose(0, 2, 1), 2, False, 1.0)
    out, lse = _C.attention_packed_forward(x, 2, True, 1.0)
    with pytest.raises(ValueError, match=r"grad_out has shape \(1, 4, 5\); expected \(1, 4, 4\)"):
        _C.attention_packed_backward(x, out, lse, np.ones((1, 4, 5), np.float32), 2, True, 1.0)
    with pytest.raises(ValueError, match=r"lse has shape \(3,\)"):
        _C.attention_packed_backward(x, out, np.zeros(3, np.float32), out, 2, True, 1.0)
    with pytest.raises(TypeError, match="float64"):
        _C.attention_packed_backward(x, out.astype(np.float64), lse, out, 2, True, 1.0)
    cpu, ref = impls("attention_packed_forward")  # float16: the adapter declines, the reference runs
    assert cpu(x.astype(np.float16), 2, True, 1.0) is NotImplemented
    np.testing.assert_allclose(ref(x.astype(np.float16), 2, True, 1.0)[0], np.ones((1, 4, 4)), rtol=1e-3)


def test_gpt_block_uses_the_packed_kernel_and_matches_the_head_layout_path():
    from tinyml.models import GPT, GPTConfig

    tinyml.manual_seed(0)
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = GPT(cfg)
    attn = model.transformer.h[0].attn
    x = tinyml.randn(2, 8, 8, requires_grad=True)
    y = attn(x)
    names = _node_names(y)
    assert "PackedAttention" in names and "Attention" not in names
    y.sum().backward()
    # the (B, H, T, D) path, as the block takes with a KV cache: same output and gradients
    x2 = tinyml.tensor(x.detach().numpy(), requires_grad=True)
    y2 = attn(x2, cache=model.new_cache())
    assert "Attention" in _node_names(y2)
    np.testing.assert_allclose(y.detach().numpy(), y2.detach().numpy(), rtol=1e-6, atol=1e-7)
    grads = [p.grad.numpy().copy() for p in attn.parameters()] + [x.grad.numpy()]
    attn.zero_grad()
    y2.sum().backward()
    for a, b in zip(grads, [p.grad.numpy() for p in attn.parameters()] + [x2.grad.numpy()]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _node_names(y) -> set[str]:
    """The Function class names of every node in y's graph."""
    seen, todo = {}, [y.grad_fn]
    while todo:
        node = todo.pop()
        if isinstance(node, tinyml.Tensor) or id(node) in seen:  # a leaf, or a node already walked
            continue
        seen[id(node)] = node.fn.__name__
        todo.extend(e.node for e in node.next_edges if e is not None)
    return set(seen.values())
