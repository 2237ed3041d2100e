"""F.gumbel_softmax: a differentiable sample of a categorical distribution given its logits.

    g_i = -ln(E_i), E_i ~ Exponential(1)        (Gumbel(0, 1) noise)
    y_soft = softmax((logits + g) / tau, dim)
    hard=True: y = one_hot(argmax y_soft) - stop_grad(y_soft) + y_soft   (straight-through: the forward
               value is one-hot, the gradient is y_soft's)
"""
from __future__ import annotations

from .. import ops
from ..tensor import Tensor


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10,
                   dim: int = -1) -> Tensor:
    """Samples from the Gumbel-softmax distribution (Jang et al. 2016; Maddison et al. 2016)."""
    if not logits.dtype.is_floating_point:
        raise RuntimeError(f"gumbel_softmax: expected floating point logits, got dtype {logits.dtype}")
    gumbels = -ops.empty_like(logits).exponential_().log()
    y_soft = ops.softmax((logits + gumbels) / tau, dim)
    if not hard:
        return y_soft
    index = y_soft.argmax(dim, keepdim=True)
    y_hard = ops.zeros_like(logits).scatter(dim, index, 1.0)
    return y_hard - y_soft.detach() + y_soft
