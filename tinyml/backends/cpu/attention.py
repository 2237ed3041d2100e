"""cpu adapters: fused scaled-dot-product attention forward and backward (csrc/attention.cpp).

q, k, v are made C-contiguous. An additive float mask of any broadcastable shape is passed as a
zero-stride numpy view broadcast to (B, H, Tq, Tk): the C++ kernel reads it through its strides,
so a (Tq, Tk) mask is never copied B*H times. float16/bfloat16, mixed dtypes and non-float masks
return NotImplemented: the numpy reference runs. The packed kernels read q, k, v from one
(B, T, 3 H D) projection and write (B, T, H D) (csrc/attention.cpp says how).
"""
import numpy as np

from . import _C, contiguous, native

__all__ = ["attention_forward", "attention_backward", "attention_packed_forward", "attention_packed_backward"]


def _takes(q, k, v, mask) -> bool:
    return native(q, k, v) and q.ndim == 4 and (mask is None or np.issubdtype(mask.dtype, np.floating))


def _mask4(mask, q, k):
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != q.dtype:
        m = m.astype(q.dtype)
    if any(s < 0 for s in m.strides):
        m = np.ascontiguousarray(m)
    m = m.reshape((1,) * (4 - m.ndim) + m.shape)
    return np.broadcast_to(m, q.shape[:3] + (k.shape[2],))


def attention_forward(q, k, v, mask, is_causal, scale):
    if not _takes(q, k, v, mask):
        return NotImplemented
    return _C.attention_forward(contiguous(q), contiguous(k), contiguous(v), _mask4(mask, q, k),
                                bool(is_causal), float(scale))


def attention_backward(q, k, v, out, lse, dout, mask, is_causal, scale):
    if not (_takes(q, k, v, mask) and native(q, out, dout, lse)):
        return NotImplemented
    return _C.attention_backward(contiguous(q), contiguous(k), contiguous(v), contiguous(out),
                                 contiguous(lse), contiguous(dout), _mask4(mask, q, k), bool(is_causal),
                                 float(scale))


def attention_packed_forward(qkv, n_head, is_causal, scale):
    if not (native(qkv) and qkv.ndim == 3):
        return NotImplemented
    return _C.attention_packed_forward(contiguous(qkv), int(n_head), bool(is_causal), float(scale))


def attention_packed_backward(qkv, out, lse, dout, n_head, is_causal, scale):
    if not (native(qkv, out, dout, lse) and qkv.ndim == 3):
        return NotImplemented
    return _C.attention_packed_backward(contiguous(qkv), contiguous(out), contiguous(lse), contiguous(dout),
                                        int(n_head), bool(is_causal), float(scale))
