"""CPU benchmark: nn.BatchNorm2d / BatchNorm1d in training mode, forward + backward (running statistics
updated, gradients of x, weight and bias), tinyml vs PyTorch eager.

    python3 bench/batch_norm_cpu.py                   # 2 threads
    python3 bench/batch_norm_cpu.py --threads 1

The harness is bench/cpu_kernels.py's: both frameworks in one process on the same inputs,
alternating run by run after warm-up, medians in ms and the ratio torch / tinyml (above 1: tinyml
is faster), plus the ratio of the fastest runs. The floor is the bytes the work must move over the
copy bandwidth measured here: forward reads x and writes y, backward reads dy and x and writes dx
(5 tensors of x's size).
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

import tinyml

F32 = 4


def _batch_norm_setup(shape):
    def setup():
        c = shape[1]
        cls = "BatchNorm2d" if len(shape) == 4 else "BatchNorm1d"
        ours, theirs = getattr(tinyml.nn, cls)(c), getattr(torch.nn, cls)(c)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 2 + 1
        g = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        xt, xp = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        gt, gp = tinyml.tensor(g), torch.tensor(g)
        params_t, params_p = [xt, *ours.parameters()], [xp, *theirs.parameters()]

        def run_t():
            for p in params_t:
                p.grad = None
            ours(xt).backward(gt)

        def run_p():
            for p in params_p:
                p.grad = None
            theirs(xp).backward(gp)

        return run_t, run_p, ("bytes", 5 * int(np.prod(shape)) * F32)
    return setup


CASES = [
    {"name": "BatchNorm2d (fwd+bwd)", "shape": "32x64x56x56", "setup": _batch_norm_setup((32, 64, 56, 56))},
    {"name": "BatchNorm2d (fwd+bwd)", "shape": "64x128x28x28", "setup": _batch_norm_setup((64, 128, 28, 28))},
    {"name": "BatchNorm2d (fwd+bwd)", "shape": "32x32x16x16", "setup": _batch_norm_setup((32, 32, 16, 16))},
    {"name": "BatchNorm2d (fwd+bwd)", "shape": "8x3x224x224", "setup": _batch_norm_setup((8, 3, 224, 224))},
    {"name": "BatchNorm1d (fwd+bwd)", "shape": "1024x512", "setup": _batch_norm_setup((1024, 512))},
]


def main(argv=None) -> None:
    """bench/cpu_kernels.py's table for these rows."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cpu_kernels

    cpu_kernels.CASES = CASES
    cpu_kernels.main(argv)


if __name__ == "__main__":
    main()
