"""Loss functions with PyTorch's signatures and reductions ('none' | 'mean' | 'sum', plus the legacy
size_average/reduce flags). Kernels compute per-element (or per-row) losses; the op reduces.

    cross_entropy   class indices: fused log-softmax + pick + label smoothing (one kernel each way,
                    saves only the row log-sum-exp); with class weights: log_softmax -> nll_loss;
                    probability targets: -sum_c p_c log_softmax(x)_c
    nll_loss        -w[t] x[t]; 'mean' divides by sum of w[t] over non-ignored targets
    l1 / smooth_l1 / huber / bce_with_logits / binary_cross_entropy / kl_div: pointwise kernels
    mse_loss        (x - y)^2 through ordinary ops;  cosine_similarity  x.y / (|x| |y|)
Under create_graph=True each backward builds its derivative from tensor ops (double backward).
"""
from __future__ import annotations

import warnings

from .. import dtypes as _dt
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor, _wrap_dim
from ._broadcast import prepare
from ._loss_common import class_rows, float_input, legacy_reduction, reduce_loss
from .activation import logsigmoid
from .creation import arange
from .pointwise import clamp, where
from .softmax import log_softmax
from .unary import sigmoid, sign

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cosine_similarity",
    "cross_entropy",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
]


class CrossEntropy(Function):
    """Saves the logits and two (N,) row statistics, the max m and log_sum = log sum exp(x - m)
    (not their sum, which rounds log_sum away for large logits): backward's softmax is
    exp((x - m) - log_sum)."""

    @staticmethod
    def forward(ctx, logits, target, ignore_index, label_smoothing):
        loss, row_max, log_sum = run("cross_entropy_forward", logits, target, ignore_index, label_smoothing)
        ctx.save_for_backward(logits, target, row_max, log_sum)
        ctx.args = (ignore_index, label_smoothing)
        return loss

    @staticmethod
    def backward(ctx, g):
        logits, target, row_max, log_sum = ctx.saved_tensors
        if is_grad_enabled():  # create_graph, dx_ij = g_i (softmax_ij - (1 - ls)[j == t_i] - ls/C)
            (ignore_index, ls), c = ctx.args, logits.shape[1]
            p, hit = log_softmax(logits, 1).exp(), arange(c, device=logits.device) == target.unsqueeze(1)
            d = where(hit, p - (1 - ls), p) - (ls / c if c else 0.0)
            return d * where(target != ignore_index, g, 0.0).unsqueeze(1), None, None, None  # 0: ignored rows
        dx = run("cross_entropy_backward", logits, target, row_max, log_sum, g.contiguous(), *ctx.args)
        return dx, None, None, None


class NllLoss(Function):
    """-> (loss per row, w[t] per row); the second output only feeds the 'mean' denominator."""

    @staticmethod
    def forward(ctx, logp, target, weight, ignore_index):
        loss, w_t = run("nll_loss_forward", logp, target, weight, ignore_index)
        ctx.save_for_backward(logp, target, w_t)
        ctx.ignore_index = ignore_index
        ctx.set_materialize_grads(False)
        return loss, w_t

    @staticmethod
    def backward(ctx, g, _g_wt):
        if g is None:
            return None, None, None, None
        logp, target, w_t = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: dlogp_ij = -w_t,i g_i [j == t_i], linear in g
            hit = arange(logp.shape[1], device=logp.device) == target.unsqueeze(1)
            return where(hit, (-(w_t.detach() * g)).unsqueeze(1), 0.0), None, None, None
        return run("nll_loss_backward", logp, target, w_t, g.contiguous(), ctx.ignore_index), None, None, None


class _Pointwise(Function):
    """loss = `forward_kernel(x, y, *params)`; dx = `backward_kernel(x, y, dl, *params)` (under
    create_graph the subclass's `formula(x - y, dl, *params)`), dy = -dx. Each subclass names its
    two kernels."""

    forward_kernel = backward_kernel = ""

    @staticmethod
    def forward(ctx, x, y, *params):
        ctx.save_for_backward(x, y)
        ctx.params = params
        return run(ctx.fn.forward_kernel, x, y, *params)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the same derivative from differentiable tensor ops
            dx = ctx.fn.formula(x - y, g, *ctx.params)
        else:
            dx = run(ctx.fn.backward_kernel, x, y, g, *ctx.params)
        return (dx if ctx.needs_input_grad[0] else None, -dx if ctx.needs_input_grad[1] else None) + \
            (None,) * len(ctx.params)


class L1Loss(_Pointwise):
    forward_kernel, backward_kernel = "l1_loss_forward", "l1_loss_backward"
    formula = staticmethod(lambda d, g: g * sign(d))


class SmoothL1Loss(_Pointwise):
    forward_kernel, backward_kernel = "smooth_l1_loss_forward", "smooth_l1_loss_backward"
    formula = staticmethod(lambda d, g, beta: g * (sign(d) if beta == 0 else where(d.abs() < beta, d / beta,
                                                                                     sign(d))))


class HuberLoss(_Pointwise):
    forward_kernel, backward_kernel = "huber_loss_forward", "huber_loss_backward"
    formula = staticmethod(lambda d, g, delta: g * where(d.abs() < delta, d, sign(d) * delta))


class BCEWithLogits(Function):
    @staticmethod
    def forward(ctx, x, y, pos_weight):
        ctx.save_for_backward(x, y, pos_weight)
        return run("bce_with_logits_forward", x, y, pos_weight)

    @staticmethod
    def backward(ctx, g):
        x, y, pos_weight = ctx.saved_tensors
        grads = (BCEWithLogits.formula(x, y, pos_weight, g) if is_grad_enabled()  # create_graph: tensor ops
                 else run("bce_with_logits_backward", x, y, pos_weight, g))
        return tuple(d if n else None for d, n in zip(grads, ctx.needs_input_grad))

    @staticmethod
    def formula(x, y, pos_weight, g):
        """dx = g ((1 - y) - c sigmoid(-x)), c = 1 + (pw - 1) y; dy = g ((pw - 1) softplus(-x) - x);
        dpw = g y softplus(-x) (softplus(-x) = -logsigmoid(x)); without pw: dx = g (sigmoid(x) - y)."""
        if pos_weight is None:
            return g * (sigmoid(x) - y), -(g * x), None
        sp = -logsigmoid(x)
        dx = g * ((1 - y) - ((pos_weight - 1) * y + 1) * sigmoid(-x))
        return dx, g * ((pos_weight - 1) * sp - x), g * y * sp


class KLDiv(Function):
    @staticmethod
    def forward(ctx, x, t, log_target):
        ctx.save_for_backward(x, t)
        ctx.log_target = log_target
        return run("kl_div_forward", x, t, log_target)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        if not is_grad_enabled():
            dx, dt = run("kl_div_backward", x, t, g, ctx.log_target)
        elif ctx.log_target:  # create_graph, tensor ops: dx = -g e^t, dt = g e^t (t - x + 1)
            dx, dt = -(g * t.exp()), g * t.exp() * (t - x + 1)
        else:  # create_graph, tensor ops: dx = -g t, dt = g (log t + 1 - x) where t > 0, else 0
            dx, dt = -(g * t), where(t > 0, g * (where(t > 0, t, 1.0).log() + 1 - x), 0.0)
        return dx if ctx.needs_input_grad[0] else None, dt if ctx.needs_input_grad[1] else None, None


class BinaryCrossEntropy(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return run("binary_cross_entropy_forward", x, y)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        if not is_grad_enabled():
            dx, dy = run("binary_cross_entropy_backward", x, y, g)
        else:  # create_graph, tensor ops: dx = g (x - y) / max(x (1 - x), 1e-12), dy = g (log(1-x) - log x)
            dx = g * (x - y) / clamp(x * (1 - x), min=1e-12)
            dy = g * (clamp((-x).log1p(), min=-100.0) - clamp(x.log(), min=-100.0))  # logs >= -100
        return dx if ctx.needs_input_grad[0] else None, dy if ctx.needs_input_grad[1] else None


def _weight_vector(weight: Tensor | None, n_classes: int, dtype: _dt.dtype) -> Tensor | None:
    if weight is None:
        return None
    if tuple(weight.shape) != (n_classes,):
        raise RuntimeError(f"weight tensor should be defined either for all {n_classes} classes or no "
                           f"classes but got weight tensor of shape: {list(weight.shape)}")
    return weight if weight.dtype is dtype else weight.to(dtype)


def _nll_rows(logp: Tensor, t: Tensor, weight, ignore_index: int, reduction: str, out_shape: tuple,
              smoothing: float = 0.0) -> Tensor:
    """nll_loss over (M, C) rows, optionally with cross-entropy's label-smoothing term (weights applied)."""

    loss, w_t = NllLoss.apply(logp, t, weight, ignore_index)
    w_t = w_t.detach()
    if smoothing:
        n_classes = logp.shape[1]
        smooth = -((logp * weight) if weight is not None else logp).sum(1)
        smooth = where(t != ignore_index, smooth, 0.0)
        loss = loss * (1 - smoothing) + smooth * (smoothing / n_classes)
    if reduction == "none":
        return loss.reshape(out_shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w_t.sum()


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """-input[i, target[i]] * weight[target[i]] over (N, C) or (N, C, d1, ...) log-probabilities."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    x = float_input(input, "nll_loss")
    logp, t, out_shape = class_rows(x, target, "nll_loss")
    w = _weight_vector(weight, logp.shape[1], x.dtype)
    return _nll_rows(logp, t, w, ignore_index, reduction, out_shape)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """log_softmax over dim 1 (dim 0 for unbatched (C,)) then negative log-likelihood of the target:
    class indices (N,) / (N, d1, ...) or class probabilities of the input's shape."""

    reduction = legacy_reduction(size_average, reduce, reduction)
    x = float_input(input, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if x.ndim == 0:
        raise RuntimeError("cross_entropy: input must have at least 1 dimension (the classes), got a 0-d "
                           "tensor")
    cdim = 1 if x.ndim > 1 else 0
    n_classes = x.shape[cdim]
    w = _weight_vector(weight, n_classes, x.dtype)
    if isinstance(target, Tensor) and target.dtype.is_floating_point:
        if tuple(target.shape) != tuple(x.shape):
            raise RuntimeError(f"cross_entropy: class-probability targets must have the input's shape; got "
                               f"input of shape {tuple(x.shape)} and target of shape {tuple(target.shape)}")
        logp = log_softmax(x, cdim)
        p = target if not label_smoothing else target * (1 - label_smoothing) + label_smoothing / n_classes
        prod = logp * p
        if w is not None:
            prod = prod * w.reshape((n_classes,) + (1,) * (x.ndim - cdim - 1))
        return reduce_loss(-prod.sum(cdim), reduction)
    logits, t, out_shape = class_rows(x, target, "cross_entropy")
    if w is not None:
        return _nll_rows(log_softmax(logits, 1), t, w, ignore_index, reduction, out_shape, label_smoothing)
    loss = CrossEntropy.apply(logits, t, int(ignore_index), float(label_smoothing))
    if reduction == "none":
        return loss.reshape(out_shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (t != ignore_index).sum()  # mean over non-ignored targets (NaN if none, as PyTorch)


def _same_size_warning(input: Tensor, target: Tensor) -> None:
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}). This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", stacklevel=3)


def _regression(input, target, weight, reduction, name, elementwise, weighted_mean_by_weight=True):
    x = float_input(input, name)
    _same_size_warning(x, target)
    a, b = prepare(x, target, name)
    loss = elementwise(a, b)
    if weight is None:
        return reduce_loss(loss, reduction)
    if tuple(weight.shape) != tuple(x.shape):
        raise ValueError(f"Weights and input must have the same size (weight {tuple(weight.shape)}, input "
                         f"{tuple(x.shape)}).")
    loss = loss * weight
    if reduction == "mean" and weighted_mean_by_weight:
        return loss.sum() / weight.sum()
    return reduce_loss(loss, reduction)


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
             weight: Tensor | None = None) -> Tensor:
    """(input - target)^2; with weight, 'mean' is sum(w l) / sum(w)."""
    reduction = legacy_reduction(size_average, reduce, reduction)

    def squared(a, b):
        d = a - b
        return d * d

    return _regression(input, target, weight, reduction, "mse_loss", squared)


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
            weight: Tensor | None = None) -> Tensor:
    """|input - target|; with weight, 'mean' is sum(w l) / sum(w)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    return _regression(input, target, weight, reduction, "l1_loss", L1Loss.apply)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, |d| - beta / 2 elsewhere (d = input - target)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta (got {beta}).")
    return _regression(input, target, None, reduction, "smooth_l1_loss",
                       lambda a, b: SmoothL1Loss.apply(a, b, float(beta)))


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """0.5 d^2 where |d| < delta, delta (|d| - delta / 2) elsewhere; with weight, 'mean' is mean(w l)."""
    if delta <= 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta (got {delta}).")
    return _regression(input, target, weight, legacy_reduction(None, None, reduction), "huber_loss",
                       lambda a, b: HuberLoss.apply(a, b, float(delta)), weighted_mean_by_weight=False)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """-w [pw y log s(x) + (1 - y) log(1 - s(x))], computed stably from the logits x."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    x = float_input(input, "binary_cross_entropy_with_logits")
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"Target size ({tuple(target.shape)}) must be the same as input size "
                         f"({tuple(x.shape)})")
    y = target if target.dtype is x.dtype else target.to(x.dtype)
    if pos_weight is not None:
        pos_weight = pos_weight.to(x.dtype) if pos_weight.dtype is not x.dtype else pos_weight
        pos_weight = pos_weight.expand(x.shape) if pos_weight.shape != x.shape else pos_weight
    loss = BCEWithLogits.apply(x, y, pos_weight)
    if weight is not None:
        loss = loss * weight
    return reduce_loss(loss, reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """-w [y log x + (1 - y) log(1 - x)] for probabilities x in [0, 1] (logs clamped at -100)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    x = float_input(input, "binary_cross_entropy")
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                         f"({tuple(x.shape)}) is deprecated. Please ensure they have the same size.")
    y = target if target.dtype is x.dtype else target.to(x.dtype)
    loss = BinaryCrossEntropy.apply(x, y)
    if weight is not None:
        loss = loss * weight
    return reduce_loss(loss, reduction)


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """target (log target - input) pointwise (input holds log-probabilities); 'batchmean' divides
    the sum by the batch size, the KL divergence proper."""
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce, reduction)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math "
                      "definition.",
                      stacklevel=2)
    x = float_input(input, "kl_div")
    a, b = prepare(x, target, "kl_div")
    loss = KLDiv.apply(a, b, bool(log_target))
    if reduction == "batchmean":
        return loss.sum() / x.shape[0] if x.ndim else loss.sum()
    return reduce_loss(loss, reduction)


def _safe_norm(x: Tensor, dim: int) -> Tensor:
    """sqrt(sum x^2) over dim (keepdim) with a zero, not NaN, gradient at the zero vector."""

    sq = (x * x).sum(dim, keepdim=True)
    nonzero = sq > 0
    return where(nonzero, where(nonzero, sq, 1.0) ** 0.5, 0.0)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 x2) / (max(|x1|, eps) max(|x2|, eps)) along dim, broadcasting x1 and x2. As in PyTorch
    the eps clamp does not enter the gradient (the norm's gradient flows as if unclamped)."""

    a, b = prepare(x1, x2, "cosine_similarity")
    if not a.dtype.is_floating_point:
        a, b = a.to(_dt.get_default_dtype()), b.to(_dt.get_default_dtype())
    d = _wrap_dim(dim, a.ndim)
    n1, n2 = _safe_norm(a, d), _safe_norm(b, d)
    n1 = n1 + (where(n1 < eps, eps, n1) - n1).detach()
    n2 = n2 + (where(n2 < eps, eps, n2) - n2).detach()
    return ((a / n1) * (b / n2)).sum(d)
