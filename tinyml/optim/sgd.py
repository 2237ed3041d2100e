"""SGD with momentum, dampening, Nesterov, weight decay and maximize (torch.optim.SGD).

    d = g (+ wd p);  buf = d at the first step, then momentum buf + (1 - dampening) d
    p <- p - lr (d + momentum buf  if nesterov  else  buf)

One `sgd_step` kernel call per (device, dtype) bucket of a parameter group.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..autograd import enable_grad
from ..backends import dispatch
from ..tensor import Tensor
from .optimizer import Optimizer, _bucket, _check_grad, required

__all__ = ["SGD"]


class SGD(Optimizer):
    _complex_params = True  # p <- p - lr g with g = dL/dx + i dL/dy (torch's convention) descends L

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            momentum = group["momentum"]
            params = [p for p in group["params"] if p.grad is not None]
            for (dev_type, _, _), ps in _bucket(params).items():
                bufs = [self.state[p].get("momentum_buffer") if momentum != 0 else None for p in ps]
                out = dispatch("sgd_step", dev_type)(
                    [p._data for p in ps], [_check_grad(p)._data for p in ps],
                    [None if b is None else b._data for b in bufs],
                    float(group["lr"]), momentum, group["dampening"], group["weight_decay"], group["nesterov"],
                    group["maximize"])
                for p, b, arr in zip(ps, bufs, out):
                    p._version[0] += 1  # the kernel wrote p's storage
                    if momentum != 0:
                        self.state[p]["momentum_buffer"] = b if b is not None and b._data is arr else \
                            Tensor._make(arr, p.device)
        return loss
