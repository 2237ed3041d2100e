"""Coordinate check of muP (Yang et al. 2021, "Tensor Programs V", figure 5): the RMS of each layer's
output of a GPT, per width, after each of a few AdamW steps at one learning rate. In the standard
parametrisation (SP) the hidden activations and the logits grow with the width once the weights have
moved (Adam's update is O(1) per coordinate, so its effect on a width-n dot product is O(n)); with muP
every curve stays flat.

    python examples/mup/coord_check.py                  # widths 32..512, writes docs/mup_coord_check.png
    python examples/mup/coord_check.py --widths 32 64 128 --steps 3 --out /tmp/cc.png

About 20 s on 2 cores with the defaults. The data are random token ids (the check is about sizes,
not about learning); the same seed builds every model, and muP's base width is the narrowest.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from tinyml.models import GPT, GPTConfig
from tinyml.models.transformer.mup import coord_check

import tinyml


def run(widths, steps: int, lr: float, n_layer: int = 2, vocab: int = 65, block: int = 32, batch: int = 4):
    rng = np.random.default_rng(0)
    data = rng.integers(0, vocab, (steps, batch, block + 1))
    batches = [(tinyml.tensor(d[:, :-1]), tinyml.tensor(d[:, 1:])) for d in data]
    results = {}
    for name, mup in (("SP", False), ("muP", True)):
        def make(width, mup=mup):
            tinyml.manual_seed(0)
            return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=4, n_embd=width,
                                 mup=mup, mup_base_width=min(widths) if mup else None))
        results[name] = coord_check(make, widths, batches, lr=lr, steps=steps)
    return results


def plot(results, steps: int, lr: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, steps, figsize=(3.2 * steps, 6), dpi=100, sharey=True, squeeze=False)
    for row, (name, res) in enumerate(results.items()):
        for t in range(steps):
            ax = axes[row][t]
            for li, layer in enumerate(res["layers"]):
                ax.plot(res["widths"], res["rms"][t, li], "o-", label=layer)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{name}, step {t}" + (" (init)" if t == 0 else ""), fontsize=10)
            ax.set_xlabel("width (n_embd)")
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("activation RMS")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"GPT coordinate check: AdamW lr {lr:g}, RMS of each layer's output before step t")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                                                 "mup_coord_check.png"))
    args = p.parse_args(argv)
    results = run(sorted(args.widths), args.steps, args.lr)
    for name, res in results.items():
        last = res["rms"][-1]
        growth = last[:, -1] / last[:, 0]
        print(f"{name}: RMS at width {res['widths'][-1]} / width {res['widths'][0]} after {args.steps - 1} "
              "steps: " + ", ".join(f"{layer} {g:.2f}x" for layer, g in zip(res["layers"], growth)))
    plot(results, args.steps, args.lr, args.out)
    print(f"plot: {os.path.normpath(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
