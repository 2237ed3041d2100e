"""One autograd node for a frozen linear plus one LoRA adapter: the memory path of LoraLinear.

    y = x W^T + b + s (x A^T) B^T           W, b frozen; A (r, in), B (out, r) trained
    backward, with x, g flattened to (rows, in), (rows, out) and u = s x A^T (rows, r):
        dB = g^T u     gu = s g B     dA = gu^T x     dx = g W + gu A = g (W + s B A)

Unfused, the graph holds x for A's gradient, u for B's, an (rows, out) tensor for the sum, and
backward adds two (rows, in) gradients of x. This node keeps x once and u, computes dx in one
GEMM against W + s B A (a weight-sized temporary), and keeps nothing for W and b. When x is the
output of a node that already keeps what makes it, x is not kept at all: backward runs that node's
forward kernel again (the same kernel on the same inputs: the same x, bit for bit), a chunk of
rows at a time. Such nodes: an activation (gelu, silu, ... before an MLP's down projection; it keeps
its input), RMSNorm (input, weight, rstd) and LayerNorm (input, weight, mean, rstd; its bias is noted
on the node by a forward hook, tag_norm_outputs, which LoRA injection installs). In a GPT block this
leaves the 4C-wide MLP activation and the two LayerNorm outputs unkept.
"""
from __future__ import annotations

import math
import weakref

import tinyml.nn as nn
from tinyml.autograd import Function
from tinyml.backends import run
from tinyml.ops.activation import _Activation
from tinyml.ops.norm import LayerNorm, RMSNorm


def recomputable_source(x):
    """x's producing node when x can be recomputed exactly from what that node already saved: an
    activation's output (the node keeps its input), an RMSNorm's output (input, weight, rstd) or a
    LayerNorm's whose bias tag_norm_outputs recorded (the node keeps input, weight, mean, rstd; the
    bias it does not). Not a node inside tinyml.utils.checkpoint, which saves nothing until backward."""
    base = x if x._base is None else x._base  # a norm's (rows, C) output reshaped to (B, T, C)
    node = base.grad_fn
    if node is None or getattr(node._saved, "frame", None) is not None or not node._saved:
        return None
    if isinstance(node.fn, type) and issubclass(node.fn, _Activation) and base is x:
        kept = node._saved[0] if len(node._saved) == 1 else None
        return node if kept is not None and kept[0].shape == x.shape else None  # elementwise (not glu)
    if node.fn in (LayerNorm, RMSNorm) and _same_rows(x, base):
        return node if node.fn is RMSNorm or "lora_norm_bias" in node.__dict__ else None
    return None


def _same_rows(x, base) -> bool:
    """x is all of base, reshaped: the same elements in the same order, rows of the same width."""
    return (x.numel() == base.numel() and x.ndim >= 1 and base.ndim == 2 and x.shape[-1] == base.shape[-1]
            and x.is_contiguous() and base.is_contiguous())


def _recompute(source, start: int, stop: int):
    """Rows start:stop of the source node's output, from its saved tensors, by its forward kernel."""
    if source.fn is LayerNorm:
        x, weight, _, _ = source.saved_tensors
        bias, version = source.lora_norm_bias
        if bias is not None and bias._version[0] != version:
            raise RuntimeError(f"the bias {tuple(bias.shape)} of a LayerNorm before a LoRA layer was "
                               "modified in place between forward and backward; LoRA's gradient needs the "
                               "old one")
        return run("layer_norm_forward", x[start:stop], weight, bias, source.eps)[0]
    if source.fn is RMSNorm:
        x, weight, _ = source.saved_tensors
        return run("rms_norm_forward", x[start:stop], weight, source.eps)[0]
    (h,) = source.saved_tensors
    h2 = h.reshape(-1, h.shape[-1]) if h.ndim != 2 else h
    return run(source.fn.forward_kernel, h2[start:stop], *source.params)


def _tag_bias(module, args, out) -> None:
    """Forward hook on nn.LayerNorm: its node keeps no bias, so note it (and its version) there."""
    node = (out if out._base is None else out._base).grad_fn
    if node is not None and node.fn is LayerNorm:
        node.lora_norm_bias = (module.bias, None if module.bias is None else module.bias._version[0])


_norm_hooks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> hook handles


def tag_norm_outputs(model: nn.Module) -> None:
    """Hook every nn.LayerNorm of model (once) so that a LoRA layer after it can recompute its input."""
    if model not in _norm_hooks:
        _norm_hooks[model] = [m.register_forward_hook(_tag_bias) for m in model.modules()
                              if type(m) is nn.LayerNorm]


def untag_norm_outputs(model: nn.Module) -> None:
    for handle in _norm_hooks.pop(model, []):
        handle.remove()


# rows of a recomputed activation made at once: its transient stays near 1 MiB (float32) per chunk
# rather than the whole (rows, in) output at the start of backward, when the most is kept
_CHUNK_ELEMENTS = 1 << 18


def _weight_grad_from_source(source, gu, lora_A, rows: int):
    """dA = gu^T x, x recomputed from the source node's saved tensors by row chunks."""
    step = max(1, _CHUNK_ELEMENTS // max(1, lora_A.shape[-1]))
    dA = None
    for start in range(0, max(rows, 1), step):  # one (empty) chunk when rows = 0: dA is zeros
        x_chunk = _recompute(source, start, start + step)
        _, part, _ = run("linear_backward", gu[start:start + step], x_chunk, lora_A, False, True)
        dA = part if dA is None else dA.add_(part)
    return dA


class LoraLinearFunction(Function):
    """apply(x, weight, bias, lora_A, lora_B, scaling, source): see the module docstring; `source`
    is recomputable_source(x) or None. Its backward is a fused kernel sequence (no graph under
    create_graph): differentiating the gradients again raises."""

    once_differentiable = "lora_linear"

    @staticmethod
    def forward(ctx, x, weight, bias, lora_A, lora_B, scaling, source):
        need = ctx.needs_input_grad
        rows = math.prod(x.shape[:-1])  # not -1: ambiguous when in_features = 0
        x2 = x.reshape(rows, x.shape[-1])
        u = run("linear", x2, lora_A, None)  # (rows, r)
        u = u * scaling
        out = run("linear", x2, weight, bias)  # (rows, out)
        out.add_(run("linear", u, lora_B, None))
        keep_x = need[3] and source is None
        ctx.save_for_backward(x2 if keep_x else None, u if need[4] else None, weight if need[0] else None,
                              lora_A if (need[0] or need[3]) else None, lora_B)
        ctx.source, ctx.scaling, ctx.x_shape = (source if need[3] else None), scaling, x.shape
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, g):
        x2, u, weight, lora_A, lora_B = ctx.saved_tensors
        need = ctx.needs_input_grad
        rows = math.prod(g.shape[:-1])
        g2 = g.reshape(rows, g.shape[-1]).contiguous()
        gu, dB, _ = run("linear_backward", g2, u, lora_B, need[3], need[4])
        dx = dA = None
        if need[3]:
            gu = gu * ctx.scaling  # (rows, r)
            if ctx.source is None:
                _, dA, _ = run("linear_backward", gu, x2, lora_A, False, True)
            else:
                dA = _weight_grad_from_source(ctx.source, gu, lora_A, rows)
        if need[0]:
            # g W + (s g B) A = g (W + s B A): one GEMM into dx and a weight-sized temporary, instead
            # of a second (rows, in) product and the sum of the two
            merged = run("matmul", lora_B * ctx.scaling, lora_A) + weight
            dx, _, _ = run("linear_backward", g2, None, merged, True, False)
            dx = dx.reshape(ctx.x_shape)
        return dx, None, None, dA, dB, None, None
