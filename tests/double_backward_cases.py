"""One double-backward case per Function subclass of tinyml/ops (tests/test_double_backward.py).

A case is `Case(fn, inputs, torch_fn=None)`: `fn(T, F, *xs)` runs the op on library T (tinyml or
torch) with functional module F, and must record a node of its Function; `torch_fn` replaces it
on torch where the two APIs differ (None for a once-differentiable op without a torch twin: only
its error is checked). Inputs: `r(shape)` normal, `pos(shape)` in (0.5, 2), `prob(shape)` in
(0.1, 0.9) (float64, requiring grad), `const(array)` a constant tensor (ints, masks, weights).
ABSTRACT names the bases that no op instantiates.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class Case(NamedTuple):
    fn: Callable
    inputs: tuple
    torch_fn: Callable | None | bool = True  # True: fn itself runs on torch


def _add_layer_norm_product(x, res, w, b):
    """y * s of tinyml's fused residual add + layer_norm (no torch twin: the case's torch_fn composes it)."""
    from tinyml.ops.norm import add_layer_norm
    y, s = add_layer_norm(x, res, (5,), w, b)
    return y * s


def r(*shape):
    return ("normal", shape)


def pos(*shape):
    return ("positive", shape)


def prob(*shape):
    return ("prob", shape)


def const(array):
    return ("const", np.asarray(array))


def make_array(spec, rng):
    kind, v = spec
    if kind == "const":
        return v
    if kind == "normal":
        return rng.standard_normal(v)
    low, high = (0.5, 2.0) if kind == "positive" else (0.1, 0.9)
    return rng.uniform(low, high, v)


IDX = [[0, 2], [1, 1], [2, 0]]  # (3, 2) ids into a dim of size >= 3; repeats accumulate
PERM = [[0, 2, 1, 3], [3, 1, 0, 2], [1, 0, 3, 2]]  # (3, 4): a permutation per row (scatter needs it)
MASK = [[True, False, True, False, True], [False, True, True, False, False], [True, True, False, False, True],
        [False, False, False, True, True]]
T3 = [0, 2, 1, 2]  # class targets for (4, 3) logits


def _scan(T, F, u, delta, b, c):
    from tinyml.ops import selective_scan

    a = -T.ones(3, 2, dtype=T.float64)
    return selective_scan(u, delta.exp(), a, b, c)


def _index_put(T, F, x, v):
    y = x * 1
    y[T.tensor([0, 2])] = v
    return y


def _to_device(T, F, x):
    return (x.to("cuda").to("cpu") if T.__name__ == "tinyml" else x) * x


def _fft(T, name, x):
    """fft and irfft take a complex input (from a (..., 2) real one); complex outputs go back to real."""
    y = getattr(T.fft, name)(x if name == "rfft" else T.view_as_complex(x), n=7)
    return y if name == "irfft" else T.view_as_real(y)


def _conv_update(T, F, x, state, w, b):
    """One generation step of the causal conv: the state's window shifted by x, dotted with w."""
    if T.__name__ == "tinyml":
        return T.causal_conv1d_update(x, state.clone(), w, b)
    window = T.cat([state[:, :, 1:], x[:, :, None]], dim=2)
    return (window * w).sum(-1) + b


def _aspect_atan(T, F, w, h):
    if T.__name__ == "tinyml":
        from tinyml.ops.boxes import _aspect_atan as aspect_atan  # the private Function under CIoU

        return aspect_atan(w, h)
    return T.atan(w / h)


ABSTRACT = {"_Activation", "_Pointwise", "_Unary", "_Triangle"}

def _torch_packed_attention(T, x):
    """Causal attention of the 2 heads packed in x (1, 4, 12), in torch math ops (torch's fused
    SDPA has no double backward on the cpu)."""
    q, k, v = x.view(1, 4, 3, 2, 2).permute(2, 0, 3, 1, 4).unbind(0)
    s = (q @ k.transpose(-2, -1) / 2 ** 0.5).masked_fill(T.ones(4, 4, dtype=T.bool).triu(1), float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(1, 4, 4)


CASES: dict[str, list[Case]] = {
    # activation
    "Gelu": [Case(lambda T, F, x: F.gelu(x), (r(4, 5),)),
             Case(lambda T, F, x: F.gelu(x, approximate="tanh"), (r(4, 5),))],
    "Silu": [Case(lambda T, F, x: F.silu(x), (r(4, 5),))],
    "Softplus": [Case(lambda T, F, x: F.softplus(x, 2.0, 1.0), (r(4, 5),))],
    "LeakyRelu": [Case(lambda T, F, x: F.leaky_relu(x, 0.2), (r(4, 5),))],
    "Elu": [Case(lambda T, F, x: F.elu(x, 1.3), (r(4, 5),))],
    "Hardtanh": [Case(lambda T, F, x: F.hardtanh(x, -0.5, 0.7), (r(4, 5),))],
    "Mish": [Case(lambda T, F, x: F.mish(x), (r(4, 5),))],
    "Glu": [Case(lambda T, F, x: F.glu(x, 0), (r(4, 5),))],
    "LogSigmoid": [Case(lambda T, F, x: F.logsigmoid(x), (r(4, 5),))],
    "Swiglu": [Case(lambda T, F, a, b: F.swiglu(a, b), (r(4, 5), r(4, 5)), lambda T, F, a, b: F.silu(a) * b)],
    # attention, conv, pools, scan
    "PackedAttention": [Case(lambda T, F, x: F.scaled_dot_product_attention_packed(x, 2, is_causal=True),
                             (r(1, 4, 12),), torch_fn=lambda T, F, x: _torch_packed_attention(T, x))],
    "Attention": [Case(lambda T, F, q, k, v: F.scaled_dot_product_attention(q, k, v), (r(2, 3, 4), r(2, 5, 4),
                                                                                        r(2, 5, 4))),
                  Case(lambda T, F, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                            scale=0.7),
                       (r(1, 2, 4, 3), r(1, 2, 4, 3), r(1, 2, 4, 2))),
                  Case(lambda T, F, q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                       (r(2, 4, 5), r(2, 5, 5), r(2, 5, 3), const(MASK)))],
    "Conv2dFn": [Case(lambda T, F, x, w, b: F.conv2d(x, w, b, padding=1),
                      (r(2, 3, 5, 5), r(4, 3, 3, 3), r(4)))],
    "MaxPool2dFn": [Case(lambda T, F, x: F.max_pool2d(x, 2) ** 2, (r(2, 3, 4, 6),)),
                    Case(lambda T, F, x: F.max_pool2d(x, 3, 2, 1), (r(1, 2, 5, 6),))],
    "AvgPool2dFn": [Case(lambda T, F, x: F.avg_pool2d(x, 2), (r(2, 3, 4, 6),)),
                    Case(lambda T, F, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False) ** 2,
                         (r(1, 2, 5, 6),))],
    "AdaptiveAvgPool2dFn": [Case(lambda T, F, x: F.adaptive_avg_pool2d(x, (2, 3)) ** 2, (r(2, 3, 5, 7),))],
    "Upsample2dFn": [Case(lambda T, F, x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                                        align_corners=False), (r(1, 2, 3, 4),)),
                     Case(lambda T, F, x: F.interpolate(x, size=(5, 7)) ** 2, (r(1, 2, 3, 4),))],
    "SelectiveScanFn": [Case(_scan, (r(2, 3, 5), r(2, 3, 5), r(3, 2), r(3, 2)), None)],
    # creation
    "Cast": [Case(lambda T, F, x: x.to(T.float32).to(T.float64) * x, (r(3, 4),))],
    "ToDevice": [Case(_to_device, (r(3, 4),))],
    "Clone": [Case(lambda T, F, x: x.clone() * x, (r(3, 4),))],
    # cumulative
    "CumSum": [Case(lambda T, F, x: x.cumsum(1) * x, (r(3, 4),))],
    "CumProd": [Case(lambda T, F, x: x.cumprod(1), (r(3, 4),))],
    # elementwise
    "Add": [Case(lambda T, F, a, b: (a + b) * a, (r(3, 4), r(4)))],
    "Sub": [Case(lambda T, F, a, b: (a - b) * b, (r(3, 4), r(4)))],
    "Mul": [Case(lambda T, F, a, b: a * b * a, (r(3, 4), r(3, 4)))],
    "Div": [Case(lambda T, F, a, b: a / b, (r(3, 4), pos(3, 4)))],
    "Pow": [Case(lambda T, F, a, b: a ** b, (pos(3, 4), r(3, 4))), Case(lambda T, F, a: a ** 3, (r(3, 4),))],
    "Remainder": [Case(lambda T, F, a, b: T.remainder(a, b) * b, (r(3, 4), pos(3, 4)))],
    "RoundedDiv": [Case(lambda T, F, a, b: T.div(a, b, rounding_mode="floor") + a * a, (r(3, 4), pos(3, 4)))],
    # indexing
    "AdvancedIndex": [Case(lambda T, F, x, i: x[i], (r(4, 5), const(IDX))),
                      Case(lambda T, F, x, i: x[:, i] ** 2, (r(2, 4, 5), const(IDX)))],
    "IndexPut": [Case(_index_put, (r(4, 5), r(2, 5)))],
    # loss
    "CrossEntropy": [Case(lambda T, F, x, t: F.cross_entropy(x, t), (r(4, 3), const(T3))),
                     Case(lambda T, F, x, t: F.cross_entropy(x, t, ignore_index=1, label_smoothing=0.2),
                          (r(4, 3), const(T3)))],
    "NllLoss": [Case(lambda T, F, x, t, w: F.nll_loss(F.log_softmax(x, 1), t, w),
                     (r(4, 3), const(T3), const([0.5, 1.0, 2.0])))],
    "L1Loss": [Case(lambda T, F, a, b: F.l1_loss(a, b) * a.sum(), (r(3, 4), r(3, 4)))],
    "SmoothL1Loss": [Case(lambda T, F, a, b: F.smooth_l1_loss(a, b, beta=1.5), (r(3, 4), r(3, 4)))],
    "HuberLoss": [Case(lambda T, F, a, b: F.huber_loss(a, b, delta=1.5), (r(3, 4), r(3, 4)))],
    "BCEWithLogits": [Case(lambda T, F, x, y: F.binary_cross_entropy_with_logits(x, y),
                           (r(3, 4), prob(3, 4))),
                      Case(lambda T, F, x, y, w: F.binary_cross_entropy_with_logits(x, y, pos_weight=w),
                           (r(3, 4), prob(3, 4), const([0.5, 1.0, 2.0, 3.0])))],
    "KLDiv": [Case(lambda T, F, x, t: F.kl_div(x, t, reduction="batchmean"), (r(3, 4), prob(3, 4))),
              Case(lambda T, F, x, t: F.kl_div(x, t, reduction="sum", log_target=True), (r(3, 4), r(3, 4)))],
    "BinaryCrossEntropy": [Case(lambda T, F, x, y: F.binary_cross_entropy(x, y), (prob(3, 4), prob(3, 4)))],
    # matmul, nn, norm
    "Matmul": [Case(lambda T, F, a, b: (a @ b) * (a @ b), (r(2, 3, 4), r(4, 5)))],
    "Softmax": [Case(lambda T, F, x: F.softmax(x, 1), (r(4, 5),))],
    "LogSoftmax": [Case(lambda T, F, x: F.log_softmax(x, 0), (r(4, 5),))],
    "Linear": [Case(lambda T, F, x, w, b: F.linear(x, w, b) * F.linear(x, w, b), (r(2, 3, 4), r(5, 4), r(5))),
               Case(lambda T, F, x, w: F.linear(x, w).tanh(), (r(3, 4), r(5, 4)))],
    "LayerNorm": [Case(lambda T, F, x, w, b: F.layer_norm(x, (5,), w, b), (r(2, 3, 5), r(5), r(5))),
                  Case(lambda T, F, x: F.group_norm(x, 2), (r(2, 4, 3),))],
    "AddLayerNorm": [Case(lambda T, F, x, res, w, b: _add_layer_norm_product(x, res, w, b),
                          (r(2, 3, 5), r(2, 3, 5), r(5), r(5)),
                          lambda T, F, x, res, w, b: F.layer_norm(x + res, (5,), w, b) * (x + res))],
    "RMSNorm": [Case(lambda T, F, x, w: F.rms_norm(x, (5,), w, eps=1e-5), (r(2, 3, 5), r(5)))],
    # movement
    "Expand": [Case(lambda T, F, x: x.expand(3, 4, 5) * x, (r(1, 4, 5),))],
    "View": [Case(lambda T, F, x: x.reshape(4, 3) * x.reshape(4, 3), (r(3, 4),))],
    "Permute": [Case(lambda T, F, x: x.permute(1, 0) * x.permute(1, 0), (r(3, 4),))],
    "Slice": [Case(lambda T, F, x: x[1:, ::2], (r(4, 5),)),
              Case(lambda T, F, x: x[2, None, 1:] ** 2, (r(4, 5),))],
    "SplitViews": [Case(lambda T, F, x: x.split(2, 1)[0] * x.split(2, 1)[1], (r(3, 4),))],
    "Unbind": [Case(lambda T, F, x: x.unbind(0)[0] * x.unbind(0)[2], (r(3, 4),))],
    "Diagonal": [Case(lambda T, F, x: x.diagonal(1), (r(4, 5),)),
                 Case(lambda T, F, x: x.diagonal(-1, 0, 2) ** 2, (r(3, 2, 4),))],
    # movement_copy
    "Cat": [Case(lambda T, F, a, b: T.cat([a, b], 1) * T.cat([b, a], 1), (r(3, 2), r(3, 2)))],
    "Repeat": [Case(lambda T, F, x: x.repeat(2, 1) * x.repeat(2, 1), (r(3, 4),))],
    "Flip": [Case(lambda T, F, x: x.flip(0) * x, (r(3, 4),))],
    "Roll": [Case(lambda T, F, x: x.roll(1, 0) * x, (r(3, 4),))],
    "Tril": [Case(lambda T, F, x: x.tril() * x, (r(4, 4),))],
    "Triu": [Case(lambda T, F, x: x.triu(1) * x, (r(4, 4),))],
    "PadConstant": [Case(lambda T, F, x: F.pad(x, (1, 2)) * F.pad(x, (1, 2)), (r(3, 4),))],
    # pointwise
    "Where": [Case(lambda T, F, a, b, c: T.where(c, a, b) * a, (r(4, 5), r(4, 5), const(MASK)))],
    "MinMax": [Case(lambda T, F, a, b: T.maximum(a, b) * a, (r(3, 4), r(3, 4)))],
    "Clamp": [Case(lambda T, F, x: x.clamp(-0.5, 0.5) * x, (r(3, 4),)),
              Case(lambda T, F, x, lo, hi: T.clamp(x, -lo, hi) * x, (r(3, 4), pos(3, 4), pos(3, 4)))],
    "MaskedFill": [Case(lambda T, F, x, m: x.masked_fill(m, 2.0) * x, (r(4, 5), const(MASK)))],
    "Lerp": [Case(lambda T, F, a, b, w: T.lerp(a, b, w) * a, (r(3, 4), r(3, 4), r(3, 4)))],
    "Addc": [Case(lambda T, F, a, b, c: T.addcmul(a, b, c, value=0.5) * b, (r(3, 4), r(3, 4), r(3, 4))),
             Case(lambda T, F, a, b, c: T.addcdiv(a, b, c, value=0.5), (r(3, 4), r(3, 4), pos(3, 4)))],
    # reduce
    "Sum": [Case(lambda T, F, x: x.sum(1) * x.sum(1), (r(3, 4),))],
    "VarStd": [Case(lambda T, F, x: x.var(1), (r(3, 4),)), Case(lambda T, F, x: x.std(1), (r(3, 4),))],
    "Prod": [Case(lambda T, F, x: x.prod(1), (r(3, 4),))],
    "LogSumExp": [Case(lambda T, F, x: x.logsumexp(1), (r(3, 4),))],
    "Norm": [Case(lambda T, F, x: x.norm(dim=1), (r(3, 4),)),
             Case(lambda T, F, x: x.norm(3, dim=1), (r(3, 4),))],
    "AMax": [Case(lambda T, F, x: x.amax(1) * x.amax(1), (r(3, 4),))],
    "MaxDim": [Case(lambda T, F, x: x.max(1)[0] * x.max(1)[0], (r(3, 4),))],
    # scatter
    "Gather": [Case(lambda T, F, x, i: T.gather(x, 1, i) * T.gather(x, 1, i), (r(3, 4), const(IDX)))],
    "Scatter": [Case(lambda T, F, x, s, i: x.scatter(1, i, s) * x, (r(3, 4), r(3, 4), const(PERM)))],
    "ScatterAdd": [Case(lambda T, F, x, s, i: x.scatter_add(1, i, s) * x, (r(3, 4), r(3, 2), const(IDX)))],
    "IndexSelect": [Case(lambda T, F, x, i: x.index_select(0, i) * x.index_select(0, i),
                         (r(4, 5), const([2, 0, 2])))],
    "IndexAdd": [Case(lambda T, F, x, s, i: x.index_add(0, i, s) * x, (r(4, 5), r(3, 5), const([2, 0, 2])))],
    "Embedding": [Case(lambda T, F, w, i: F.embedding(i, w), (r(4, 5), const(IDX))),
                  Case(lambda T, F, w, i: F.embedding(i, w, padding_idx=1) ** 2, (r(4, 5), const(IDX)))],
    # unary
    "Tanh": [Case(lambda T, F, x: x.tanh(), (r(3, 4),))],
    "Sigmoid": [Case(lambda T, F, x: x.sigmoid(), (r(3, 4),))],
    "Relu": [Case(lambda T, F, x: x.relu() * x, (r(3, 4),))],
    "Sqrt": [Case(lambda T, F, x: x.sqrt(), (pos(3, 4),))],
    "Rsqrt": [Case(lambda T, F, x: x.rsqrt(), (pos(3, 4),))],
    "Reciprocal": [Case(lambda T, F, x: x.reciprocal(), (pos(3, 4),))],
    "Tan": [Case(lambda T, F, x: (x * 0.3).tan(), (r(3, 4),))],
    "Erf": [Case(lambda T, F, x: x.erf(), (r(3, 4),))],
    "Abs": [Case(lambda T, F, x: x.abs() * x, (r(3, 4),))],
    "NanToNum": [Case(lambda T, F, x: x.nan_to_num() * x, (r(3, 4),))],
    "Neg": [Case(lambda T, F, x: (-x) * x, (r(3, 4),))],
    "Exp": [Case(lambda T, F, x: x.exp(), (r(3, 4),))],
    "Exp2": [Case(lambda T, F, x: x.exp2(), (r(3, 4),))],
    "Expm1": [Case(lambda T, F, x: x.expm1(), (r(3, 4),))],
    "Log": [Case(lambda T, F, x: x.log(), (pos(3, 4),)), Case(lambda T, F, x: x.log2(), (pos(3, 4),)),
            Case(lambda T, F, x: x.log10(), (pos(3, 4),))],
    "Log1p": [Case(lambda T, F, x: x.log1p(), (pos(3, 4),))],
    "Square": [Case(lambda T, F, x: x.square(), (r(3, 4),))],
    "Sin": [Case(lambda T, F, x: x.sin(), (r(3, 4),))],
    "Cos": [Case(lambda T, F, x: x.cos(), (r(3, 4),))],
    "Frac": [Case(lambda T, F, x: x.frac() * x, (r(3, 4),))],
    "PiecewiseConstant": [Case(lambda T, F, x: x.floor() * x, (r(3, 4),))],
    "BatchNormFn": [Case(lambda T, F, x, w, b: F.batch_norm(x, None, None, w, b, True),
                         (r(4, 3, 2), r(3), r(3))),
                    Case(lambda T, F, x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, False),
                         (r(4, 3, 2), r(3), r(3), const(np.zeros(3)), const(np.ones(3) * 1.5)))],
    "ConvTranspose2dFn": [Case(lambda T, F, x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                                        output_padding=1),
                               (r(1, 2, 3, 3), r(2, 3, 3, 3), r(3)))],
    "Sort": [Case(lambda T, F, x: x.sort(1, descending=True).values ** 2, (r(3, 4),))],
    "TopK": [Case(lambda T, F, x: x.topk(2, 1).values ** 2, (r(3, 4),))],
    "KthValue": [Case(lambda T, F, x: x.kthvalue(2, 0).values ** 2, (r(3, 4),))],
    "MedianDim": [Case(lambda T, F, x: x.median(1).values ** 2, (r(3, 4),))],
    "MedianAll": [Case(lambda T, F, x: x.median() ** 2, (r(3, 4),))],
    "FFTC2C": [Case(lambda T, F, x: _fft(T, "fft", x), (r(3, 6, 2),)),
               Case(lambda T, F, x: _fft(T, "ifft", x), (r(3, 6, 2),))],
    "FFTR2C": [Case(lambda T, F, x: _fft(T, "rfft", x), (r(3, 6),))],
    "FFTC2R": [Case(lambda T, F, x: _fft(T, "irfft", x), (r(3, 4, 2),))],
    "CausalConv1dFn": [Case(lambda T, F, x, w, b: T.causal_conv1d(x, w, b), (r(2, 3, 6), r(3, 4), r(3)),
                            None)],
    "CausalConv1dUpdateFn": [Case(_conv_update, (r(2, 3), const(np.linspace(-1, 1, 24).reshape(2, 3, 4)),
                                                 r(3, 4), r(3)))],
    "LayerRecurrence": [Case(lambda T, F, x, h, wi, wh, bi, bh: T.rnn_tanh_cell(x, h, wi, wh, bi, bh),
                             (r(2, 3), r(2, 4), r(4, 3), r(4, 4), r(4), r(4)))],
    "Recurrence": [Case(lambda T, F, xp, h, wh, bh: _recurrence(xp, h, wh, bh),
                        (r(2, 2, 4), r(2, 4), r(4, 4), r(4)),
                        lambda T, F, xp, h, wh, bh: T.stack(_tanh_steps(T, xp, h, wh, bh)))],
    "_AspectAtan": [Case(_aspect_atan, (pos(3, 4), pos(3, 4)))],
}

def _recurrence(xproj, h, w_hh, b_hh):
    """ops.rnn.rnn_layer (what nn.RNNCell runs) over a given input projection: the outputs y."""
    from tinyml.ops.rnn import rnn_layer

    return rnn_layer("RNN_TANH", xproj, h, None, w_hh, b_hh)[0]


def _tanh_steps(T, xproj, h, w_hh, b_hh) -> list:
    """h_t = tanh(xproj_t + h_{t-1} W_hh^T + b_hh), written out for torch."""
    ys = []
    for t in range(xproj.shape[0]):
        h = T.tanh(xproj[t] + h @ w_hh.T + b_hh)
        ys.append(h)
    return ys


def _state_update(T, F, state, x, dt, A, B, C, D, z, bias):
    """One selective-scan step from a constant state: softplus, exp(dt A), the update, C . s, D, gate."""
    if T.__name__ == "tinyml":
        return T.selective_state_update(state.clone(), x, dt, A, B, C, D, z, bias, dt_softplus=True)
    step = F.softplus(dt + bias)
    s1 = T.exp(step[..., None] * A) * state + (step * x)[..., None] * B[:, None]
    return ((s1 * C[:, None]).sum(-1) + D * x) * F.silu(z)


_STATE = const(np.linspace(-1, 1, 24).reshape(2, 3, 4))
_STEP_INPUTS = (_STATE, r(2, 3), r(2, 3), r(3, 4), r(2, 4), r(2, 4), r(3), r(2, 3), r(3))
CASES["SelectiveStateUpdateFn"] = [Case(_state_update, _STEP_INPUTS)]

from linalg_double_backward_cases import LINALG_CASES  # noqa: E402  (it imports Case and r from here)

CASES.update(LINALG_CASES)

from special_double_backward_cases import SPECIAL_ABSTRACT, SPECIAL_CASES  # noqa: E402  (same)

CASES.update(SPECIAL_CASES)
ABSTRACT |= SPECIAL_ABSTRACT

from complex_double_backward_cases import COMPLEX_CASES  # noqa: E402  (same)

CASES.update(COMPLEX_CASES)
