"""Attention-logit growth and divergence at a high learning rate, with and without qk-layernorm
(Wortsman et al. 2023, "Small-scale proxies for large-scale Transformer training instabilities",
section 3.1.1): two GPTs from the same initialisation, trained on the same batches at the same
learning rate, differing only in qk-layernorm. The loss and the largest attention logit are recorded
along the way; <out>/divergence.png plots both against the step, one column per learning rate.

    python examples/stability/divergence.py --out d      # docs/stability_divergence.png's runs (defaults)
    python examples/stability/divergence.py --arm base --out d & \
    python examples/stability/divergence.py --arm qk --out d               # one arm per process
    python examples/stability/divergence.py --plot-only --out d --png docs/stability_divergence.png

Defaults follow the paper's section 2.1 where tinyml's presets differ: AdamW betas (0.9, 0.95) and
eps 1e-8, gradient clipping at global norm 1, independent weight decay 1e-4 (AdamW's decay set to
1e-4 / lr), z-loss 1e-4 in both arms, linear warmup then cosine decay to 1e-5 (the presets: betas
(0.9, 0.99), decay 0.1 scaled by the lr, no z-loss, decay to lr / 10; both clip at 1). Every run
writes <out>/run-<arm>-lr<lr>.json (per-step training loss, the max attention logit of each layer
every --monitor-every steps, the final validation loss, and whether the loss went non-finite).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import time

ARMS = {"base": "no qk-layernorm", "qk": "qk-layernorm"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, nargs="+", default=[3e-3, 3e-2, 1e-1],
                   help="peak learning rates, one run per arm each (default 3e-3 3e-2 1e-1)")
    p.add_argument("--arm", choices=["both", *ARMS], default="both", help="which arm(s) to train")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=None, help="warmup steps (default: 5%% of --steps)")
    p.add_argument("--min-lr", type=float, default=1e-5, help="floor of the cosine decay (the paper's 1e-5)")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--block", type=int, default=64, help="context length")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.95))
    p.add_argument("--grad-clip", type=float, default=1.0, help="global-norm clipping, 0 for none")
    p.add_argument("--independent-wd", type=float, default=1e-4,
                   help="weight decay independent of the lr (AdamW's decay = this / lr); 0 for none")
    p.add_argument("--z-loss", type=float, default=1e-4, help="z-loss coefficient in both arms, 0 for none")
    p.add_argument("--monitor-every", type=int, default=10, help="steps between attention-logit records")
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default="tinyml-divergence")
    p.add_argument("--png", help="where to write the plot (default <out>/divergence.png)")
    p.add_argument("--plot-only", action="store_true", help="only redraw the plot from <out>/run-*.json")
    args = p.parse_args(argv)
    bad = [f"{k} {v}" for k, v in (("--steps", args.steps), ("--monitor-every", args.monitor_every))
           if v < 1] + [f"--lr {v}" for v in args.lr if not (v > 0 and math.isfinite(v))]
    if args.width % args.heads:
        bad.append(f"--width {args.width} (not a multiple of --heads {args.heads})")
    if bad:
        p.error("expected positive values: " + ", ".join(bad))
    return args


def train_arm(args, lr: float, qk_layernorm: bool, data) -> dict:
    """One run; returns what run-<arm>-lr<lr>.json holds."""
    from tinyml.models import GPT, GPTConfig
    from tinyml.train.monitors import StabilityMonitor
    from tinyml.train.pruning import evaluate
    from tinyml.train.schedule import WarmupCosine
    from tinyml.train.trainer import make_optimizer

    import tinyml
    from tinyml.data import RandomWindowSampler
    from tinyml.nn.utils import clip_grad_norm_

    vocab, train_ids, val_ids = data
    tinyml.manual_seed(args.seed)  # both arms: the same initial weights (qk-layernorm's gains start at 1)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=args.block, n_layer=args.layers, n_head=args.heads,
                          n_embd=args.width, qk_layernorm=qk_layernorm, z_loss=args.z_loss > 0,
                          z_loss_coef=args.z_loss))
    opt = make_optimizer(model, lr, args.independent_wd / lr, tuple(args.betas))
    warmup = args.warmup if args.warmup is not None else max(1, args.steps // 20)
    sched = WarmupCosine(opt, lr, warmup, args.steps, min(args.min_lr, lr))
    monitor = StabilityMonitor(model, every=args.monitor_every, optimizer=opt)
    train = RandomWindowSampler(train_ids, args.block, args.batch_size, seed=args.seed)  # same batches
    params = [p for p in model.parameters() if p.requires_grad]
    losses, norms, t0, finite = [], [], time.time(), True
    model.train()
    for step in range(args.steps):
        x, y = train.next_batch()
        _, loss = model(tinyml.tensor(x), tinyml.tensor(y))
        opt.zero_grad()
        loss.backward()
        norm = clip_grad_norm_(params, args.grad_clip) if args.grad_clip else None
        opt.step()
        sched.step()
        losses.append(loss.item())
        norms.append(None if norm is None else float(norm.item()))
        if not math.isfinite(losses[-1]):  # nothing to learn from NaN weights
            finite = False
            break
        if (step + 1) % 100 == 0 and monitor.records:
            print(f"  {ARMS['qk' if qk_layernorm else 'base']} lr {lr:g} step {step + 1}: loss "
                  f"{sum(losses[-100:]) / 100:.4f}, max attention logit "
                  f"{max(v for v in monitor.records[-1]['attn_logit_max'] if v is not None):.1f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    monitor.detach()
    val = RandomWindowSampler(val_ids, args.block, args.batch_size, seed=args.seed + 1)
    return {"lr": lr, "qk_layernorm": qk_layernorm, "finite": finite,
            "final_val_loss": evaluate(model, val, args.eval_iters) if finite else None,
            "train_loss": [v if math.isfinite(v) else None for v in losses], "grad_norm": norms,
            "monitor_steps": [r["step"] for r in monitor.records],
            "attn_logit_max": [r["attn_logit_max"] for r in monitor.records],
            "attn_entropy": [r["attn_entropy"] for r in monitor.records],
            "log_z_mean": [r["log_z_mean"] for r in monitor.records],
            "seconds": time.time() - t0, "warmup": warmup,
            "args": {k: v for k, v in vars(args).items() if k not in ("lr", "arm", "plot_only", "png")}}


def run_path(out: str, arm: str, lr: float) -> str:
    return os.path.join(out, f"run-{arm}-lr{lr:g}.json")


def smooth(values: list, window: int) -> list[float]:
    """Trailing mean over `window` steps (None kept as NaN), to read a noisy per-step loss."""
    out, acc = [], []
    for v in values:
        acc.append(float("nan") if v is None else v)
        acc = acc[-window:]
        out.append(sum(acc) / len(acc))
    return out


def plot(out: str, png: str) -> str | None:
    """One column per learning rate: training loss (top) and the max attention logit over layers
    (bottom, log scale) against the step, one line per arm."""
    runs = []
    for path in sorted(glob.glob(os.path.join(out, "run-*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    lrs = sorted({r["lr"] for r in runs})
    fig, axes = plt.subplots(2, len(lrs), figsize=(5.5 * len(lrs), 7), dpi=100, squeeze=False)
    colors = {False: "tab:red", True: "tab:blue"}
    for col, lr in enumerate(lrs):
        ax_loss, ax_logit = axes[0, col], axes[1, col]
        for r in sorted((r for r in runs if r["lr"] == lr), key=lambda r: r["qk_layernorm"]):
            arm = ARMS["qk" if r["qk_layernorm"] else "base"]
            val = "non-finite" if r["final_val_loss"] is None else f"{r['final_val_loss']:.3f}"
            steps = range(1, len(r["train_loss"]) + 1)
            ax_loss.plot(steps, r["train_loss"], color=colors[r["qk_layernorm"]], alpha=0.2, lw=0.6)
            ax_loss.plot(steps, smooth(r["train_loss"], 20), color=colors[r["qk_layernorm"]],
                         label=f"{arm} (final val loss {val})")
            top = [max((v for v in layer if v is not None), default=float("nan"))
                   for layer in r["attn_logit_max"]]
            ax_logit.plot(r["monitor_steps"], top, color=colors[r["qk_layernorm"]], label=arm)
        ax_loss.set_title(f"peak lr {lr:g}")
        ax_loss.set_ylabel("training loss (20-step mean; faint: per step)")
        ax_logit.set_ylabel("max attention logit (over layers, batch, heads)")
        ax_logit.set_yscale("log")
        for ax in (ax_loss, ax_logit):
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    tmp = f"{png}.tmp{os.getpid()}.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png)
    return png


def main(argv=None) -> int:
    args = parse_args(argv)
    png = args.png or os.path.join(args.out, "divergence.png")
    if not args.plot_only:
        from tinyml.data import CharTokenizer, shakespeare_split

        train_text, val_text = shakespeare_split(0.1)
        tok = CharTokenizer.from_text(train_text + val_text)
        data = (tok.vocab_size, tok.encode(train_text), tok.encode(val_text))
        os.makedirs(args.out, exist_ok=True)
        arms = list(ARMS) if args.arm == "both" else [args.arm]
        for lr in args.lr:
            for arm in arms:
                print(f"{ARMS[arm]}, lr {lr:g}: {args.layers} layers x {args.width} wide, {args.steps} steps",
                      flush=True)
                result = train_arm(args, lr, arm == "qk", data)
                with open(run_path(args.out, arm, lr), "w") as f:
                    json.dump(result, f)
                val = result["final_val_loss"]
                print(f"  -> final val loss {'non-finite' if val is None else f'{val:.4f}'} "
                      f"({result['seconds']:.0f} s)", flush=True)
    path = plot(args.out, png)
    print(f"plot: {path}" if path else f"no run-*.json in {args.out} to plot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
