"""S4D (Gu et al. 2022, "On the Parameterization and Initialization of Diagonal State Space Models"):
a diagonal state space per channel, run as a long convolution.

Per channel h, with M = d_state / 2 complex modes (their conjugates are implicit, hence the 2 Re):

    x_n'(t) = A_n x_n(t) + B_n u(t),   y(t) = 2 Re sum_n C_n x_n(t) + D u(t)       A_n = -exp(a_n) + i b_n
    zoh:       dA = exp(dt A),                 dB = (exp(dt A) - 1) / A * B
    bilinear:  dA = (1 + dt A/2) / (1 - dt A/2),  dB = dt B / (1 - dt A/2)
    x_k = dA x_{k-1} + dB u_k   <=>   y = K * u + D u,  K_l = 2 Re sum_n C_n dB_n dA_n^l   (Vandermonde)

The convolution runs by FFT (tinyml.fft: y = irfft(rfft(u, 2L) rfft(K, 2L))[:L], O(L log L)), or
as a direct causal convolution off the cpu device, where tinyml has no FFT kernels. Then GELU and
the GLU output projection (Linear(H, 2H), GLU), as in state-spaces' s4d.py. `step` runs the
recurrence one token at a time on a state (batch, H, M, 2); both modes give the same outputs.

Inits of A (and B): legs (the eigenvalues of the normal part of HiPPO-LegS, B = V^* B_legs;
models/ssm/hippo.py), lin (-1/2 + i pi n), inv (-1/2 + i N/pi (N/(2n+1) - 1)), real (-(n+1)),
random (-1/2 + i exp(z), z ~ N(0, 1): state-spaces' "random"); B = 1 but for legs; C ~ CN(0, 1).
The parameters and the kernel's complex numbers are (real, imag) pairs of real tensors (real
parameters keep every optimizer and checkpoint format); the convolution's spectra are complex64.
log_dt, log_A_real and A_imag carry optim_hints (no weight decay, learning rate at most `lr`):
tinyml/optim/param_groups.py turns them into optimizer groups.
"""
from __future__ import annotations

import math

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

from .hippo import nplr

__all__ = ["INITS", "S4D", "S4DKernel", "causal_convolution"]

INITS = ("legs", "lin", "inv", "real", "random")
DISCRETIZATIONS = ("zoh", "bilinear")


def _cmul(a, b):
    return a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]


def _cdiv(a, b):
    den = b[0] * b[0] + b[1] * b[1]
    return (a[0] * b[0] + a[1] * b[1]) / den, (a[1] * b[0] - a[0] * b[1]) / den


def init_diagonal(init: str, H: int, N: int, rng: np.random.Generator):
    """(A (H, N/2) complex with Re A < 0, B (H, N/2) complex): the S4D inits listed above."""
    M = N // 2
    n = np.arange(M, dtype=np.float64)
    B = np.ones((H, M), dtype=np.complex128)
    if init == "legs":
        lam, _, b, _ = nplr("legs", N)
        A, B = np.broadcast_to(lam, (H, M)), np.broadcast_to(b, (H, M))
    elif init == "lin":
        A = np.broadcast_to(-0.5 + 1j * np.pi * n, (H, M))
    elif init == "inv":
        A = np.broadcast_to(-0.5 + 1j * N / np.pi * (N / (2 * n + 1) - 1), (H, M))
    elif init == "real":
        A = np.broadcast_to(-(n + 1) + 0j, (H, M))
    elif init == "random":
        A = -0.5 + 1j * np.exp(rng.standard_normal((H, M)))
    else:
        raise ValueError(f"S4D: unknown init {init!r}; expected one of {', '.join(INITS)}")
    return np.array(A), np.array(B)


class S4DKernel(nn.Module):
    """The SSM parameters of H channels and their convolution kernel K (H, L)."""

    optim_hints = {name: {"weight_decay": 0.0, "lr": 1e-3} for name in ("log_dt", "log_A_real", "A_imag")}

    def __init__(self, d_model: int, d_state: int = 64, init: str = "legs", dt_min: float = 1e-3,
                 dt_max: float = 1e-1, discretization: str = "zoh", lr: float = 1e-3,
                 seed: int | None = None):
        super().__init__()
        if not isinstance(d_state, int) or d_state < 2 or d_state % 2:
            raise ValueError(f"S4D: d_state must be an even int >= 2 (conjugate pairs), got {d_state!r}")
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"S4D: unknown discretization {discretization!r}; expected zoh or bilinear")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"S4D: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.H, self.M, self.discretization = d_model, d_state // 2, discretization
        self.optim_hints = {k: {"weight_decay": 0.0, "lr": lr} for k in type(self).optim_hints}
        rng = np.random.default_rng(int(tinyml.randint(0, 2 ** 31, (1,)).item()) if seed is None else seed)
        A, B = init_diagonal(init, d_model, d_state, rng)
        C = rng.standard_normal((d_model, self.M, 2)) * 0.5 ** 0.5  # CN(0, 1): variance 1/2 per part
        log_dt = rng.random(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        f32 = tinyml.get_default_dtype()
        self.log_dt = nn.Parameter(tinyml.tensor(log_dt, dtype=f32))  # (H,)
        self.log_A_real = nn.Parameter(tinyml.tensor(np.log(-A.real), dtype=f32))  # (H, M)
        self.A_imag = nn.Parameter(tinyml.tensor(A.imag, dtype=f32))  # (H, M)
        self.B = nn.Parameter(tinyml.tensor(np.stack([B.real, B.imag], -1), dtype=f32))  # (H, M, 2)
        self.C = nn.Parameter(tinyml.tensor(C, dtype=f32))  # (H, M, 2)

    def discretize(self):
        """(dA, dB): (real, imag) pairs of (H, M) tensors; dB includes B."""
        dt = self.log_dt.exp().unsqueeze(-1)  # (H, 1)
        a = (-self.log_A_real.exp(), self.A_imag)  # (H, M) each
        z = (a[0] * dt, a[1] * dt)
        B = (self.B[..., 0], self.B[..., 1])
        if self.discretization == "zoh":
            e = z[0].exp()
            dA = (e * z[1].cos(), e * z[1].sin())
            return dA, _cmul(_cdiv((dA[0] - 1, dA[1]), a), B)
        den = (1 - z[0] / 2, -z[1] / 2)
        return _cdiv((1 + z[0] / 2, z[1] / 2), den), _cdiv((dt * B[0], dt * B[1]), den)

    def _powers(self, dA, z_zoh, L: int):
        """dA^l for l < L as (H, M, L) pairs: exp(l dt A) for zoh, repeated doubling for bilinear."""
        if z_zoh is not None:
            ell = tinyml.arange(L, dtype=z_zoh[0].dtype)  # (L,)
            zr, zi = z_zoh[0].unsqueeze(-1) * ell, z_zoh[1].unsqueeze(-1) * ell  # (H, M, L)
            e = zr.exp()
            return e * zi.cos(), e * zi.sin()
        pr, pi = tinyml.ones_like(dA[0]).unsqueeze(-1), tinyml.zeros_like(dA[1]).unsqueeze(-1)  # (H, M, 1)
        step = (dA[0].unsqueeze(-1), dA[1].unsqueeze(-1))  # dA^len(p)
        while pr.shape[-1] < L:
            nr, ni = _cmul((pr, pi), step)
            pr, pi = tinyml.cat([pr, nr], -1), tinyml.cat([pi, ni], -1)
            step = _cmul(step, step)
        return pr[..., :L], pi[..., :L]

    def forward(self, L: int):
        """K (H, L): K_l = 2 Re sum_n C_n dB_n dA_n^l."""
        dA, dB = self.discretize()
        z = None
        if self.discretization == "zoh":
            dt = self.log_dt.exp().unsqueeze(-1)
            z = (-self.log_A_real.exp() * dt, self.A_imag * dt)
        pr, pi = self._powers(dA, z, L)  # (H, M, L)
        cb = _cmul((self.C[..., 0], self.C[..., 1]), dB)  # (H, M)
        K = cb[0].unsqueeze(1) @ pr - cb[1].unsqueeze(1) @ pi  # (H, 1, L)
        return 2 * K.squeeze(1)


def causal_convolution(u, k):
    """y_t = sum_{j <= t} k_j u_{t-j} for u (B, H, L), k (H, L): by FFT on the cpu device (zero-padded to
    2L, so the circular convolution is the linear one), as a grouped conv1d elsewhere."""
    L = u.shape[-1]
    if u.device.type == "cpu":
        uf, kf = tinyml.fft.rfft(u, n=2 * L), tinyml.fft.rfft(k, n=2 * L)  # (B, H, L+1), (H, L+1) complex
        return tinyml.fft.irfft(uf * kf, n=2 * L)[..., :L]
    H = k.shape[0]
    return F.conv1d(F.pad(u, (L - 1, 0)), k.flip(-1).unsqueeze(1), groups=H)


class S4D(nn.Module):
    """S4D(d_model, d_state=64, init, dt_min, dt_max, discretization): (B, H, L) -> (B, H, L), or
    (B, L, H) with transposed=False (state-spaces' flag)."""

    def __init__(self, d_model: int, d_state: int = 64, init: str = "legs", dt_min: float = 1e-3,
                 dt_max: float = 1e-1, discretization: str = "zoh", dropout: float = 0.0,
                 transposed: bool = True, lr: float = 1e-3, seed: int | None = None):
        super().__init__()
        self.h, self.n, self.transposed = d_model, d_state, transposed
        self.kernel = S4DKernel(d_model, d_state, init, dt_min, dt_max, discretization, lr, seed)
        self.D = nn.Parameter(tinyml.randn(d_model))
        self.dropout = nn.Dropout(dropout)
        self.output_linear = nn.Linear(d_model, 2 * d_model)  # then GLU: state-spaces' Conv1d(H, 2H, 1) + GLU

    def _check(self, u, name: str, ndim: int):
        if not isinstance(u, tinyml.Tensor) or u.ndim != ndim:
            want = "(B, H)" if ndim == 2 else ("(B, H, L)" if self.transposed else "(B, L, H)")
            got = tuple(u.shape) if isinstance(u, tinyml.Tensor) else type(u).__name__
            raise ValueError(f"S4D.{name}: expected an input of shape {want} with H = d_model = {self.h}, "
                             f"got {got}")
        ch = u.shape[1] if (ndim == 2 or self.transposed) else u.shape[2]
        if ch != self.h:
            raise ValueError(f"S4D.{name}: input of shape {tuple(u.shape)} has {ch} channels but d_model = "
                             f"{self.h}")

    def _output(self, y):
        """GELU, dropout and the GLU projection over the channel dim of y (..., H)."""
        return F.glu(self.output_linear(self.dropout(F.gelu(y))), dim=-1)

    def forward(self, u):
        self._check(u, "forward", 3)
        if not self.transposed:
            u = u.transpose(1, 2)  # (B, H, L)
        k = self.kernel(u.shape[-1])  # (H, L)
        y = causal_convolution(u, k) + u * self.D.unsqueeze(-1)  # (B, H, L)
        y = self._output(y.transpose(1, 2))  # (B, L, H)
        return y.transpose(1, 2) if self.transposed else y

    def default_state(self, batch: int):
        """The zero state (batch, H, M, 2) for `step`."""
        return tinyml.zeros(batch, self.h, self.kernel.M, 2, dtype=self.D.dtype, device=self.D.device)

    def step(self, u, state):
        """One time step: u (B, H), state (B, H, M, 2) -> (y (B, H), next state)."""
        self._check(u, "step", 2)
        want = (u.shape[0], self.h, self.kernel.M, 2)
        if tuple(state.shape) != want:
            raise ValueError(f"S4D.step: state has shape {tuple(state.shape)}, expected {want}")
        dA, dB = self.kernel.discretize()  # (H, M) pairs
        x = _cmul(dA, (state[..., 0], state[..., 1]))
        uu = u.unsqueeze(-1)  # (B, H, 1)
        x = (x[0] + dB[0] * uu, x[1] + dB[1] * uu)  # (B, H, M)
        C = (self.kernel.C[..., 0], self.kernel.C[..., 1])
        y = 2 * (C[0] * x[0] - C[1] * x[1]).sum(-1) + self.D * u  # (B, H)
        return self._output(y), tinyml.stack(x, -1)
