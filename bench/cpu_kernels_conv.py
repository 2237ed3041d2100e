"""CPU benchmark rows for the conv family and the selective scan: tinyml vs PyTorch eager.

    python3 bench/cpu_kernels_conv.py                 # these rows alone, 2 threads
    python3 bench/cpu_kernels.py                      # appended to the fused-kernel table

CASES follows bench/cpu_kernels.py: dict(name, shape, setup) with setup() -> (tinyml_fn, torch_fn,
floor), floor = ("bytes", n) or ("flops", n). conv2d's floor is its flops over the float32 matmul
rate (direct summation's flops: the 3x3 stride-1 rows run Winograd F(2x2, 3x3) forward and input
gradient, 2.25x fewer multiplies; the stride-2 row the implicit GEMM); the pools' and upsamples' the
bytes they must move. The selective scan's peer is
mamba_ssm's selective_scan_ref in PyTorch (exp(delta A) and delta B u for every step up front, then
a Python loop over time, autograd through it): what a PyTorch user without the CUDA kernel runs,
with the per-step C contraction as a multiply-sum (the reference's einsum is ~100x slower here).
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import torch.nn.functional as TF

import tinyml

F32 = 4


def _leaf(shape, seed, scale=1.0, shift=0.0):
    a = (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(np.float32)
    return tinyml.tensor(a.copy(), requires_grad=True), torch.tensor(a.copy(), requires_grad=True)


def _runners(fn_t, fn_p, leaves_t, leaves_p, out_shape, backward=True):
    g = np.random.default_rng(99).standard_normal(out_shape).astype(np.float32)
    g_t, g_p = tinyml.tensor(g), torch.from_numpy(g.copy())

    def run_t():
        for x in leaves_t:
            x.grad = None
        if backward:
            fn_t(*leaves_t).backward(g_t)
        else:
            with tinyml.no_grad():
                fn_t(*leaves_t)

    def run_p():
        for x in leaves_p:
            x.grad = None
        if backward:
            fn_p(*leaves_p).backward(g_p)
        else:
            with torch.no_grad():
                fn_p(*leaves_p)
    return run_t, run_p


def _conv_setup(n, c, h, w, o, k, backward=True, stride=1):
    def setup():
        (xt, xp), (wt, wp), (bt, bp) = _leaf((n, c, h, w), 0), _leaf((o, c, k, k), 1, 0.05), _leaf((o,), 2)
        oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1  # padding k // 2, odd k
        flops = 2 * n * o * c * k * k * oh * ow * (3 if backward else 1)  # direct summation's
        return (*_runners(lambda x, w, b: tinyml.conv2d(x, w, b, stride=stride, padding=k // 2),
                          lambda x, w, b: TF.conv2d(x, w, b, stride=stride, padding=k // 2), [xt, wt, bt],
                          [xp, wp, bp], (n, o, oh, ow), backward), ("flops", flops))
    return setup


def _pool_setup(shape, k, s):
    def setup():
        (xt, xp) = _leaf(shape, 0)
        n = int(np.prod(shape))
        out = (shape[0], shape[1], shape[2] // s, shape[3] // s)
        m = int(np.prod(out))
        # fwd: read x, write y + int64 indices; bwd: read dy + indices, write dx
        return (*_runners(lambda x: tinyml.max_pool2d(x, k, s), lambda x: TF.max_pool2d(x, k, s), [xt], [xp],
                          out),
                ("bytes", (2 * n + 2 * m) * F32 + 2 * m * 8))
    return setup


def _upsample_setup(shape, mode):
    def setup():
        (xt, xp) = _leaf(shape, 0)
        n = int(np.prod(shape))
        out = (shape[0], shape[1], shape[2] * 2, shape[3] * 2)
        kw = {"scale_factor": 2, "mode": mode} | ({"align_corners": False} if mode == "bilinear" else {})
        return (*_runners(lambda x: tinyml.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), [xt],
                          [xp], out),
                ("bytes", (n + 4 * n) * 2 * F32))  # fwd read x, write 4x; bwd read 4x, write x
    return setup


def torch_selective_scan(u, delta, A, B, C, D, z, delta_bias):
    """mamba_ssm's selective_scan_ref (real A, B/C of shape (batch, N, L), delta_softplus=True, z, D)."""
    delta = TF.softplus(delta + delta_bias[..., None])
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    x = u.new_zeros((u.shape[0], A.shape[0], A.shape[1]))
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        ys.append((x * C[:, None, :, i]).sum(-1))  # einsum("bdn,bn->bd") here runs ~100x slower (bmm)
    out = torch.stack(ys, dim=2) + u * D[:, None]
    return out * TF.silu(z)


def _scan_setup(b, d, n, length, backward=True):
    def setup():
        (ut, up), (zt, zp) = _leaf((b, d, length), 0), _leaf((b, d, length), 1)
        (dt, dp) = _leaf((b, d, length), 2, 0.5, -1.0)
        a = -np.exp(np.random.default_rng(3).standard_normal((d, n)) * 0.5).astype(np.float32)
        At, Ap = tinyml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        (Bt, Bp), (Ct, Cp) = _leaf((b, n, length), 4), _leaf((b, n, length), 5)
        (Dt, Dp), (bt, bp) = _leaf((d,), 6), _leaf((d,), 7, 0.1)
        def fn_t(*a):
            return tinyml.selective_scan(*a, delta_softplus=True)
        leaves_t, leaves_p = [ut, dt, At, Bt, Ct, Dt, zt, bt], [up, dp, Ap, Bp, Cp, Dp, zp, bp]
        # the least memory traffic: u, delta, z read (and dout, du, ddelta, dz for the backward)
        nbytes = (7 if backward else 4) * b * d * length * F32
        return (*_runners(fn_t, torch_selective_scan, leaves_t, leaves_p, (b, d, length), backward),
                ("bytes", nbytes))
    return setup


CASES = [
    {"name": "conv2d 3x3 (fwd+bwd)", "shape": "x 32x64x56x56, w 64x64x3x3",
         "setup": _conv_setup(32, 64, 56, 56, 64, 3)},
    {"name": "conv2d 3x3 (fwd only)", "shape": "x 32x64x56x56, w 64x64x3x3",
         "setup": _conv_setup(32, 64, 56, 56, 64, 3, backward=False)},
    {"name": "conv2d 3x3 stride 2 (fwd+bwd, implicit GEMM)", "shape": "x 32x64x56x56, w 128x64x3x3",
         "setup": _conv_setup(32, 64, 56, 56, 128, 3, stride=2)},
    {"name": "max_pool2d 2x2", "shape": "32x64x56x56", "setup": _pool_setup((32, 64, 56, 56), 2, 2)},
    {"name": "upsample nearest 2x", "shape": "8x64x56x56",
         "setup": _upsample_setup((8, 64, 56, 56), "nearest")},
    {"name": "upsample bilinear 2x", "shape": "8x64x56x56",
         "setup": _upsample_setup((8, 64, 56, 56), "bilinear")},
    # L256: the torch side is a Python loop of L autograd steps; at L1024 these two rows alone took
    # over 5 minutes of the full table under load (it timed out at 600 s)
    {"name": "selective_scan (fwd+bwd) vs torch loop", "shape": "B2 D512 N16 L256",
         "setup": _scan_setup(2, 512, 16, 256)},
    {"name": "selective_scan (fwd only) vs torch loop", "shape": "B2 D512 N16 L256",
         "setup": _scan_setup(2, 512, 16, 256, backward=False)},
]


def main(argv=None) -> None:
    """The same table as bench/cpu_kernels.py, for these rows only."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cpu_kernels

    cpu_kernels.CASES = CASES
    cpu_kernels.main(argv)


if __name__ == "__main__":
    main()
