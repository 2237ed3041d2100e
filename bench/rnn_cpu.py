"""CPU benchmark: nn.LSTM / nn.GRU forward + backward (gradients of the input and every weight),
tinyml vs PyTorch eager, on a tiny-model size (B 16, T 64, H 128, 1 and 2 layers).

    python3 bench/rnn_cpu.py                   # 2 threads
    python3 bench/rnn_cpu.py --threads 1
    python3 bench/rnn_cpu.py --only LSTM --cpu-time   # process CPU time instead of wall clock

The load average is printed before and after the table. --cpu-time (bench/cpu_kernels.py's --clock
cpu) times each run by the process's CPU time (all its threads, user + system) instead of the wall
clock: on a machine shared with other jobs, time spent descheduled then counts for neither framework
(time spent spinning at a barrier still counts, for both).

The harness is bench/cpu_kernels.py's: both frameworks in one process on the same inputs and
weights (torch's state dict copied into tinyml's layer), alternating run by run after warm-up,
medians in ms and the ratio torch / tinyml (above 1: tinyml is faster), plus the ratio of the
fastest runs. The floor is the layer's matmul flops over the float32 matmul rate measured here:
per layer 2 T B (I + H) G H forward, twice that backward (dx/dh and dW), G = 4 (LSTM) or 3 (GRU).
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

import tinyml


def _rnn_setup(cls, B, T, In, H, layers):
    def setup():
        torch.manual_seed(0)
        theirs = getattr(torch.nn, cls)(In, H, num_layers=layers, batch_first=True)
        ours = getattr(tinyml.nn, cls)(In, H, num_layers=layers, batch_first=True)
        ours.load_state_dict({k: tinyml.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
        x = np.random.default_rng(0).standard_normal((B, T, In)).astype(np.float32)
        g = np.random.default_rng(1).standard_normal((B, T, H)).astype(np.float32)
        xt, xp = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        gt, gp = tinyml.tensor(g), torch.tensor(g)
        params_t, params_p = [xt, *ours.parameters()], [xp, *theirs.parameters()]

        def run_t():
            for p in params_t:
                p.grad = None
            ours(xt)[0].backward(gt)

        def run_p():
            for p in params_p:
                p.grad = None
            theirs(xp)[0].backward(gp)

        G = 4 if cls == "LSTM" else 3
        flops = sum(3 * 2 * T * B * ((In if layer == 0 else H) + H) * G * H for layer in range(layers))
        return run_t, run_p, ("flops", flops)

    return setup


CASES = [
    {"name": f"{cls} {layers} layer{'s' if layers > 1 else ''} (fwd+bwd)", "shape": "B16 T64 I128 H128",
     "setup": _rnn_setup(cls, 16, 64, 128, 128, layers)}
    for cls in ("LSTM", "GRU")
    for layers in (1, 2)
]
CASES.append({"name": "LSTM 1 layer (fwd+bwd)", "shape": "B64 T32 I64 H256",
              "setup": _rnn_setup("LSTM", 64, 32, 64, 256, 1)})


def main(argv=None) -> None:
    """bench/cpu_kernels.py's table for these rows."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cpu_kernels

    cpu_kernels.CASES = CASES
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--cpu-time" in argv:  # bench/cpu_kernels.py's --clock cpu, under this script's older name
        i = argv.index("--cpu-time")
        argv[i:i + 1] = ["--clock", "cpu"]
    # the machine's load next to the figures: on a shared machine other jobs shift both columns
    print("load average (1, 5, 15 min) before: %.2f %.2f %.2f" % os.getloadavg())
    cpu_kernels.main(argv)
    print("load average (1, 5, 15 min) after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
