"""Recurrent layers: nn.RNN, nn.LSTM, nn.GRU (torch.nn's arguments, parameter names, gate order and
initialisation U(-1/sqrt(H), 1/sqrt(H))); the cells nn.RNNCell, nn.LSTMCell, nn.GRUCell are in
rnn_cell.py and re-exported here.

Each layer and direction is one op, ops.rnn.rnn_input_layer: one kernel call that runs the input
projection for all steps (x W_ih^T + b_ih over (T, B, I)) and the recurrence (tinyml/ops/rnn.py has the
math: LSTM i f g o, GRU r z n with b_hn inside r * (...), Elman tanh/relu). Layer l > 0 reads the
concatenated outputs of both directions of layer l - 1, through dropout in training. PackedSequence
inputs run on their padded form with the pack's batch_sizes, so each sequence stops at its own length;
h_n holds each sequence's last state. LSTM proj_size = P > 0 (torch's projections): h_t = (o_t
tanh(c_t)) W_hr^T has P features, weight_hh is (4H, P), layer l > 0 reads P * num_directions features;
that layer runs as per-step ops (ops/rnn.py lstm_projected_layer), not the fused kernel.
"""

from __future__ import annotations

import warnings

from .. import ops
from ..ops.rnn import GATES, lstm_projected_layer, rnn_input_layer
from . import functional as F
from .module import Module
from .parameter import Parameter
from .rnn_cell import GRUCell, LSTMCell, RNNCell, RNNCellBase, elman_mode, reset_uniform
from .utils.rnn import PackedSequence, packed_to_padded, padded_to_packed

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]


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
        if not isinstance(proj_size, int) or proj_size < 0:
            raise ValueError(
                f"proj_size should be a positive integer or zero to disable projections, got {proj_size}"
            )
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size has to be smaller than hidden_size, got proj_size={proj_size} and "
                f"hidden_size={hidden_size}"
            )
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size, self.num_layers = (
            mode,
            input_size,
            hidden_size,
            num_layers,
        )
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        gate_size = GATES[mode] * hidden_size
        real_hidden = proj_size or hidden_size  # the features of h (and of each direction's output)
        num_directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                in_size = input_size if layer == 0 else real_hidden * num_directions
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (gate_size, in_size), "weight_hh": (gate_size, real_hidden)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if proj_size:
                    shapes.update(weight_hr=(proj_size, hidden_size))
                for name, shape in shapes.items():
                    self.register_parameter(
                        name + suffix, Parameter(ops.empty(shape, device=device, dtype=dtype))
                    )
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_uniform(self)

    def _weights(self, layer: int, direction: int):
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        get = lambda name: getattr(self, name + suffix, None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def forward(self, input, hx=None):
        """input (T, B, I) ((B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence);
        hx (L*D, B, H) (LSTM: a tuple (h0, c0), h0 (L*D, B, P) with proj_size P), zeros when None.
        Returns (output, h_n) (LSTM: (output, (h_n, c_n))), output (T, B, D*H) (D*P with proj_size) or
        a PackedSequence like the input."""
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
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, direction)
                k = layer * D + direction
                if w_hr is None:  # one kernel call: the input projection and the T steps
                    res = rnn_input_layer(
                        self.mode,
                        x,
                        w_ih,
                        b_ih,
                        h0[k],
                        c0[k] if is_lstm else None,
                        w_hh,
                        b_hh,
                        batch_sizes=batch_sizes,
                        reverse=direction == 1,
                    )
                else:
                    xproj = F.linear(x, w_ih, b_ih)  # (T, B, 4 H): every step's input projection at once
                    res = lstm_projected_layer(
                        self.mode,
                        xproj,
                        h0[k],
                        c0[k],
                        w_hh,
                        b_hh,
                        w_hr,
                        batch_sizes=batch_sizes,
                        reverse=direction == 1,
                    )
                outs.append(res[0])
                h_n.append(res[1])
                if is_lstm:
                    c_n.append(res[2])
            x = outs[0] if D == 1 else ops.cat(outs, 2)  # (T, B, D H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        # (L D, B, H); one layer and direction: a view of the kernel's state, not a stacked copy
        h_n = h_n[0].unsqueeze(0) if len(h_n) == 1 else ops.stack(h_n, 0)
        c_n = (c_n[0].unsqueeze(0) if len(c_n) == 1 else ops.stack(c_n, 0)) if is_lstm else None
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
        h_shape = (self.num_layers * D, B, self.proj_size or self.hidden_size)
        if hx is None:
            h0 = ops.zeros(h_shape, dtype=x.dtype, device=x.device)
            return h0, (ops.zeros(shape, dtype=x.dtype, device=x.device) if self.proj_size else h0)
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
            want = shape if i == 1 else h_shape
            if tuple(s.shape) != want:
                which = "cell" if i == 1 else "hidden"
                raise RuntimeError(f"Expected {which} size {want}, got {tuple(s.shape)}")
            if sorted_indices is not None:
                s = s.index_select(1, sorted_indices)
            states[i] = s
        return states[0], (states[1] if is_lstm else None)

    def extra_repr(self) -> str:
        options = {
            "proj_size": (self.proj_size, 0),
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
            elman_mode(nonlinearity),
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
