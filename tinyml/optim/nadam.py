"""NAdam (torch.optim.NAdam): Adam with Nesterov momentum and the momentum-decay schedule of Dozat.

    mu_t = beta1 (1 - 0.5 * 0.96^(t psi)),  psi = momentum_decay;   P_t = prod_{i<=t} mu_i
    g <- g + wd p  (or p <- p (1 - lr wd) with decoupled_weight_decay)
    m <- m + (1 - beta1)(g - m);   v <- beta2 v + (1 - beta2) g^2;   d = sqrt(v / (1 - beta2^t)) + eps
    p <- p - lr (1 - mu_t) / (1 - P_t) * g / d - lr mu_{t+1} / (1 - P_t mu_{t+1}) * m / d

Plain tensor math (no fused kernel). State as torch: "step", "mu_product" (a float32 0-d tensor, as
torch keeps it, so the products round the same way), "exp_avg", "exp_avg_sq".
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import ops
from ..tensor import Tensor
from ._tensor_math import TensorMathOptimizer, check_betas, check_hyper, next_step

__all__ = ["NAdam"]


class NAdam(TensorMathOptimizer):
    def __init__(self, params: Iterable, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3, *,
                 decoupled_weight_decay: bool = False, maximize: bool = False) -> None:
        check_hyper(lr=lr, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay)
        check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        if not state:
            state["step"] = ops.tensor(0.0)
            state["mu_product"] = ops.tensor(1.0)
            state["exp_avg"] = ops.zeros_like(p)
            state["exp_avg_sq"] = ops.zeros_like(p)
        step = next_step(state)
        beta1, beta2 = group["betas"]
        lr, wd, psi = group["lr"], group["weight_decay"], group["momentum_decay"]
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p.copy_(p * (1 - lr * wd))
            else:
                grad = grad + p * wd
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        mu_product = float(np.float32(state["mu_product"].item()) * np.float32(mu))
        state["mu_product"] = ops.tensor(mu_product)
        exp_avg = state["exp_avg"]
        exp_avg = exp_avg + (grad - exp_avg) * (1 - beta1)
        exp_avg_sq = state["exp_avg_sq"] * beta2 + grad * grad * (1 - beta2)
        state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
        denom = (exp_avg_sq / (1 - beta2 ** step)).sqrt() + group["eps"]
        mu_product_next = mu_product * mu_next
        p.copy_(p - grad / denom * (lr * (1.0 - mu) / (1.0 - mu_product)))
        p.copy_(p - exp_avg / denom * (lr * mu_next / (1.0 - mu_product_next)))
