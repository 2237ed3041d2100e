"""The causal tiles of the C++ attention kernels (csrc/attention_tiles.h, csrc/attention_gemm.h):
lengths that are no multiple of the 64-row tile (1, 7, 65, 257) and head sizes no multiple of the
vector width, against the numpy reference and torch's scaled_dot_product_attention, forward and
backward; gradcheck in float64 across a tile edge; and NaN / inf propagation through the pairs a
causal tile skips, which the reference's full products reach as 0 * inf = NaN (the kernels put
those terms back by rule)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import DTYPES, close, impls, needs_C, rand
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.ops.attention import scaled_dot_product_attention_packed as packed
from tinyml.testing import assert_close, gradcheck

RED = {"kind": "reduction"}
LENGTHS = [1, 7, 65, 257]


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t", LENGTHS)
@pytest.mark.parametrize("causal", [True, False])
def test_packed_kernels_match_reference_at_tile_edges(dtype, t, causal):
    h, d = (2, 24) if t < 257 else (1, 64)
    rng = np.random.default_rng(t)
    qkv = rand(rng, (2, t, 3 * h * d), dtype)
    cpu_fwd, ref_fwd = impls("attention_packed_forward")
    want = ref_fwd(qkv, h, causal, 0.2)
    close(cpu_fwd(qkv, h, causal, 0.2), want, dtype, "packed forward")
    dout = rand(rng, want[0].shape, dtype)
    cpu_bwd, ref_bwd = impls("attention_packed_backward")
    close(cpu_bwd(qkv, *want, dout, h, causal, 0.2), ref_bwd(qkv, *want, dout, h, causal, 0.2), dtype,
          "packed backward")


@needs_C
@pytest.mark.parametrize("tq,tk", [(65, 65), (7, 257), (257, 7), (130, 65), (65, 130)])
def test_head_layout_kernels_causal_with_unequal_lengths(tq, tk):
    rng = np.random.default_rng(tq + tk)
    q, k, v = (rand(rng, s, np.float32) for s in [(1, 2, tq, 20), (1, 2, tk, 20), (1, 2, tk, 36)])
    fwd, ref_fwd = impls("attention_forward")
    want = ref_fwd(q, k, v, None, True, 0.3)
    close(fwd(q, k, v, None, True, 0.3), want, np.float32, "forward")
    dout = rand(rng, want[0].shape, np.float32)
    bwd, ref_bwd = impls("attention_backward")
    want_grads = ref_bwd(q, k, v, *want, dout, None, True, 0.3)
    close(bwd(q, k, v, *want, dout, None, True, 0.3), want_grads, np.float32, "backward")


@needs_C
@pytest.mark.parametrize("causal,masked", [(False, True), (True, False), (True, True)])
def test_wide_heads_with_peaked_scores_keep_the_reference_rounding(causal, masked):
    # E = 256 at scale 0.3: scores of std ~5, where scaling q or k before the product (instead of the
    # scores after it) moved the backward's P off the forward's lse by more than the tolerance
    rng = np.random.default_rng(0)
    q, k, v = (rand(rng, s, np.float32) for s in [(1, 2, 70, 256), (1, 2, 70, 256), (1, 2, 70, 16)])
    mask = rand(rng, (70, 70), np.float32) if masked else None
    fwd, ref_fwd = impls("attention_forward")
    want = ref_fwd(q, k, v, mask, causal, 0.3)
    close(fwd(q, k, v, mask, causal, 0.3), want, np.float32, "forward")
    dout = rand(rng, want[0].shape, np.float32)
    bwd, ref_bwd = impls("attention_backward")
    close(bwd(q, k, v, *want, dout, mask, causal, 0.3), ref_bwd(q, k, v, *want, dout, mask, causal, 0.3),
          np.float32, "backward")


@pytest.mark.parametrize("t", LENGTHS)
def test_packed_op_matches_torch_sdpa(t):
    h, d = 2, 16

    def torch_packed(x):
        b, n, c3 = x.shape
        q, k, v = x.view(b, n, 3, h, d).unbind(2)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        return y.transpose(1, 2).reshape(b, n, h * d)

    check_op([(2, t, 3 * h * d)], lambda x: packed(x, h, is_causal=True), torch_packed, **RED)


@pytest.mark.parametrize("t", [7, 65])
def test_head_layout_op_matches_torch_sdpa(t):
    check_op([(1, 3, t, 12), (1, 3, t, 12), (1, 3, t, 20)],
             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
             lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True), **RED)


def test_gradcheck_float64_across_a_tile_edge():
    rng = np.random.default_rng(5)
    x = tinyml.tensor(rng.standard_normal((1, 66, 3 * 1 * 2)), requires_grad=True)
    assert gradcheck(lambda x: packed(x, 1, is_causal=True), [x])


# -- NaN and inf: as the reference's full products -------------------------------------------------
# torch's backends disagree here: its math attention masks with an additive -inf bias (a NaN key
# then reaches the queries before it), its default cpu kernel as the reference does for out and
# dq; for dk and dv that kernel computes a masked dS as 0 * (dP - delta), NaN in a NaN row, where
# the reference takes the derivative of the constant -inf, 0. So dk and dv are checked against the
# reference only.
def _torch_out_and_dq(q, k, v, dout):
    """out and dq of torch's default scaled_dot_product_attention (causal) on (B, H, T, D) arrays."""
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out = TF.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), qt.grad.numpy()


NONFINITE = [  # (array, row, column, value): one entry of q, k, v or dout made non-finite
    ("v", 100, 3, np.nan), ("v", 5, 0, np.inf), ("k", 90, 2, np.nan), ("k", 3, 1, -np.inf),
    ("q", 70, 4, np.nan), ("q", 2, 0, np.inf), ("dout", 1, 5, np.nan), ("dout", 66, 2, np.inf),
]


@needs_C
@pytest.mark.parametrize("where,row,col,value", NONFINITE)
def test_nonfinite_values_propagate_as_the_full_products(where, row, col, value):
    rng = np.random.default_rng(row)
    t, d = 130, 8
    arrays = {n: rand(rng, (1, 2, t, d), np.float32) for n in ("q", "k", "v", "dout")}
    arrays[where][0, 1, row, col] = value
    q, k, v, dout = (arrays[n] for n in ("q", "k", "v", "dout"))
    fwd, ref_fwd = impls("attention_forward")
    want = ref_fwd(q, k, v, None, True, 0.5)
    got = fwd(q, k, v, None, True, 0.5)
    close(got, want, np.float32, "forward")
    bwd, ref_bwd = impls("attention_backward")
    grads = bwd(q, k, v, *want, dout, None, True, 0.5)
    close(grads, ref_bwd(q, k, v, *want, dout, None, True, 0.5), np.float32, "backward")
    # out and dq: the same NaN and inf positions as torch (scale 1/sqrt(d) there)
    want_out, want_dq = _torch_out_and_dq(q, k, v, dout)
    got_out, lse = fwd(q, k, v, None, True, 1 / np.sqrt(d))
    got_dq = bwd(q, k, v, got_out, lse, dout, None, True, 1 / np.sqrt(d))[0]
    for name, a, b in (("out", got_out, want_out), ("dq", got_dq, want_dq)):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"NaN positions of {name}")
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b), err_msg=f"inf positions of {name}")
    assert np.isfinite(got_out[0, 0]).all() and np.isfinite(grads[0][0, 0]).all()  # the other head


@needs_C
def test_nonfinite_in_the_packed_layout_and_a_nan_row():
    rng = np.random.default_rng(3)
    b, t, h, d = 1, 70, 2, 8
    qkv = rand(rng, (b, t, 3 * h * d), np.float32)
    qkv[0, 40, 2 * h * d + d + 1] = np.nan  # V of head 1, key 40: rows 0..69 of head 1, column 1
    qkv[0, 10, 3] = np.inf  # Q of head 0, query 10: a +inf score, the row is NaN
    cpu_fwd, ref_fwd = impls("attention_packed_forward")
    want = ref_fwd(qkv, h, True, 0.3)
    got = cpu_fwd(qkv, h, True, 0.3)
    close(got, want, np.float32, "packed forward")
    assert np.isnan(got[0][0, :, d + 1]).all() and np.isnan(got[1][0, 0, 10])
    dout = rand(rng, want[0].shape, np.float32)
    cpu_bwd, ref_bwd = impls("attention_packed_backward")
    close(cpu_bwd(qkv, *want, dout, h, True, 0.3), ref_bwd(qkv, *want, dout, h, True, 0.3), np.float32,
          "packed backward")


def test_op_forward_and_backward_nan_as_torch():
    rng = np.random.default_rng(8)
    q, k, v = (rng.standard_normal((1, 1, 67, 4)).astype(np.float32) for _ in range(3))
    v[0, 0, 66, 2] = np.nan  # the last key: every query's column 2 (0 * NaN in the masked pairs)
    tq, tk, tv = (tinyml.tensor(a, requires_grad=True) for a in (q, k, v))
    out = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(tinyml.tensor(g))
    want_out, want_dq = _torch_out_and_dq(q, k, v, g)
    assert_close(out.detach().numpy(), want_out, **RED)
    assert_close(tq.grad.numpy(), want_dq, **RED)
    assert np.isnan(out.detach().numpy()[0, 0, :, 2]).all()
