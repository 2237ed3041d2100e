"""The recurrent kernels' two GEMM micro-kernels A/B in one process: tinyml's LSTM layer forward + backward
(the cpu kernels rnn_layer_forward / rnn_layer_backward on a batch-first x, as nn.LSTM calls them) with the
AVX-512 zmm kernel on and off (`_C.rnn_zmm`, csrc/rnn_zmm.h), and PyTorch's nn.LSTM, interleaved run by run;
wall and process-CPU ms (min and median). On a loaded machine the 1-thread CPU times are the stable figures.

    OMP_NUM_THREADS=1 python bench/rnn_zmm_ab.py                  # B64 T32 I64 H256, 30 runs each
    OMP_NUM_THREADS=2 python bench/rnn_zmm_ab.py 16 64 128 128 40  # B T I H runs

It first checks that both kernels give the same bits."""
from __future__ import annotations

import importlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# tinyml's cpu backend before torch: it sets the OpenMP wait policy before libgomp loads (as a user has it)
_C = importlib.import_module("tinyml.backends.cpu")._C

import torch  # noqa: E402

from tinyml._host_malloc import tune_host_malloc  # noqa: E402


def main(B=64, T=32, I=64, H=256, reps=30):  # noqa: E741
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    tune_host_malloc()
    rng, f = np.random.default_rng(0), np.float32
    xb = rng.standard_normal((B, T, I)).astype(f)
    k = 1 / np.sqrt(H)
    w_ih, w_hh = rng.uniform(-k, k, (4 * H, I)).astype(f), rng.uniform(-k, k, (4 * H, H)).astype(f)
    b_ih, b_hh = rng.uniform(-k, k, 4 * H).astype(f), rng.uniform(-k, k, 4 * H).astype(f)
    h0 = c0 = dhn = dcn = np.zeros((B, H), f)
    dyb = rng.standard_normal((B, T, H)).astype(f)
    x, dy = xb.transpose(1, 0, 2), dyb.transpose(1, 0, 2)

    def ours(zmm):
        _C.rnn_zmm(zmm)
        y, _, _, saved = _C.rnn_layer_forward("LSTM", x, w_ih, b_ih, h0, c0, w_hh, b_hh, None, False)
        grads = _C.rnn_layer_backward("LSTM", dy, dhn, dcn, x, w_ih, b_ih, h0, c0, w_hh, b_hh, None, False, y,
                                      saved)
        return [y, *(g for g in grads if g is not None)]

    m = torch.nn.LSTM(I, H, batch_first=True)
    with torch.no_grad():
        for name, a in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
                           (w_ih, w_hh, b_ih, b_hh)):
            getattr(m, name).copy_(torch.tensor(a))
    xp, gp = torch.tensor(xb, requires_grad=True), torch.tensor(dyb)

    def theirs():
        for p in [xp, *m.parameters()]:
            p.grad = None
        m(xp)[0].backward(gp)

    before = _C.rnn_zmm()
    same = all(np.array_equal(a, b) for a, b in zip(ours(True), ours(False)))
    print(f"zmm kernel available: {_C.rnn_zmm(True)}; zmm and ymm give the same bits: {same}")
    fns = {"zmm": lambda: ours(True), "ymm": lambda: ours(False), "torch": theirs}
    times = {n: ([], []) for n in fns}
    for _ in range(3):
        for fn in fns.values():
            fn()
    for _ in range(reps):
        for n, fn in fns.items():
            c, t = time.process_time(), time.perf_counter()
            fn()
            times[n][0].append((time.perf_counter() - t) * 1e3)
            times[n][1].append((time.process_time() - c) * 1e3)
    _C.rnn_zmm(before)
    print(f"B{B} T{T} I{I} H{H}, {threads} threads, load {os.getloadavg()[0]:.1f}, {reps} runs each:")
    for n, (wall, cpu) in times.items():
        print(f"  {n:6s} wall min {min(wall):7.2f} med {np.median(wall):7.2f} | "
              f"cpu min {min(cpu):7.2f} med {np.median(cpu):7.2f} ms")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:6]))
