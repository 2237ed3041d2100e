"""Recurrent cells: nn.RNNCell, nn.LSTMCell, nn.GRUCell (torch.nn's arguments, parameter names, gate
order and initialisation U(-1/sqrt(H), 1/sqrt(H))). One step is one input projection (F.linear) and
one step of the rnn kernel family (tinyml/ops/rnn.py has the math)."""

from __future__ import annotations

import math

from .. import ops
from ..ops.rnn import GATES, rnn_layer
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "RNNCellBase", "elman_mode", "reset_uniform"]


def elman_mode(nonlinearity: str) -> str:
    """The recurrence mode of an Elman RNN (layer or cell) with this nonlinearity."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def reset_uniform(module: Module) -> None:
    """torch's recurrent initialisation: every parameter U(-1/sqrt(H), 1/sqrt(H)), H = hidden_size."""
    stdv = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0
    for weight in module.parameters():
        init.uniform_(weight, -stdv, stdv)


class RNNCellBase(Module):
    def __init__(
        self, mode: str, input_size: int, hidden_size: int, bias: bool, device=None, dtype=None
    ) -> None:
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        G = GATES[mode]
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = Parameter(ops.empty((G * hidden_size, input_size), **kw))
        self.weight_hh = Parameter(ops.empty((G * hidden_size, hidden_size), **kw))
        if bias:
            self.bias_ih = Parameter(ops.empty((G * hidden_size,), **kw))
            self.bias_hh = Parameter(ops.empty((G * hidden_size,), **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_uniform(self)

    def _step(self, input: Tensor, hx, is_lstm: bool):
        if input.ndim not in (1, 2):
            raise ValueError(
                f"{type(self).__name__}: Expected input to be 1D or 2D, got {input.ndim}D instead"
            )
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input has inconsistent input_size: got {input.shape[-1]} expected {self.input_size}"
            )
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        shape = (x.shape[0], self.hidden_size)
        if hx is None:
            states = [ops.zeros(shape, dtype=x.dtype, device=x.device)] * (2 if is_lstm else 1)
        else:
            states = list(hx) if is_lstm else [hx]
            states = [s if batched else s.unsqueeze(0) for s in states]
            for s in states:
                if tuple(s.shape) != shape:
                    raise RuntimeError(
                        f"hidden{'' if batched else ' (unbatched)'} has shape "
                        f"{tuple(s.shape if batched else s.shape[1:])}, expected "
                        f"{shape if batched else shape[1:]}"
                    )
        xproj = F.linear(x, self.weight_ih, self.bias_ih).unsqueeze(0)  # (1, B, G H)
        res = rnn_layer(
            self.mode, xproj, states[0], states[1] if is_lstm else None, self.weight_hh, self.bias_hh
        )
        out = (res[1], res[2]) if is_lstm else (res[1],)
        return tuple(o if batched else o.squeeze(0) for o in out)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    """h' = nonlinearity(x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ) -> None:
        self.nonlinearity = nonlinearity
        super().__init__(elman_mode(nonlinearity), input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, hx, False)[0]


class LSTMCell(RNNCellBase):
    """(h', c') from input (B, I) and hx = (h, c); gates i, f, g, o."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple[Tensor, Tensor]:
        return self._step(input, hx, True)


class GRUCell(RNNCellBase):
    """h' from input (B, I) and h; gates r, z, n."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, hx, False)[0]
