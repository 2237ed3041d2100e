"""cpu adapters: fused scaled-dot-product attention forward and backward (csrc/attention.cpp).

q, k, v are made C-contiguous. An additive float mask of any broadcastable shape is passed as a
zero-stride numpy view broadcast to (B, H, Tq, Tk): the C++ kernel reads it through its strides,
so a (Tq, Tk) mask is never copied B*H times. float16/bfloat16, mixed dtypes and non-float masks
return NotImplemented: the numpy reference runs.
"""
import numpy as np

from . import _C, contiguous, native

__all__ = ["attention_forward", "attention_backward"]


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
