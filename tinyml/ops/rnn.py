"""Recurrent layers' recurrence (torch.nn.LSTM / GRU / RNN math, torch's gate order), one layer and
one direction per call. The input projection for all steps is one matmul, xproj = x W_ih^T + b_ih
(T, B, G H), done with F.linear (its own backward gives dx, dW_ih, db_ih); the recurrence kernel
then walks the T steps with the recurrent GEMM h W_hh^T inside (one kernel call per sequence, not
a few ops per step). G = 4 for LSTM (gates i f g o), 3 for GRU (r z n), 1 for RNN.

    LSTM:  a = xproj_t + h W_hh^T + b_hh;   i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g)
           c' = f c + i g,   h' = o tanh(c')
    GRU:   s = h W_hh^T + b_hh;   r = sigmoid(xproj_r + s_r),   z = sigmoid(xproj_z + s_z)
           n = tanh(xproj_n + r s_n)         (b_hn inside r (...), as torch's)
           h' = (1 - z) n + z h
    RNN:   h' = act(xproj_t + h W_hh^T + b_hh),   act = tanh or relu

Backward, per step in reverse, with dh = dL/dh' (from the output y_t plus the carried state):
    LSTM:  dc~ = dc' + dh o (1 - tanh^2 c');  da_i = dc~ g i(1-i),  da_f = dc~ c f(1-f),
           da_g = dc~ i (1-g^2),  da_o = dh tanh(c') o(1-o);   dc = dc~ f
           dxproj_t = da,  dh_prev = da W_hh,  dW_hh += da^T h_prev,  db_hh += sum_rows da
    GRU:   dn~ = dh (1-z)(1-n^2),  dr~ = dn~ s_n r(1-r),  dz~ = dh (h_prev - n) z(1-z)
           dxproj_t = [dr~, dz~, dn~],   ds = [dr~, dz~, dn~ r]
           dh_prev = dh z + ds W_hh,  dW_hh += ds^T h_prev,  db_hh += sum_rows ds
    RNN:   da = dh (1 - h'^2) (tanh) or dh [h' > 0] (relu);  dxproj_t = da,  dh_prev = da W_hh, ...

rnn_input_layer is the same layer from its input x (T, B, I) and W_ih, b_ih: one op and one kernel
call (rnn_layer_forward) that also runs the input projection, and whose backward adds
dx = dxproj W_ih, dW_ih = dxproj^T x, db_ih = sum_(t,b) dxproj (nn.LSTM / GRU / RNN use it).

batch_sizes (a PackedSequence's: non-increasing active-row counts per step) lets rows stop early:
inactive rows keep their state and give zero output, so h_n holds each sequence's last state.
The double backward is not supported (rnn_backward is a fused kernel).
"""

from __future__ import annotations

from ..autograd import Function
from ..backends import run
from ..tensor import Tensor
from .creation import zeros
from .matmul import linear
from .movement_copy import cat, stack
from .unary import sigmoid, tanh

__all__ = [
    "gru_cell",
    "lstm_cell",
    "lstm_projected_layer",
    "rnn_input_layer",
    "rnn_layer",
    "rnn_relu_cell",
    "rnn_tanh_cell",
]

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _keep_for_backward(ctx, y, h_n, c_n, saved, mode, batch_sizes, reverse) -> tuple:
    """What both recurrence nodes keep besides their saved tensors, and their outputs: y through a
    detached alias (no output -> node cycle), the kernel's internal state, the call's options."""
    ctx.y, ctx.state = y.detach(), saved
    ctx.mode, ctx.batch_sizes, ctx.reverse = mode, batch_sizes, reverse
    return (y, h_n) if c_n is None else (y, h_n, c_n)


class Recurrence(Function):
    once_differentiable = "rnn_backward"

    @staticmethod
    def forward(ctx, xproj, h0, c0, w_hh, b_hh, mode, batch_sizes, reverse):
        y, h_n, c_n, saved = run("rnn_forward", mode, xproj, h0, c0, w_hh, b_hh, batch_sizes, reverse)
        ctx.save_for_backward(h0, c0, w_hh, b_hh)
        return _keep_for_backward(ctx, y, h_n, c_n, saved, mode, batch_sizes, reverse)

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n=None):
        h0, c0, w_hh, b_hh = ctx.saved_tensors
        dx, dh0, dc0, dw, db = run(
            "rnn_backward",
            ctx.mode,
            dy,  # the backends make it contiguous as they need (the cpu kernel reads a batch-first view)
            dh_n.contiguous(),
            None if dc_n is None else dc_n.contiguous(),
            h0,
            c0,
            w_hh,
            b_hh,
            ctx.batch_sizes,
            ctx.reverse,
            ctx.y,
            ctx.state,
        )
        return dx, dh0, dc0, dw, db, None, None, None


class LayerRecurrence(Function):
    once_differentiable = "rnn_layer_backward"

    @staticmethod
    def forward(ctx, x, w_ih, b_ih, h0, c0, w_hh, b_hh, mode, batch_sizes, reverse):
        y, h_n, c_n, saved = run(
            "rnn_layer_forward", mode, x, w_ih, b_ih, h0, c0, w_hh, b_hh, batch_sizes, reverse
        )
        ctx.save_for_backward(x, w_ih, b_ih, h0, c0, w_hh, b_hh)
        return _keep_for_backward(ctx, y, h_n, c_n, saved, mode, batch_sizes, reverse)

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n=None):
        x, w_ih, b_ih, h0, c0, w_hh, b_hh = ctx.saved_tensors
        grads = run(
            "rnn_layer_backward",
            ctx.mode,
            dy,  # the backends make it contiguous as they need (the cpu kernel reads a batch-first view)
            dh_n.contiguous(),
            None if dc_n is None else dc_n.contiguous(),
            x,
            w_ih,
            b_ih,
            h0,
            c0,
            w_hh,
            b_hh,
            ctx.batch_sizes,
            ctx.reverse,
            ctx.y,
            ctx.state,
        )
        return (*grads, None, None, None)


def _check(
    mode: str, xproj: Tensor, h0: Tensor, c0: Tensor | None, w_hh: Tensor, b_hh: Tensor | None, batch_sizes
) -> None:
    if xproj.ndim != 3:
        raise ValueError(f"rnn: expected xproj of shape (T, B, G*H), got {tuple(xproj.shape)}")
    _check_shapes(mode, tuple(xproj.shape), h0, c0, w_hh, b_hh, batch_sizes)


def _check_shapes(mode: str, xproj_shape: tuple, h0, c0, w_hh, b_hh, batch_sizes) -> None:
    """The checks of _check given xproj's shape (T, B, G H) (for rnn_input_layer: x's T, B and W_ih's G H)."""
    if mode not in GATES:
        raise ValueError(f"rnn: unknown mode {mode!r}; expected one of {sorted(GATES)}")
    T, B, GH = xproj_shape
    H = h0.shape[-1] if h0.ndim == 2 else -1
    if H * GATES[mode] != GH or tuple(h0.shape) != (B, H):
        raise ValueError(
            f"rnn ({mode}): xproj {xproj_shape} and h0 {tuple(h0.shape)} do not fit: expected "
            f"h0 (B, H) = ({B}, {GH // GATES[mode]})"
        )
    if (mode == "LSTM") != (c0 is not None) or (c0 is not None and tuple(c0.shape) != (B, H)):
        raise ValueError(
            f"rnn ({mode}): c0 must be {'(B, H) = ' + str((B, H)) if mode == 'LSTM' else 'None'}, "
            f"got {None if c0 is None else tuple(c0.shape)}"
        )
    if tuple(w_hh.shape) != (GH, H) or (b_hh is not None and tuple(b_hh.shape) != (GH,)):
        raise ValueError(
            f"rnn ({mode}): w_hh {tuple(w_hh.shape)} / b_hh "
            f"{None if b_hh is None else tuple(b_hh.shape)} should be ({GH}, {H}) / ({GH},)"
        )
    if batch_sizes is not None:
        if (
            len(batch_sizes) != T
            or any(not 0 <= s <= B for s in batch_sizes)
            or any(a < b for a, b in zip(batch_sizes, batch_sizes[1:]))
        ):
            raise ValueError(
                f"rnn: batch_sizes {list(batch_sizes)} must be {T} non-increasing counts in [0, {B}]"
            )


def rnn_layer(
    mode: str,
    xproj: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    w_hh: Tensor,
    b_hh: Tensor | None,
    batch_sizes: tuple | None = None,
    reverse: bool = False,
) -> tuple:
    """One layer, one direction over xproj (T, B, G H) = x W_ih^T + b_ih: returns (y (T, B, H), h_n)
    or, for LSTM, (y, h_n, c_n). See the module docstring for the math and batch_sizes."""
    if batch_sizes is not None:
        batch_sizes = tuple(int(s) for s in batch_sizes)
    _check(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes)
    return Recurrence.apply(
        xproj.contiguous(),
        h0.contiguous(),
        None if c0 is None else c0.contiguous(),
        w_hh.contiguous(),
        b_hh,
        mode,
        batch_sizes,
        bool(reverse),
    )


def rnn_input_layer(
    mode: str,
    x: Tensor,
    w_ih: Tensor,
    b_ih: Tensor | None,
    h0: Tensor,
    c0: Tensor | None,
    w_hh: Tensor,
    b_hh: Tensor | None,
    batch_sizes: tuple | None = None,
    reverse: bool = False,
) -> tuple:
    """One layer, one direction from its input x (T, B, I): rnn_layer over xproj = x W_ih^T + b_ih, with
    the projection inside the kernel. w_ih (G H, I), b_ih (G H,) or None; returns what rnn_layer does."""
    if x.ndim != 3 or w_ih.ndim != 2 or x.shape[2] != w_ih.shape[1] or (
        b_ih is not None and tuple(b_ih.shape) != (w_ih.shape[0],)
    ):
        raise ValueError(
            f"rnn ({mode}): x {tuple(x.shape)}, w_ih {tuple(w_ih.shape)} and b_ih "
            f"{None if b_ih is None else tuple(b_ih.shape)} do not fit: expected x (T, B, I), w_ih (G*H, I), "
            "b_ih (G*H,)"
        )
    if batch_sizes is not None:
        batch_sizes = tuple(int(s) for s in batch_sizes)
    T, B, _ = x.shape
    _check_shapes(mode, (T, B, w_ih.shape[0]), h0, c0, w_hh, b_hh, batch_sizes)
    return LayerRecurrence.apply(
        x,  # as given: the cpu kernel reads a batch-first transposed view in place, other backends copy
        w_ih.contiguous(),
        b_ih,
        h0.contiguous(),
        None if c0 is None else c0.contiguous(),
        w_hh.contiguous(),
        b_hh,
        mode,
        batch_sizes,
        bool(reverse),
    )


def lstm_projected_layer(
    mode: str,
    xproj: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    w_hr: Tensor,
    batch_sizes: tuple | None = None,
    reverse: bool = False,
) -> tuple:
    """One LSTM layer and direction with a projection (torch's proj_size P): xproj (T, B, 4H), h0 (B, P),
    c0 (B, H), w_hh (4H, P), w_hr (P, H). Per step, a = xproj_t + h W_hh^T + b_hh, c' = f c + i g as in
    the plain LSTM, and h' = (o tanh(c')) W_hr^T (B, P). Returns (y (T, B, P), h_n (B, P), c_n (B, H)).
    Stepped with differentiable ops (autograd gives the backward), not the fused kernel."""
    if mode != "LSTM":
        raise ValueError(f"lstm_projected_layer: projections exist for LSTM only, got mode {mode!r}")
    T, B, GH = xproj.shape
    P, H = w_hr.shape
    if GH != 4 * H or tuple(h0.shape) != (B, P) or tuple(c0.shape) != (B, H) or tuple(w_hh.shape) != (GH, P):
        raise ValueError(
            f"lstm_projected_layer: xproj {tuple(xproj.shape)}, h0 {tuple(h0.shape)}, c0 {tuple(c0.shape)}, "
            f"w_hh {tuple(w_hh.shape)}, w_hr {tuple(w_hr.shape)} do not fit: expected xproj (T, B, 4H), "
            f"h0 (B, P), c0 (B, H), w_hh (4H, P), w_hr (P, H)"
        )
    sizes = [B] * T if batch_sizes is None else [int(s) for s in batch_sizes]
    h, c = h0, c0
    ys = [None] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        n = sizes[t]
        if n == 0:
            ys[t] = zeros((B, P), dtype=h0.dtype, device=h0.device)
            continue
        a = xproj[t, :n] + linear(h[:n], w_hh, b_hh)  # (n, 4H)
        i, f, g, o = a.chunk(4, 1)
        c_new = sigmoid(f) * c[:n] + sigmoid(i) * tanh(g)  # (n, H)
        h_new = linear(sigmoid(o) * tanh(c_new), w_hr)  # (n, P)
        if n < B:  # rows past n keep their state and output zeros
            h, c = cat([h_new, h[n:]], 0), cat([c_new, c[n:]], 0)
            ys[t] = cat([h_new, zeros((B - n, P), dtype=h0.dtype, device=h0.device)], 0)
        else:
            h, c, ys[t] = h_new, c_new, h_new
    y = stack(ys, 0) if T else zeros((0, B, P), dtype=h0.dtype, device=h0.device)
    return y, h, c


def _cell(mode, input, hx, cx, w_ih, w_hh, b_ih, b_hh):
    return rnn_input_layer(mode, input.unsqueeze(0), w_ih, b_ih, hx, cx, w_hh, b_hh)  # one step: T = 1


def lstm_cell(
    input: Tensor,
    hx: tuple,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step (torch.lstm_cell): input (B, I), hx = (h, c) each (B, H) -> (h', c')."""
    _, h, c = _cell("LSTM", input, hx[0], hx[1], w_ih, w_hh, b_ih, b_hh)
    return h, c


def _one_state_cell(mode: str, name: str, doc: str):
    """The one-step function `name` of a recurrence whose whole state is h (GRU, Elman RNN):
    input (B, I), hx (B, H) -> h' (B, H), with torch's argument names and order."""

    def cell(
        input: Tensor,
        hx: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor | None = None,
        b_hh: Tensor | None = None,
    ) -> Tensor:
        return _cell(mode, input, hx, None, w_ih, w_hh, b_ih, b_hh)[1]

    cell.__name__ = cell.__qualname__ = name
    cell.__doc__ = doc
    return cell


gru_cell = _one_state_cell("GRU", "gru_cell", "One GRU step (torch.gru_cell): input (B, I), hx (B, H) -> h'.")
rnn_tanh_cell = _one_state_cell(
    "RNN_TANH",
    "rnn_tanh_cell",
    "One Elman step with tanh (torch.rnn_tanh_cell): h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh).",
)
rnn_relu_cell = _one_state_cell(
    "RNN_RELU",
    "rnn_relu_cell",
    "One Elman step with relu (torch.rnn_relu_cell): h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh).",
)
