"""cpu adapters: adam_step / adam_amsgrad_step / sgd_step over lists of parameters (csrc/optim.cpp).

These kernels update their arguments in place, so the adapter must never hand the C++ code a
copy of a parameter or a state buffer: a tensor whose param/state arrays are not C-contiguous
and writeable, or whose dtype is not float32/float64, is updated by the numpy reference instead
(gradients are only read, so they may be copied to contiguous memory). The rest go to one C++
call per dtype. When no tensor of the list suits the C++ code, the kernel returns NotImplemented
and the dispatcher runs the reference (which the profiler then names).
"""
import numpy as np

from ..reference import optim as _reference
from . import _C, NATIVE_DTYPES

__all__ = ["adam_step", "adam_amsgrad_step", "sgd_step"]


def _writable(*arrays) -> bool:
    return all(a.flags.c_contiguous and a.flags.writeable for a in arrays)


def _split(params, grads, *states):
    """{dtype: [indices]} of tensors the C++ kernel can update in place, and the other indices."""
    groups, rest = {}, []
    for i, (p, g) in enumerate(zip(params, grads)):
        st = [s[i] for s in states]
        if (p.dtype in NATIVE_DTYPES and g.dtype == p.dtype and g.shape == p.shape
                and all(s.dtype == p.dtype and s.shape == p.shape for s in st) and _writable(p, *st)):
            groups.setdefault(p.dtype, []).append(i)
        else:
            rest.append(i)
    return groups, rest


def _pick(xs, idx):
    return [xs[i] for i in idx]


def _grads(grads, idx):
    return [np.asarray(grads[i], order="C") for i in idx]  # asarray keeps 0-d grads 0-d


def adam_step(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    groups, rest = _split(params, grads, exp_avgs, exp_avg_sqs)
    if not groups:
        return NotImplemented
    for idx in groups.values():
        _C.adam_step(_pick(params, idx), _grads(grads, idx), _pick(exp_avgs, idx), _pick(exp_avg_sqs, idx),
                     float(lr), float(beta1), float(beta2), float(eps), float(weight_decay), int(step),
                     bool(decoupled))
    if rest:
        _reference.adam_step(_pick(params, rest), _pick(grads, rest), _pick(exp_avgs, rest),
                             _pick(exp_avg_sqs, rest), lr, beta1, beta2, eps, weight_decay, step, decoupled)


def adam_amsgrad_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps,
                      weight_decay, step, decoupled):
    groups, rest = _split(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)
    if not groups:
        return NotImplemented
    for idx in groups.values():
        _C.adam_amsgrad_step(_pick(params, idx), _grads(grads, idx), _pick(exp_avgs, idx),
                             _pick(exp_avg_sqs, idx), _pick(max_exp_avg_sqs, idx), float(lr), float(beta1),
                             float(beta2), float(eps), float(weight_decay), int(step), bool(decoupled))
    if rest:
        _reference.adam_amsgrad_step(
            _pick(params, rest), _pick(grads, rest), _pick(exp_avgs, rest), _pick(exp_avg_sqs, rest),
            _pick(max_exp_avg_sqs, rest), lr, beta1, beta2, eps, weight_decay, step, decoupled)


def sgd_step(params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize):
    groups, rest = {}, []
    for i, (p, g, b) in enumerate(zip(params, grads, momentum_buffers)):
        buffer_ok = b is None or momentum == 0 or (b.dtype == p.dtype and b.shape == p.shape and _writable(b))
        ok = p.dtype in NATIVE_DTYPES and g.dtype == p.dtype and g.shape == p.shape and _writable(p)
        (groups.setdefault(p.dtype, []) if ok and buffer_ok else rest).append(i)
    if not groups:
        return NotImplemented
    out = list(momentum_buffers)
    for idx in groups.values():
        bufs = _C.sgd_step(_pick(params, idx), _grads(grads, idx), _pick(momentum_buffers, idx), float(lr),
                           float(momentum), float(dampening), float(weight_decay), bool(nesterov),
                           bool(maximize))
        for i, b in zip(idx, bufs):
            out[i] = b
    if rest:
        bufs = _reference.sgd_step(_pick(params, rest), _pick(grads, rest), _pick(momentum_buffers, rest), lr,
                                   momentum, dampening, weight_decay, nesterov, maximize)
        for i, b in zip(rest, bufs):
            out[i] = b
    return out
