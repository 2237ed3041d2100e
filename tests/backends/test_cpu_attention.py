"""C++ fused attention (csrc/attention.cpp) against the numpy reference: forward (out, lse) and
backward (dq, dk, dv), float32 and float64, causal and additive masks of several broadcast
shapes, Tq != Tk, head sizes that are not a multiple of the vector width, sequence lengths
that are not a multiple of the tile, and fully masked rows (out = 0, lse = -inf, no NaN)."""
import numpy as np
import pytest
from cpu_kernel_utils import _C, DTYPES, close, impls, needs_C, rand

from tinyml.backends import dispatch

pytestmark = needs_C

CASES = [  # B, H, Tq, Tk, D, Dv
    (1, 1, 1, 1, 1, 1),
    (2, 3, 5, 7, 3, 5),
    (1, 2, 67, 67, 17, 33),
    (2, 1, 130, 70, 64, 64),
    (1, 1, 9, 200, 32, 8),
]


def _run(q, k, v, mask, causal, scale, dtype):
    rng = np.random.default_rng(9)
    fwd_ref = impls("attention_forward")[1](q, k, v, mask, causal, scale)
    out = impls("attention_forward")[0](q, k, v, mask, causal, scale)
    close(out, fwd_ref, dtype, "attention forward")
    dout = rand(rng, fwd_ref[0].shape, dtype)
    bwd_ref = impls("attention_backward")[1](q, k, v, *fwd_ref, dout, mask, causal, scale)
    close(impls("attention_backward")[0](q, k, v, *fwd_ref, dout, mask, causal, scale), bwd_ref, dtype,
          "attention backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_attention(dtype, case, causal):
    b, h, tq, tk, d, dv = case
    rng = np.random.default_rng(sum(case))
    q, k, v = (rand(rng, s, dtype) for s in [(b, h, tq, d), (b, h, tk, d), (b, h, tk, dv)])
    _run(q, k, v, None, causal, 1.0 / np.sqrt(d), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_shape", ["full", "keys", "per_head", "2d"])
def test_attention_additive_mask(dtype, mask_shape):
    b, h, tq, tk, d = 2, 3, 37, 75, 16
    rng = np.random.default_rng(11)
    q, k, v = (rand(rng, s, dtype) for s in [(b, h, tq, d), (b, h, tk, d), (b, h, tk, d)])
    shapes = {"full": (b, h, tq, tk), "keys": (b, 1, 1, tk), "per_head": (1, h, tq, tk), "2d": (tq, tk)}
    shape = shapes[mask_shape]
    mask = rand(rng, shape, dtype)
    mask[..., 3] = -np.inf  # a key nobody may see
    _run(q, k, v, mask, False, 0.25, dtype)
    _run(q, k, v, mask, True, 0.25, dtype)  # mask and causal together (row 0 still sees key 0)


def test_attention_fully_masked_rows_give_zero():
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
    _run(q, k, v, mask, False, 0.3, np.float32)


def test_attention_noncontiguous_inputs_and_fallback():
    rng = np.random.default_rng(13)
    q = rand(rng, (2, 9, 3, 8), np.float32).transpose(0, 2, 1, 3)  # (B, T, H, D) -> (B, H, T, D) view
    k = rand(rng, (2, 9, 3, 8), np.float32).transpose(0, 2, 1, 3)
    v = rand(rng, (2, 9, 3, 8), np.float32).transpose(0, 2, 1, 3)
    _run(q, k, v, None, True, 0.5, np.float32)
    h = [a.astype(np.float16) for a in (q, k, v)]  # float16: the adapter declines, the reference runs
    cpu, ref = impls("attention_forward")
    assert cpu(*h, None, True, 0.5) is NotImplemented
    out = dispatch("attention_forward")(*h, None, True, 0.5)
    np.testing.assert_array_equal(out[0], ref(*h, None, True, 0.5)[0])


def test_attention_validation():
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
