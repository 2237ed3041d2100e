"""cpu adapters: fused scaled-dot-product attention forward and backward (csrc/attention.cpp).

q, k, v are made C-contiguous. An additive float mask of any broadcastable shape is passed as a
zero-stride numpy view broadcast to (B, H, Tq, Tk): the C++ kernel reads it through its strides,
so a (Tq, Tk) mask is never copied B*H times. float16/bfloat16, mixed dtypes and non-float masks
run the numpy reference.
"""
import numpy as np

from .. import add_kernel
from . import _C, NATIVE_DTYPES, with_fallback


def _c(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _native(q, k, v, mask) -> bool:
    dt = q.dtype
    if dt not in NATIVE_DTYPES or k.dtype != dt or v.dtype != dt or q.ndim != 4:
        return False
    return mask is None or np.issubdtype(mask.dtype, np.floating)


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


def _attention_forward(q, k, v, mask, is_causal, scale):
    if not _native(q, k, v, mask):
        return None
    return _C.attention_forward(_c(q), _c(k), _c(v), _mask4(mask, q, k), bool(is_causal), float(scale))


def _attention_backward(q, k, v, out, lse, dout, mask, is_causal, scale):
    if not _native(q, k, v, mask) or out.dtype != q.dtype or dout.dtype != q.dtype or lse.dtype != q.dtype:
        return None
    return _C.attention_backward(_c(q), _c(k), _c(v), _c(out), _c(lse), _c(dout), _mask4(mask, q, k),
                                 bool(is_causal), float(scale))


add_kernel("attention_forward", "cpu", with_fallback("attention_forward", _attention_forward))
add_kernel("attention_backward", "cpu", with_fallback("attention_backward", _attention_backward))
