"""Delayed copy (HiPPO's memory task): output the input signal delayed by `delay` steps.

    u ~ N(0, 1) white noise of length L = 2 * delay;   target y_t = u_{t - delay}   (loss on t >= delay)

One S4D layer (64 channels, state 64) between a Linear(1, 64) encoder and a Linear(64, 1) decoder,
trained the same number of steps from two inits of the same size: S4D-LegS (the diagonal part of
HiPPO-LegS, whose state holds a Legendre projection of the whole history) and a random diagonal
init (state-spaces' "random": A = -1/2 + i exp(N(0, 1)), B = 1). Plots both loss curves.

    python examples/ssm/delayed_copy.py                      # delays 64 and 256, ~2 minutes on 2 cores
    python examples/ssm/delayed_copy.py --delays 512 --steps 400 --out delay.png
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from tinyml.models.ssm import S4D

import tinyml
import tinyml.nn as nn


class DelayModel(nn.Module):
    def __init__(self, init: str, width: int, d_state: int, dt_min: float, dt_max: float, seed: int):
        super().__init__()
        self.enc = nn.Linear(1, width)
        self.ssm = S4D(width, d_state, init=init, dt_min=dt_min, dt_max=dt_max, transposed=False, seed=seed)
        self.dec = nn.Linear(width, 1)

    def forward(self, u):  # (B, L, 1) -> (B, L, 1)
        return self.dec(self.ssm(self.enc(u)))


def train(init: str, delay: int, steps: int, batch: int, width: int, d_state: int, seed: int) -> list[float]:
    tinyml.manual_seed(seed)
    L = 2 * delay
    # dt spans the timescales the delay needs: dt * L from about 1 to 10 (the delay is 1/2 the window)
    model = DelayModel(init, width, d_state, dt_min=1.0 / L, dt_max=10.0 / L, seed=seed)
    opt = tinyml.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        u = rng.standard_normal((batch, L, 1)).astype(np.float32)
        y = model(tinyml.tensor(u))
        loss = ((y[:, delay:] - tinyml.tensor(u[:, :-delay])) ** 2).mean()  # 1.0 = no memory at all
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delays", type=int, nargs="+", default=[64, 256])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--d-state", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="delayed_copy.png")
    args = p.parse_args()
    tinyml.set_num_threads(2)
    curves = {}
    for delay in args.delays:
        for init in ("legs", "random"):
            t0 = time.perf_counter()
            losses = train(init, delay, args.steps, args.batch, args.width, args.d_state, args.seed)
            curves[f"{init} delay {delay}"] = losses
            print(f"delay {delay:4d}  {init:6s}: final MSE {np.mean(losses[-20:]):.4f} (1.0 = no memory) "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)
    with open(args.out.rsplit(".", 1)[0] + ".json", "w") as f:
        json.dump(curves, f)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, losses in curves.items():
        smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
        ax.plot(smooth, label=name, linestyle="-" if name.startswith("legs") else "--")
    ax.set(xlabel="step", ylabel="MSE (delayed copy)", yscale="log",
           title="S4D: LegS vs random diagonal init")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
