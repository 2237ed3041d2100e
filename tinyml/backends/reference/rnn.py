"""Reference rnn kernels (numpy): one recurrent layer in one direction over a whole sequence, given
its input projection xproj = x W_ih^T + b_ih for every step (one matmul, done by the op).

Shapes: xproj (T, B, G H) time-major, h0/c0 (B, H), w_hh (G H, H), b_hh (G H,) or None, G = 4
(LSTM, gates i f g o), 3 (GRU, gates r z n) or 1 (RNN_TANH, RNN_RELU). batch_sizes (T ints,
non-increasing, or None for all B) says how many leading rows are active at each step, as in a
PackedSequence: the other rows keep their state and get a zero output. reverse walks the steps
from T-1 down to 0 (a bidirectional layer's second direction); a row then starts from h0 at its
own last step.

    LSTM:  a = xproj + h W_hh^T + b_hh;  i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g)
           c' = f c + i g,  h' = o tanh(c')
    GRU:   s = h W_hh^T + b_hh;  r = sigmoid(xproj_r + s_r), z = sigmoid(xproj_z + s_z)
           n = tanh(xproj_n + r s_n),  h' = (1 - z) n + z h
    RNN:   h' = tanh or relu(xproj + h W_hh^T + b_hh)

forward returns (y (T, B, H), h_n, c_n or None, saved) where saved holds what backward needs:
LSTM (T, B, 5H) = i, f, g, o, c'; GRU (T, B, 4H) = r, z, n, s_n; RNN (T, B, 0).
backward walks the steps the other way (formulas in tinyml/ops/rnn.py) and returns
(dxproj, dh0, dc0 or None, dw_hh, db_hh or None). As the oracle it computes in float64.

rnn_layer_forward / rnn_layer_backward are the same layer given x (T, B, I), W_ih (G H, I) and b_ih
instead of xproj: forward computes xproj = x W_ih^T + b_ih first; backward adds the input
projection's gradients, dx = dxproj W_ih, dW_ih = dxproj^T x, db_ih = sum over (t, b) of dxproj,
returning (dx, dw_ih, db_ih or None, dh0, dc0 or None, dw_hh, db_hh or None).
"""

import numpy as np

__all__ = ["rnn_backward", "rnn_forward", "rnn_layer_backward", "rnn_layer_forward"]

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _sizes(batch_sizes, T, B):
    return [B] * T if batch_sizes is None else [int(s) for s in batch_sizes]


def _h_prev(t, n, y, h0, sizes, reverse):
    """Each active row's state before step t: the previous step's output where the row was active there,
    else the initial state."""
    p = t + 1 if reverse else t - 1
    h = h0[:n].copy()
    if 0 <= p < len(sizes):
        m = min(n, sizes[p])
        h[:m] = y[p, :m]
    return h


def rnn_forward(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes, reverse):
    dtype = xproj.dtype
    T, B, GH = xproj.shape
    H = GH // GATES[mode]
    x, w = xproj.astype(np.float64), w_hh.astype(np.float64)
    b = np.zeros(GH) if b_hh is None else b_hh.astype(np.float64)
    h = h0.astype(np.float64).copy()
    c = None if c0 is None else c0.astype(np.float64).copy()
    sizes = _sizes(batch_sizes, T, B)
    y = np.zeros((T, B, H))
    saved = np.zeros((T, B, {"LSTM": 5, "GRU": 4}.get(mode, 0) * H))
    for t in _steps(T, reverse):
        n = sizes[t]
        s = h[:n] @ w.T + b
        if mode == "LSTM":
            a = x[t, :n] + s
            i, f, g, o = (
                _sigmoid(a[:, :H]),
                _sigmoid(a[:, H : 2 * H]),
                np.tanh(a[:, 2 * H : 3 * H]),
                _sigmoid(a[:, 3 * H :]),
            )
            c[:n] = f * c[:n] + i * g
            h[:n] = o * np.tanh(c[:n])
            saved[t, :n] = np.concatenate([i, f, g, o, c[:n]], 1)
        elif mode == "GRU":
            r = _sigmoid(x[t, :n, :H] + s[:, :H])
            z = _sigmoid(x[t, :n, H : 2 * H] + s[:, H : 2 * H])
            nn = np.tanh(x[t, :n, 2 * H :] + r * s[:, 2 * H :])
            h[:n] = (1 - z) * nn + z * h[:n]
            saved[t, :n] = np.concatenate([r, z, nn, s[:, 2 * H :]], 1)
        else:
            a = x[t, :n] + s
            h[:n] = np.tanh(a) if mode == "RNN_TANH" else np.maximum(a, 0)
        y[t, :n] = h[:n]
    return (y.astype(dtype), h.astype(dtype), None if c is None else c.astype(dtype), saved.astype(dtype))


def rnn_backward(mode, dy, dh_n, dc_n, h0, c0, w_hh, b_hh, batch_sizes, reverse, y, saved):
    dtype = dy.dtype
    T, B, H = dy.shape
    G = GATES[mode]
    w = w_hh.astype(np.float64)
    y, saved, h0 = y.astype(np.float64), saved.astype(np.float64), h0.astype(np.float64)
    dh = dh_n.astype(np.float64).copy()
    dc = None if mode != "LSTM" else (np.zeros((B, H)) if dc_n is None else dc_n.astype(np.float64).copy())
    sizes = _sizes(batch_sizes, T, B)
    dx = np.zeros((T, B, G * H))
    dw = np.zeros((G * H, H))
    db = np.zeros(G * H)
    for t in reversed(list(_steps(T, reverse))):
        n = sizes[t]
        hp = _h_prev(t, n, y, h0, sizes, reverse)
        d = dh[:n] + dy[t, :n]
        if mode == "LSTM":
            i, f, g, o, cn = (saved[t, :n, k * H : (k + 1) * H] for k in range(5))
            p = t + 1 if reverse else t - 1
            cp = c0[:n].astype(np.float64).copy()
            if 0 <= p < T:
                m = min(n, sizes[p])
                cp[:m] = saved[p, :m, 4 * H :]
            tc = np.tanh(cn)
            dct = dc[:n] + d * o * (1 - tc * tc)
            dg = np.concatenate(
                [dct * g * i * (1 - i), dct * cp * f * (1 - f), dct * i * (1 - g * g), d * tc * o * (1 - o)],
                1,
            )
            dc[:n] = dct * f
            dgh = dgx = dg
            direct = 0.0
        elif mode == "GRU":
            r, z, nn, sn = (saved[t, :n, k * H : (k + 1) * H] for k in range(4))
            dnp = d * (1 - z) * (1 - nn * nn)
            drp = dnp * sn * r * (1 - r)
            dzp = d * (hp - nn) * z * (1 - z)
            dgx = np.concatenate([drp, dzp, dnp], 1)
            dgh = np.concatenate([drp, dzp, dnp * r], 1)
            direct = d * z
        else:
            hn = y[t, :n]
            dgh = dgx = d * (1 - hn * hn) if mode == "RNN_TANH" else d * (hn > 0)
            direct = 0.0
        dx[t, :n] = dgx
        dw += dgh.T @ hp
        db += dgh.sum(0)
        dh[:n] = direct + dgh @ w
    return (
        dx.astype(dtype),
        dh.astype(dtype),
        None if dc is None else dc.astype(dtype),
        dw.astype(dtype),
        None if b_hh is None else db.astype(dtype),
    )


def rnn_layer_forward(mode, x, w_ih, b_ih, h0, c0, w_hh, b_hh, batch_sizes, reverse):
    xproj = x.astype(np.float64) @ w_ih.astype(np.float64).T
    if b_ih is not None:
        xproj += b_ih.astype(np.float64)
    return rnn_forward(mode, xproj.astype(x.dtype), h0, c0, w_hh, b_hh, batch_sizes, reverse)


def rnn_layer_backward(mode, dy, dh_n, dc_n, x, w_ih, b_ih, h0, c0, w_hh, b_hh, batch_sizes, reverse, y,
                       saved):
    dxproj, dh0, dc0, dw, db = rnn_backward(mode, dy, dh_n, dc_n, h0, c0, w_hh, b_hh, batch_sizes, reverse, y,
                                            saved)
    T, B, n_in = x.shape
    g = dxproj.astype(np.float64).reshape(T * B, w_ih.shape[0])  # (-1 is ambiguous when T B = 0)
    dx = (g @ w_ih.astype(np.float64)).reshape(T, B, n_in)
    dw_ih = g.T @ x.astype(np.float64).reshape(T * B, n_in)
    db_ih = None if b_ih is None else g.sum(0).astype(dy.dtype)
    return dx.astype(dy.dtype), dw_ih.astype(dy.dtype), db_ih, dh0, dc0, dw, db
