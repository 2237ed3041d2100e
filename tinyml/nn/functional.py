"""tinyml.nn.functional: PyTorch's `torch.nn.functional` names over the ops in `tinyml.ops`.

    import tinyml.nn.functional as F
    h = F.gelu(F.linear(x, w, b))
    loss = F.cross_entropy(logits, targets, label_smoothing=0.1)

Everything here is a thin alias or argument adapter: the ops (Functions and kernels) live in
tinyml/ops/<family>.py.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops as _ops
from ..autograd import no_grad
from ..ops.activation import (  # noqa: F401
    elu,
    gelu,
    glu,
    hardtanh,
    leaky_relu,
    logsigmoid,
    mish,
    relu6,
    selu,
    silu,
    softplus,
    swiglu,
)
from ..ops.attention import scaled_dot_product_attention, scaled_dot_product_attention_packed  # noqa: F401
from ..ops.batch_norm import batch_norm  # noqa: F401
from ..ops.composed import hardsigmoid, hardswish  # noqa: F401
from ..ops.dropout import dropout  # noqa: F401
from ..ops.fold import fold, unfold  # noqa: F401
from ..ops.loss import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_similarity,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from ..ops.loss_embedding import cosine_embedding_loss, margin_ranking_loss, pairwise_distance  # noqa: F401
from ..ops.matmul import linear  # noqa: F401
from ..ops.norm import group_norm, layer_norm, rms_norm  # noqa: F401
from ..ops.reduce import normalize  # noqa: F401
from ..ops.softmax import log_softmax, softmax  # noqa: F401
from ..tensor import Tensor
from .bilinear import bilinear  # noqa: F401
from .dropout import dropout1d, dropout2d  # noqa: F401
from .gumbel import gumbel_softmax  # noqa: F401
from .instancenorm import instance_norm  # noqa: F401


def _maybe_inplace(input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    if not inplace:
        return out
    from ..ops.inplace import apply_inplace

    return apply_inplace(input, out)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """max(0, x) + weight * min(0, x); weight has 1 element or one per channel (dim 1 of input)."""
    if weight.numel() != 1:
        c = input.shape[1] if input.ndim >= 2 else 0
        if weight.ndim != 1 or weight.numel() != c:
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter "
                               f"numbers = {weight.numel()} and channel size = {c} (input of shape "
                               f"{list(input.shape)})")
        weight = weight.reshape((1, c) + (1,) * (input.ndim - 2))
    return _ops.where(input > 0, input, input * weight)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0)."""
    return _maybe_inplace(input, _ops.relu(input), inplace)


def relu_(input: Tensor) -> Tensor:
    """max(x, 0), in place (torch.nn.functional.relu_)."""
    return _ops.relu_(input)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """softmax(-x) along dim (torch.nn.functional.softmin); dtype casts the input first."""
    if dim is None:
        raise TypeError("softmin(): dim must be given (tinyml does not guess it, as PyTorch's implicit-dim "
                        "choice is deprecated)")
    return _ops.softmax(-(input if dtype is None else input.to(dtype)), dim)


def tanh(input: Tensor) -> Tensor:
    return _ops.tanh(input)


def sigmoid(input: Tensor) -> Tensor:
    return _ops.sigmoid(input)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of `weight` (num_embeddings, D) picked by the integer ids in `input` (any shape);
    the gradient at padding_idx stays zero. scale_grad_by_freq and sparse are not supported
    (they raise). With max_norm, the looked-up rows of `weight` whose norm_type-norm
    exceeds max_norm are first rescaled in place to that norm (embedding_renorm_), as torch does."""
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("F.embedding: scale_grad_by_freq and sparse=True are not supported by "
                                  "tinyml; use the defaults")
    if max_norm is not None:
        embedding_renorm_(weight, input, max_norm, norm_type)
    return _ops.embedding(input, weight, padding_idx)


def embedding_renorm_(weight: Tensor, input: Tensor, max_norm: float, norm_type: float = 2.0) -> Tensor:
    """torch.embedding_renorm_: rescale, in place and outside autograd, each row of `weight` that
    `input` looks up and whose norm_type-norm exceeds max_norm, to norm max_norm:
    w_i <- w_i * max_norm / (||w_i|| + 1e-7). Rows not looked up are left alone."""
    if input.numel() == 0:
        return weight
    with no_grad():
        ids = _ops.tensor(np.unique(input.cpu().numpy().reshape(-1)), device=weight.device)
        rows = weight[ids]
        mags = rows.abs()
        if norm_type == math.inf:
            norms = mags.amax(1)
        elif norm_type == 2.0:
            norms = (rows * rows).sum(1).sqrt()
        else:
            norms = (mags ** norm_type).sum(1) ** (1.0 / norm_type)
        scale = _ops.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).to(weight.dtype)
        weight[ids] = rows * scale.unsqueeze(1)
    return weight



# Names owned by other op families (movement, indexing, conv/pool): re-exported when their module
# provides them, so this file needs no edit as those families grow.
_FROM_OTHER_FAMILIES = ("pad", "one_hot", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d",
                        "max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "adaptive_max_pool2d",
                        "adaptive_max_pool1d", "adaptive_avg_pool1d",
                        "adaptive_avg_pool2d", "interpolate", "upsample", "upsample_nearest",
                        "upsample_bilinear")
for _name in _FROM_OTHER_FAMILIES:
    if hasattr(_ops, _name):
        globals()[_name] = getattr(_ops, _name)
del _name
