"""Reference attention kernels (numpy), blocked over queries so that no (Tq, Tk) matrix larger than
one block is ever held: memory is O(block * Tk) beyond the inputs and outputs.

    s = q k^T scale + mask  (causal: s_ij = -inf for j > i, PyTorch's top-left alignment)
    lse_i = log sum_j exp s_ij          p_ij = exp(s_ij - lse_i)          out = p v
    backward (p recomputed from lse):
        dv = p^T dout      dp = dout v^T      D_i = sum_d dout_id out_id
        ds = p (dp - D)    dq = ds k scale    dk = ds^T q scale

q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv); mask None or float, broadcastable to
(B, H, Tq, Tk). lse is (B, H, Tq) in float32 for float16/bfloat16/float32 inputs and float64 for
float64 ones; a row whose keys are all masked (or that has no keys, Tk = 0) has lse = -inf and
out = 0 (no NaN), as in PyTorch. Otherwise NaN propagates as in PyTorch's math attention: a NaN or
+inf score (from q, k or the mask) makes its query row's output and lse NaN, and through the
backward the gradients of every key and value it attends to; causal masking excludes keys (a NaN
key above the diagonal does not reach the queries before it, and a masked score, the constant -inf,
has gradient 0), as the fused kernels do.
"""
import numpy as np

from ...dtypes import is_half

__all__ = ["attention_backward", "attention_forward", "attention_packed_backward", "attention_packed_forward"]

_BLOCK_ELEMENTS = 1 << 22  # scores held per query block (16 MiB of float32)


def _up(a):
    return None if a is None else (a.astype(np.float32) if is_half(a.dtype) else a)


def _mask4(mask):
    if mask is None:
        return None
    return _up(mask).reshape((1,) * (4 - mask.ndim) + mask.shape)


def _blocks(q, tk):
    b, h, tq = q.shape[:3]
    step = max(1, min(tq, _BLOCK_ELEMENTS // max(1, b * h * tk)))
    return [(i, min(i + step, tq)) for i in range(0, tq, step)]


def _causal_keep(tk, i0, i1):
    """(i1 - i0, Tk) bool: key j is visible to query i (j <= i, top-left alignment)."""
    return np.arange(tk)[None, :] <= np.arange(i0, i1)[:, None]


def _scores(qb, k, mask, is_causal, scale, i0, i1):
    """Scores of queries i0:i1 against every key: (B, H, i1 - i0, Tk)."""
    s = np.matmul(qb, k.swapaxes(-1, -2)) * scale
    if mask is not None:
        s = s + (mask if mask.shape[2] == 1 else mask[:, :, i0:i1])
    if is_causal:
        s = np.where(_causal_keep(k.shape[2], i0, i1), s, -np.inf)
    return s


def attention_forward(q, k, v, mask, is_causal, scale):
    qf, kf, vf, m4 = _up(q), _up(k), _up(v), _mask4(mask)
    b, h, tq, _ = q.shape
    out = np.zeros((b, h, tq, v.shape[3]), qf.dtype)
    lse = np.empty((b, h, tq), qf.dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i0, i1 in _blocks(q, k.shape[2]):
            s = _scores(qf[:, :, i0:i1], kf, m4, is_causal, scale, i0, i1)
            mx = s.max(axis=-1, initial=-np.inf)  # NaN for a row with a NaN score, +inf with a +inf one
            mx = np.where(mx == -np.inf, 0, mx)  # every key masked: e = 0, total = 0
            e = np.exp(s - mx[..., None])
            total = e.sum(axis=-1)
            lse[:, :, i0:i1] = mx + np.log(total)  # -inf where every key is masked, NaN where a score is
            p = e / np.where(total == 0, 1, total)[..., None]
            out[:, :, i0:i1] = np.matmul(p, vf)
    return out.astype(q.dtype, copy=False), lse


def attention_backward(q, k, v, out, lse, dout, mask, is_causal, scale):
    qf, kf, vf, of, gf, m4 = _up(q), _up(k), _up(v), _up(out), _up(dout), _mask4(mask)
    dq = np.zeros(qf.shape, qf.dtype)
    dk = np.zeros(kf.shape, qf.dtype)
    dv = np.zeros(vf.shape, qf.dtype)
    lse_safe = np.where(np.isneginf(lse), np.inf, lse)  # fully masked rows: p = exp(-inf) = 0
    with np.errstate(invalid="ignore", over="ignore"):
        for i0, i1 in _blocks(q, k.shape[2]):
            qb, gb = qf[:, :, i0:i1], gf[:, :, i0:i1]
            s = _scores(qb, kf, m4, is_causal, scale, i0, i1)
            p = np.exp(s - lse_safe[:, :, i0:i1, None])
            dv += np.matmul(p.swapaxes(-1, -2), gb)
            dp = np.matmul(gb, vf.swapaxes(-1, -2))
            delta = (gb * of[:, :, i0:i1]).sum(axis=-1, keepdims=True)
            ds = p * (dp - delta)
            if is_causal:  # a masked score is the constant -inf: its gradient is 0 (not 0 * NaN in a NaN row)
                ds = np.where(_causal_keep(k.shape[2], i0, i1), ds, 0)
            dq[:, :, i0:i1] = np.matmul(ds, kf) * scale
            dk += np.matmul(ds.swapaxes(-1, -2), qb) * scale
    return dq.astype(q.dtype, copy=False), dk.astype(k.dtype, copy=False), dv.astype(v.dtype, copy=False)


def _unpack(qkv, n_head):
    """(B, T, 3 H D) -> q, k, v as (B, H, T, D) views (no copy)."""
    b, t, c3 = qkv.shape
    x = qkv.reshape(b, t, 3, n_head, c3 // (3 * n_head))
    return tuple(x[:, :, i].transpose(0, 2, 1, 3) for i in range(3))


def attention_packed_forward(qkv, n_head, is_causal, scale):
    """q, k, v read from one (B, T, 3 H D) projection; out (B, T, H D), lse (B, H, T)."""
    q, k, v = _unpack(qkv, n_head)
    out, lse = attention_forward(q, k, v, None, is_causal, scale)
    b, h, t, d = out.shape
    return np.ascontiguousarray(out.transpose(0, 2, 1, 3)).reshape(b, t, h * d), lse


def attention_packed_backward(qkv, out, lse, dout, n_head, is_causal, scale):
    """The gradient of attention_packed_forward with respect to qkv, in its (B, T, 3 H D) layout."""
    q, k, v = _unpack(qkv, n_head)
    b, t, c = out.shape
    o, g = (a.reshape(b, t, n_head, c // n_head).transpose(0, 2, 1, 3) for a in (out, dout))
    grads = attention_backward(q, k, v, o, lse, g, None, is_causal, scale)
    return np.stack([g.transpose(0, 2, 1, 3) for g in grads], axis=2).reshape(qkv.shape)
