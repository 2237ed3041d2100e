"""RAdam (torch.optim.RAdam): Adam whose adaptive step is switched on only once the variance of the
adaptive learning rate is tractable (Liu et al., 2020).

    g <- g + wd p  (or p <- p (1 - lr wd) with decoupled_weight_decay)
    m <- m + (1 - beta1)(g - m);   v <- beta2 v + (1 - beta2) g^2;   m_hat = m / (1 - beta1^t)
    rho_inf = 2 / (1 - beta2) - 1;   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
    rho_t > 5:  r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                p <- p - lr m_hat r sqrt(1 - beta2^t) / (sqrt(v) + eps)
    otherwise:  p <- p - lr m_hat

Plain tensor math (no fused kernel). State as torch: "step", "exp_avg", "exp_avg_sq".
"""
from __future__ import annotations

from collections.abc import Iterable

from .. import ops
from ..tensor import Tensor
from ._tensor_math import TensorMathOptimizer, check_betas, check_hyper, next_step

__all__ = ["RAdam"]


class RAdam(TensorMathOptimizer):
    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, decoupled_weight_decay: bool = False,
                 maximize: bool = False) -> None:
        check_hyper(lr=lr, eps=eps, weight_decay=weight_decay)
        check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        if not state:
            state["step"] = ops.tensor(0.0)
            state["exp_avg"] = ops.zeros_like(p)
            state["exp_avg_sq"] = ops.zeros_like(p)
        step = next_step(state)
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p.copy_(p * (1 - lr * wd))
            else:
                grad = grad + p * wd
        exp_avg = state["exp_avg"]
        exp_avg = exp_avg + (grad - exp_avg) * (1 - beta1)
        exp_avg_sq = state["exp_avg_sq"] * beta2 + grad * grad * (1 - beta2)
        state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        corrected = exp_avg / bias_correction1
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = (bias_correction2 ** 0.5) / (exp_avg_sq.sqrt() + group["eps"])
            p.copy_(p - corrected * lr * adaptive * rect)
        else:
            p.copy_(p - corrected * lr)
