"""Recurrent layers: nn.RNN, nn.LSTM, nn.GRU and nn.RNNCell, nn.LSTMCell, nn.GRUCell (torch.nn's
arguments, parameter names, gate order and initialisation U(-1/sqrt(H), 1/sqrt(H))).

Each layer and direction is one input projection for all steps (F.linear over (T, B, I)) and one
call of the recurrence kernel (tinyml/ops/rnn.py has the math: LSTM i f g o, GRU r z n with b_hn
inside r * (...), Elman tanh/relu). Layer l > 0 reads the concatenated outputs of both directions
of layer l - 1, through dropout in training. PackedSequence inputs run on their padded form with
the pack's batch_sizes, so each sequence stops at its own length; h_n holds each sequence's last
state. proj_size (LSTM projections) is not supported.
"""

from __future__ import annotations

import math
import warnings

from .. import ops
from ..ops.rnn import GATES, rnn_layer
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter
from .utils.rnn import PackedSequence, packed_to_padded, padded_to_packed

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]


def _elman_mode(nonlinearity: str) -> str:
    """The recurrence mode of an Elman RNN (layer or cell) with this nonlinearity."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


class RNNBase(Module):
    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(
                f"dropout should be a number in range [0, 1] representing the probability of an "
                f"element being zeroed, got {dropout}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                f"expects num_layers greater than 1, but got dropout={dropout} and num_layers=1",
                stacklevel=2,
            )
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers}")
        if proj_size != 0:
            raise NotImplementedError(
                f"LSTM proj_size={proj_size}: projections are not supported by tinyml; use proj_size=0"
            )
        self.mode, self.input_size, self.hidden_size, self.num_layers = (
            mode,
            input_size,
            hidden_size,
            num_layers,
        )
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        gate_size = GATES[mode] * hidden_size
        num_directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                in_size = input_size if layer == 0 else hidden_size * num_directions
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (gate_size, in_size), "weight_hh": (gate_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                for name, shape in shapes.items():
                    self.register_parameter(
                        name + suffix, Parameter(ops.empty(shape, device=device, dtype=dtype))
                    )
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _weights(self, layer: int, direction: int):
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        get = lambda name: getattr(self, name + suffix) if self.bias or name.startswith("weight") else None  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def forward(self, input, hx=None):
        """input (T, B, I) ((B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence);
        hx (L*D, B, H) (LSTM: a tuple (h0, c0)), zeros when None. Returns (output, h_n) (LSTM:
        (output, (h_n, c_n))), output (T, B, D*H) or a PackedSequence like the input."""
        is_lstm = self.mode == "LSTM"
        packed = isinstance(input, PackedSequence)
        sorted_indices = unsorted_indices = None
        if packed:
            batch_sizes = tuple(int(s) for s in input.batch_sizes.numpy())
            sorted_indices, unsorted_indices = input.sorted_indices, input.unsorted_indices
            x = packed_to_padded(input.data, batch_sizes)  # (T, B, I)
            batched = True
        else:
            batch_sizes = None
            if input.ndim not in (2, 3):
                raise ValueError(
                    f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.ndim}D input "
                    f"of shape {tuple(input.shape)}"
                )
            batched = input.ndim == 3
            x = input if batched else input.unsqueeze(1)
            if batched and self.batch_first:
                x = x.transpose(0, 1)
        if x.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]}"
            )
        D = 2 if self.bidirectional else 1
        B = x.shape[1]
        h0, c0 = self._initial_state(hx, x, B, D, batched, is_lstm, sorted_indices)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
                k = layer * D + direction
                xproj = F.linear(x, w_ih, b_ih)  # (T, B, G H): every step's input projection in one matmul
                res = rnn_layer(
                    self.mode,
                    xproj,
                    h0[k],
                    c0[k] if is_lstm else None,
                    w_hh,
                    b_hh,
                    batch_sizes,
                    reverse=direction == 1,
                )
                outs.append(res[0])
                h_n.append(res[1])
                if is_lstm:
                    c_n.append(res[2])
            x = outs[0] if D == 1 else ops.cat(outs, 2)  # (T, B, D H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = ops.stack(h_n, 0)
        c_n = ops.stack(c_n, 0) if is_lstm else None
        if unsorted_indices is not None:  # back to the caller's batch order
            h_n = h_n.index_select(1, unsorted_indices)
            c_n = c_n.index_select(1, unsorted_indices) if is_lstm else None
        if packed:
            output = PackedSequence(
                padded_to_packed(x, batch_sizes), input.batch_sizes, sorted_indices, unsorted_indices
            )
        elif not batched:
            output, h_n = x.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if is_lstm else None
        else:
            output = x.transpose(0, 1) if self.batch_first else x
        return output, ((h_n, c_n) if is_lstm else h_n)

    def _initial_state(self, hx, x, B, D, batched, is_lstm, sorted_indices):
        shape = (self.num_layers * D, B, self.hidden_size)
        if hx is None:
            zeros = ops.zeros(shape, dtype=x.dtype, device=x.device)
            return zeros, zeros
        if is_lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise RuntimeError("LSTM: hx must be a tuple (h_0, c_0)")
            states = list(hx)
        else:
            if isinstance(hx, (tuple, list)):
                raise RuntimeError(f"{type(self).__name__}: hx must be a Tensor, got a {type(hx).__name__}")
            states = [hx]
        for i, s in enumerate(states):
            if not batched:
                if s.ndim != 2:
                    raise RuntimeError(
                        f"For unbatched 2-D input, hx should also be 2-D but got {s.ndim}-D tensor"
                    )
                s = s.unsqueeze(1)
            if tuple(s.shape) != shape:
                which = "cell" if i == 1 else "hidden"
                raise RuntimeError(f"Expected {which} size {shape}, got {tuple(s.shape)}")
            if sorted_indices is not None:
                s = s.index_select(1, sorted_indices)
            states[i] = s
        return states[0], (states[1] if is_lstm else None)

    def extra_repr(self) -> str:
        options = {
            "num_layers": (self.num_layers, 1),
            "bias": (self.bias, True),
            "batch_first": (self.batch_first, False),
            "dropout": (self.dropout, 0.0),
            "bidirectional": (self.bidirectional, False),
        }
        extra = "".join(f", {k}={v}" for k, (v, default) in options.items() if v != default)
        return f"{self.input_size}, {self.hidden_size}{extra}"


class RNN(RNNBase):
    """Elman RNN: h_t = nonlinearity(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), nonlinearity tanh or relu."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        self.nonlinearity = nonlinearity
        super().__init__(
            _elman_mode(nonlinearity),
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )


class LSTM(RNNBase):
    """LSTM (gates i, f, g, o in torch's order); forward returns (output, (h_n, c_n))."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device=device,
            dtype=dtype,
        )


class GRU(RNNBase):
    """GRU (gates r, z, n in torch's order, b_hn inside r * (...))."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )


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

    reset_parameters = RNNBase.reset_parameters  # the same U(-1/sqrt(H), 1/sqrt(H)) of every parameter

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
        super().__init__(_elman_mode(nonlinearity), input_size, hidden_size, bias, device, dtype)

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
