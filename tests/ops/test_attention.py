"""scaled_dot_product_attention against torch: masks, causal with Tq != Tk, scale, GQA, dropout,
saved memory, errors; on reference and cpu kernels, and on every backend of the family
(backend_device: the numpy reference, the C++ kernels, the Triton kernels). The C++ kernels are
also called directly against the reference (csrc/attention.cpp)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, DTYPES, close, impls, needs_C, rand
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.backends import dispatch
from tinyml.backends.reference import attention as ref_attention
from tinyml.testing import gradcheck

RED = {"kind": "reduction"}
backend_device = backend_device_fixture()


def _sdpa(**kw):
    return (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **kw))


# (Tq, Tk, is_causal); causal with Tq > Tk is in test_causal_with_more_queries_than_keys...
@pytest.mark.parametrize("tq,tk,causal", [(5, 5, False), (5, 5, True), (3, 7, False), (3, 7, True),
                                         (6, 4, False)])
def test_matches_torch(kernels, causal, tq, tk):
    check_op([(2, 3, tq, 4), (2, 3, tk, 4), (2, 3, tk, 6)], *_sdpa(is_causal=causal), **RED)


def test_causal_with_more_queries_than_keys_and_custom_scale(kernels):
    # top-left alignment: queries 0..5 see keys j <= i; every query sees key 0, so no row is empty
    check_op([(1, 2, 6, 4), (1, 2, 4, 4), (1, 2, 4, 3)], *_sdpa(is_causal=True, scale=0.3), **RED)


def test_input_layouts(kernels):
    check_op([(5, 4), (7, 4), (7, 3)], *_sdpa(), **RED)                       # no batch
    check_op([(2, 5, 4), (2, 7, 4), (2, 7, 3)], *_sdpa(is_causal=True), **RED)  # (B, T, E)
    check_op([(2, 2, 2, 3, 4), (2, 2, 2, 5, 4), (2, 2, 2, 5, 4)], *_sdpa(), **RED)  # 3 batch dims
    check_op([(2, 3, 5, 4), (1, 3, 6, 4), (1, 3, 6, 4)], *_sdpa(), **RED)       # broadcast batch
    check_op([(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)], *_sdpa(scale=0.5), noncontiguous=True, **RED)
    check_op([(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)], *_sdpa(), dtype="float64", **RED)


def _with_mask(mask_np, **kw):
    return (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=tinyml.tensor(mask_np), **kw),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(mask_np), **kw))


@pytest.mark.parametrize("mask_shape", [(4, 6), (2, 1, 4, 6), (1, 3, 1, 6), (3, 4, 6)])
def test_bool_and_float_masks(kernels, mask_shape):
    rng = np.random.default_rng(0)
    keep = rng.random(mask_shape) > 0.3
    keep[..., 0] = True  # every query keeps at least one key
    shapes = [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 5)]
    check_op(shapes, *_with_mask(keep), **RED)
    bias = rng.standard_normal(mask_shape).astype(np.float32)
    check_op(shapes, *_with_mask(bias), **RED)
    check_op(shapes, *_with_mask(np.where(keep, bias, -np.inf).astype(np.float32), scale=0.2), **RED)


def test_mask_on_3d_inputs(kernels):
    keep = np.random.default_rng(1).random((2, 4, 5)) > 0.4
    keep[..., 1] = True
    check_op([(2, 4, 3), (2, 5, 3), (2, 5, 3)], *_with_mask(keep), **RED)


def test_causal_fully_masked_rows_give_zeros(kernels):
    keep = np.ones((3, 5), dtype=bool)
    keep[1] = False
    out = check_op([(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)], *_with_mask(keep), **RED)
    assert np.all(out.detach().numpy()[:, :, 1] == 0)


def test_learned_float_mask_gets_a_gradient(kernels):
    # a mask that requires grad takes the composite path, whose gradient reaches the mask
    check_op([(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4), (2, 3, 5)],
             lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
             lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m), **RED)


@pytest.mark.parametrize("causal", [False, True])
def test_grouped_query_attention(kernels, causal):
    check_op([(2, 6, 5, 4), (2, 2, 5, 4), (2, 2, 5, 3)], *_sdpa(enable_gqa=True, is_causal=causal), **RED)
    check_op([(1, 4, 3, 4), (1, 1, 6, 4), (1, 1, 6, 4)], *_sdpa(enable_gqa=True), **RED)


def test_dropout_uses_the_seeded_generator_and_matches_composite_math():
    q, k, v = (tinyml.randn(1, 2, 4, 3, requires_grad=True) for _ in range(3))
    tinyml.manual_seed(5)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    tinyml.manual_seed(5)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    # the same mask drawn by hand: dropout(softmax(q k^T / sqrt(3))) v
    tinyml.manual_seed(5)
    p = F.softmax(q @ k.transpose(-2, -1) / np.sqrt(3), -1)
    want = F.dropout(p, 0.5) @ v
    np.testing.assert_allclose(a.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)
    a.sum().backward()
    assert q.grad is not None and np.isfinite(q.grad.numpy()).all()
    assert F.scaled_dot_product_attention(q, k, v, dropout_p=1.0).abs().sum().item() == 0


def test_saved_tensors_hold_no_t_by_t_matrix(backend_device):
    t = 64
    q, k, v = (tinyml.randn(1, 2, t, 8, device=backend_device, requires_grad=True) for _ in range(3))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    saved = [tuple(e[0].shape) for e in out.grad_fn._saved if e is not None]
    assert all(not (len(s) >= 2 and s[-2:] == (t, t)) for s in saved), saved
    assert sorted(saved) == sorted([(1, 2, t, 8)] * 4 + [(1, 2, t)])  # q, k, v, out, lse


def test_reference_kernel_blocks_queries(monkeypatch):
    # a tiny block budget forces many query blocks: results must not change
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 2, 9, 4)) for _ in range(3))
    mask = np.where(rng.random((9, 9)) > 0.3, 0.0, -np.inf)
    full = ref_attention.attention_forward(q, k, v, mask, False, 0.5)
    dout = rng.standard_normal((1, 2, 9, 4))
    grads = ref_attention.attention_backward(q, k, v, full[0], full[1], dout, mask, False, 0.5)
    monkeypatch.setattr(ref_attention, "_BLOCK_ELEMENTS", 2 * 9 * 2)
    assert len(ref_attention._blocks(q, 9)) > 3
    blocked = ref_attention.attention_forward(q, k, v, mask, False, 0.5)
    for a, b in zip(full, blocked):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    ref_grads = ref_attention.attention_backward(q, k, v, full[0], full[1], dout, mask, False, 0.5)
    for a, b in zip(grads, ref_grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_gradcheck_float64():
    rng = np.random.default_rng(2)
    q, k, v = (tinyml.tensor(rng.standard_normal(s), requires_grad=True) for s in [(1, 2, 3, 4), (1, 2, 5, 4),
                                                                                     (1, 2, 5, 2)])
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [q, k, v])
    mask = tinyml.tensor(rng.standard_normal((3, 5)))
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.7),
                     [q, k, v])


def test_errors():
    q, k, v = tinyml.randn(1, 2, 3, 4), tinyml.randn(1, 2, 5, 4), tinyml.randn(1, 2, 5, 4)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tinyml.ones(3, 5, dtype=tinyml.bool),
                                       is_causal=True)
    with pytest.raises(RuntimeError, match=r"query of shape \(1, 2, 3, 4\) and key of shape \(1, 2, 5, 3\)"):
        F.scaled_dot_product_attention(q, tinyml.randn(1, 2, 5, 3), v)
    with pytest.raises(RuntimeError, match=r"key of shape \(1, 2, 5, 4\) and value of shape \(1, 2, 6, 4\)"):
        F.scaled_dot_product_attention(q, k, tinyml.randn(1, 2, 6, 4))
    with pytest.raises(RuntimeError, match=r"attn_mask of shape \(4, 5\) is not broadcastable"
                                           r".*\(1, 2, 3, 5\)"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tinyml.zeros(4, 5))
    with pytest.raises(RuntimeError, match=r"query heads \(3\) must be a multiple.*\(2, 2\)"):
        F.scaled_dot_product_attention(tinyml.randn(1, 3, 3, 4), k, v, enable_gqa=True)
    with pytest.raises(RuntimeError, match="same floating point dtype.*float32.*float64"):
        F.scaled_dot_product_attention(q, k.double(), v)
    with pytest.raises(RuntimeError, match="do not broadcast"):
        F.scaled_dot_product_attention(tinyml.randn(1, 3, 3, 4), k, v)


# -- every backend of the family ------------------------------------------------------------------
def _sdpa_mask_on_q_device(**kw):
    def tm(q, k, v):
        extra = dict(kw)
        if "attn_mask" in extra:
            extra["attn_mask"] = tinyml.tensor(extra["attn_mask"], device=q.device)
        return F.scaled_dot_product_attention(q, k, v, **extra)

    def th(q, k, v):
        extra = dict(kw)
        if "attn_mask" in extra:
            extra["attn_mask"] = torch.tensor(extra["attn_mask"])
        return TF.scaled_dot_product_attention(q, k, v, **extra)

    return tm, th


@pytest.mark.parametrize("shapes,kw", [
    ([(1, 2, 5, 8), (1, 2, 7, 8), (1, 2, 7, 8)], {}),
    ([(1, 2, 20, 8), (1, 2, 20, 8), (1, 2, 20, 8)], {"is_causal": True}),
    ([(2, 2, 5, 12), (2, 2, 7, 12), (2, 2, 7, 6)],
     {"attn_mask": np.random.default_rng(0).standard_normal((1, 1, 5, 7)).astype(np.float32), "scale": 0.3}),
])
def test_attention_on_every_backend(backend_device, shapes, kw):
    check_op(shapes, *_sdpa_mask_on_q_device(**kw), device=backend_device, **RED)


def test_bool_mask_with_a_fully_masked_row_gives_zeros(backend_device):
    mask = np.ones((4, 6), dtype=bool)
    mask[1] = False
    q, k, v = (tinyml.randn(1, 1, n, 8, device=backend_device, requires_grad=True) for n in (4, 6, 6))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=tinyml.tensor(mask, device=backend_device))
    host = out.detach().cpu().numpy()
    assert np.all(host[0, 0, 1] == 0) and np.isfinite(host).all()
    out.sum().backward()
    assert np.isfinite(q.grad.cpu().numpy()).all() and np.all(q.grad.cpu().numpy()[0, 0, 1] == 0)


def test_attention_bf16(backend_device):
    check_op([(1, 2, 9, 16)] * 3, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
             lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True), device=backend_device,
             dtype="bfloat16", **RED)


# -- the C++ kernels (csrc/attention.cpp) called directly, against the reference ------------------
CPU_CASES = [  # B, H, Tq, Tk, D, Dv: head sizes no multiple of the vector width, lengths no multiple
    (1, 1, 1, 1, 1, 1),  # of the tile, Tq != Tk
    (2, 3, 5, 7, 3, 5),
    (1, 2, 67, 67, 17, 33),
    (2, 1, 130, 70, 64, 64),
    (1, 1, 9, 200, 32, 8),
]


def _cpu_run(q, k, v, mask, causal, scale, dtype):
    """Forward (out, lse) and backward (dq, dk, dv) of the cpu adapter against the reference."""
    rng = np.random.default_rng(9)
    fwd_ref = impls("attention_forward")[1](q, k, v, mask, causal, scale)
    out = impls("attention_forward")[0](q, k, v, mask, causal, scale)
    close(out, fwd_ref, dtype, "attention forward")
    dout = rand(rng, fwd_ref[0].shape, dtype)
    bwd_ref = impls("attention_backward")[1](q, k, v, *fwd_ref, dout, mask, causal, scale)
    close(impls("attention_backward")[0](q, k, v, *fwd_ref, dout, mask, causal, scale), bwd_ref, dtype,
          "attention backward")


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CPU_CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_cpu_attention_kernels(dtype, case, causal):
    b, h, tq, tk, d, dv = case
    rng = np.random.default_rng(sum(case))
    q, k, v = (rand(rng, s, dtype) for s in [(b, h, tq, d), (b, h, tk, d), (b, h, tk, dv)])
    _cpu_run(q, k, v, None, causal, 1.0 / np.sqrt(d), dtype)


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_shape", ["full", "keys", "per_head", "2d"])
def test_cpu_attention_additive_mask(dtype, mask_shape):
    b, h, tq, tk, d = 2, 3, 37, 75, 16
    rng = np.random.default_rng(11)
    q, k, v = (rand(rng, s, dtype) for s in [(b, h, tq, d), (b, h, tk, d), (b, h, tk, d)])
    shapes = {"full": (b, h, tq, tk), "keys": (b, 1, 1, tk), "per_head": (1, h, tq, tk), "2d": (tq, tk)}
    shape = shapes[mask_shape]
    mask = rand(rng, shape, dtype)
    mask[..., 3] = -np.inf  # a key nobody may see
    _cpu_run(q, k, v, mask, False, 0.25, dtype)
    _cpu_run(q, k, v, mask, True, 0.25, dtype)  # mask and causal together (row 0 still sees key 0)


@needs_C
def test_cpu_attention_fully_masked_rows_give_zero():
    rng = np.random.default_rng(12)
    q, k, v = (rand(rng, (1, 2, 6, 8), np.float32) for _ in range(3))
    mask = np.zeros((6, 6), np.float32)
    mask[2, :] = -np.inf
    out, lse = _C.attention_forward(q, k, v, np.broadcast_to(mask, (1, 2, 6, 6)), False, 0.3)
    assert np.all(out[:, :, 2] == 0) and np.all(np.isneginf(lse[:, :, 2])) and np.isfinite(out).all()
    dq, dk, dv = _C.attention_backward(q, k, v, out, lse, np.ones_like(out),
                                       np.broadcast_to(mask, (1, 2, 6, 6)), False, 0.3)
    assert np.isfinite(dq).all() and np.isfinite(dk).all() and np.isfinite(dv).all()
    assert np.all(dq[:, :, 2] == 0)
    _cpu_run(q, k, v, mask, False, 0.3, np.float32)


@needs_C
def test_cpu_attention_noncontiguous_inputs_and_fallback():
    rng = np.random.default_rng(13)
    q = rand(rng, (2, 9, 3, 8), np.float32).transpose(0, 2, 1, 3)  # (B, T, H, D) -> (B, H, T, D) view
    k = rand(rng, (2, 9, 3, 8), np.float32).transpose(0, 2, 1, 3)
    v = rand(rng, (2, 9, 3, 8), np.float32).transpose(0, 2, 1, 3)
    _cpu_run(q, k, v, None, True, 0.5, np.float32)
    h = [a.astype(np.float16) for a in (q, k, v)]  # float16: the adapter declines, the reference runs
    cpu, ref = impls("attention_forward")
    assert cpu(*h, None, True, 0.5) is NotImplemented
    out = dispatch("attention_forward")(*h, None, True, 0.5)
    np.testing.assert_array_equal(out[0], ref(*h, None, True, 0.5)[0])


@needs_C
def test_cpu_attention_binding_errors():
    q = np.ones((1, 2, 4, 8), np.float32)
    with pytest.raises(ValueError, match=r"query \(1, 2, 4, 8\), key \(1, 2, 4, 7\)"):
        _C.attention_forward(q, np.ones((1, 2, 4, 7), np.float32), q, None, False, 1.0)
    with pytest.raises(ValueError, match="4-d"):
        _C.attention_forward(q[0], q[0], q[0], None, False, 1.0)
    with pytest.raises(TypeError, match="float64"):
        _C.attention_forward(q, q.astype(np.float64), q, None, False, 1.0)
    with pytest.raises(ValueError, match=r"attn_mask has shape \(4, 4\)"):
        _C.attention_forward(q, q, q, np.zeros((4, 4), np.float32), False, 1.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.attention_forward(q.transpose(0, 1, 3, 2), q, q, None, False, 1.0)
    out, _ = _C.attention_forward(q, q, q, None, False, 1.0)
    with pytest.raises(ValueError, match=r"lse has shape \(7,\)"):
        _C.attention_backward(q, q, q, out, np.zeros(7, np.float32), out, None, False, 1.0)
