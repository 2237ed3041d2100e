"""Learning-rate sweep of a preset's GPT (Wortsman et al. 2023, "Small-scale proxies for large-scale
Transformer training instabilities"): one short run per learning rate, log-spaced over --lr LOW..HIGH,
each from the same initialisation and batches, with the stability options --qk-layernorm and
--z-loss and muP (--mup: models/transformer/mup.py, hidden matrices at lr * base/width, with --width
the model's width and --mup-base-width the width whose rates it keeps, wider or narrower) and the paper's
independent weight decay (--independent-wd LAMBDA: each step removes lr(s)/lr * LAMBDA of every decayed
weight, whatever the peak lr; AdamW's decay is set to LAMBDA / lr). Writes
<out>/sweep-<setting>.json (final validation loss per LR, the max attention logit and
output log Z at the end of each run, the training curves) with the paper's LR sensitivity

    sensitivity = mean over the sweep of min(loss(lr), loss at init) - min over the sweep of the same,

(a diverged run counts as the loss at initialisation), and redraws <out>/sweep.png, which overlays
every setting swept into the same folder: run the command once per setting with the same --out.
Example: tinyml sweep --lr 3e-4..3e-1 --points 8 --config baby --steps 300 --qk-layernorm --z-loss 1e-4.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re

from .. import argtypes as at

NAME = "sweep"
HELP = "learning-rate sweep of a GPT preset (qk-layernorm, z-loss, muP): final loss per LR, sensitivity, plot"


def lr_range(text: str) -> tuple[float, float]:
    """LOW..HIGH, two finite positive learning rates with LOW < HIGH."""
    parts = text.split("..")
    try:
        lo, hi = (float(p) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or not (math.isfinite(lo) and math.isfinite(hi)):
        raise argparse.ArgumentTypeError(f"expected LOW..HIGH learning rates such as 3e-4..3e-1, "
                                         f"got {text!r}")
    if lo <= 0:
        raise argparse.ArgumentTypeError(f"learning rates must be > 0, got {text!r} (low {lo:g})")
    if lo == hi:
        raise argparse.ArgumentTypeError(f"the range {text!r} is empty (low == high == {lo:g})")
    if lo > hi:
        raise argparse.ArgumentTypeError(f"the range {text!r} is inverted (low {lo:g} > high {hi:g}); "
                                         f"write {parts[1]}..{parts[0]}")
    return lo, hi


def add_arguments(p) -> None:
    from ..presets import PRESETS

    p.add_argument("--lr", type=lr_range, default=(3e-4, 3e-1),
                   help="learning-rate range LOW..HIGH, log-spaced (default 3e-4..3e-1)")
    p.add_argument("--points", type=at.bounded_int(2), default=8,
                   help="learning rates in the sweep (default 8)")
    p.add_argument("--config", choices=list(PRESETS), default="baby",
                   help="model and batch preset (default baby)")
    p.add_argument("--steps", type=at.positive_int, default=300, help="optimizer steps per run (default 300)")
    p.add_argument("--warmup", type=at.nonnegative_int, help="warmup steps (default: a tenth of --steps)")
    p.add_argument("--qk-layernorm", action="store_true", help="LayerNorm on each head's queries and keys")
    p.add_argument("--z-loss", type=at.positive_float, default=None, metavar="COEF",
                   help="add COEF * mean(log Z^2) to the loss (the paper uses 1e-4; default off)")
    p.add_argument("--mup", action="store_true",
                   help="maximal update parametrisation (init, per-layer learning rates, output multiplier)")
    p.add_argument("--mup-base-width", type=at.positive_int,
                   help="muP's base width, whose learning rates carry over (default: the preset's n_embd)")
    p.add_argument("--width", type=at.positive_int,
                   help="n_embd of the swept model, a multiple of the preset's n_head (default: its own)")
    p.add_argument("--independent-wd", type=at.positive_float, default=None, metavar="LAMBDA",
                   help="weight decay independent of the learning rate (the paper uses 1e-4; default: the "
                        "preset's AdamW decay)")
    p.add_argument("--grad-clip", type=at.nonnegative_float, default=1.0,
                   help="gradient-norm clipping, 0 for none (default 1.0, the presets')")
    p.add_argument("--batch-size", type=at.positive_int, help="sequences per step (default: the preset's)")
    p.add_argument("--eval-iters", type=at.positive_int, default=10,
                   help="validation batches for the initial and final loss (default 10)")
    p.add_argument("--label", help="the setting's name in the json file and the plot (default: from flags)")
    p.add_argument("--data", type=at.existing_file,
                   help="a UTF-8 text file instead of the bundled Shakespeare")
    p.add_argument("--seed", type=at.seed, default=1337)
    p.add_argument("--device", type=at.device_name,
                   help="cpu, cuda, cuda:N, or auto (default: the best present)")
    p.add_argument("--out", type=at.folder_to_create, default="tinyml-sweep", help="folder for json and plot")


def learning_rates(lo: float, hi: float, points: int) -> list[float]:
    """`points` learning rates from lo to hi, evenly spaced in log(lr)."""
    step = (math.log(hi) - math.log(lo)) / (points - 1)
    return [lo] + [math.exp(math.log(lo) + i * step) for i in range(1, points - 1)] + [hi]


def lr_sensitivity(final_losses: list[float | None], initial_loss: float) -> tuple[float, float]:
    """(sensitivity, best loss): E_lr[min(loss(lr), l0)] - min_lr min(loss(lr), l0), with a diverged
    run (None or non-finite) counted as l0, the loss at initialisation."""
    clipped = [initial_loss if v is None or not math.isfinite(v) else min(v, initial_loss)
               for v in final_losses]
    best = min(clipped)
    return sum(clipped) / len(clipped) - best, best


def setting_label(args) -> str:
    if args.label:
        return args.label
    parts = ((["qk-layernorm"] if args.qk_layernorm else [])
             + ([f"z-loss {args.z_loss:g}"] if args.z_loss else [])
             + ([f"muP base {args.mup_base_width}"] if args.mup else [])
             + ([f"width {args.width}"] if args.width else [])
             + ([f"independent-wd {args.independent_wd:g}"] if args.independent_wd else []))
    return "+".join(parts) or "baseline"


def weight_decay(args, preset, lr: float) -> float:
    """AdamW's decoupled decay for a run at peak `lr`: AdamW removes lr(s) * wd of a weight per step,
    so wd = LAMBDA / lr makes that lr(s)/lr * LAMBDA, independent of the peak (Wortsman et al. 2023)."""
    return args.independent_wd / lr if args.independent_wd is not None else preset.train.weight_decay


def run_one(lr: float, model_cfg, preset, data, args, device) -> dict:
    """One training run at `lr`: the final validation loss (None when it diverged), its training
    curve, and the stability monitor's last max attention logit and log Z mean."""
    from tinyml.models import GPT
    from tinyml.models.transformer.mup import set_mup_lr_hints

    import tinyml
    from tinyml.data import RandomWindowSampler

    from ..monitors import StabilityMonitor
    from ..trainer import TrainConfig, Trainer

    train_ids, val_ids, batch_size = data
    tinyml.manual_seed(args.seed)  # every learning rate starts from the same weights and batches
    model = GPT(model_cfg).to(device)
    set_mup_lr_hints(model, lr)  # muP's lr * base/width for the hidden matrices; a no-op without muP
    tcfg = TrainConfig(max_steps=args.steps, lr=lr, min_lr=lr / 10,
                       warmup_steps=args.warmup if args.warmup is not None else args.steps // 10,
                       weight_decay=weight_decay(args, preset, lr), betas=preset.train.betas,
                       grad_clip=args.grad_clip or None, eval_interval=args.steps, eval_iters=args.eval_iters,
                       log_interval=args.steps, progress=False)
    trainer = Trainer(model, RandomWindowSampler(train_ids, preset.block_size, batch_size, seed=args.seed),
                      RandomWindowSampler(val_ids, preset.block_size, batch_size, seed=args.seed + 1), tcfg,
                      device=device)
    initial = trainer.evaluate()
    monitor = StabilityMonitor(model, every=max(1, args.steps // 10)).attach(trainer)
    try:
        summary = trainer.fit()
        final, diverged = summary["val_loss"], not math.isfinite(summary["val_loss"])
    except FloatingPointError:  # the Trainer stops at a non-finite training loss
        final, diverged = None, True
    finally:
        monitor.detach()
    last = monitor.records[-1] if monitor.records else {}
    logits = [v for v in last.get("attn_logit_max", []) if v is not None]
    return {"lr": lr, "final_loss": None if diverged else final, "diverged": diverged,
            "weight_decay": tcfg.weight_decay,
            "initial_loss": initial,
            "max_attn_logit": max(logits) if logits else None, "log_z_mean": last.get("log_z_mean"),
            "train_losses": [x if math.isfinite(x) else None for x in trainer.losses]}


def sweep(args, device: str) -> dict:
    """The whole sweep as the json file records it."""
    from dataclasses import replace

    from ..lm import model_config, prepare_data
    from ..presets import get_preset
    from ..runs import RunPlan
    from ..trainer import TrainConfig

    preset = get_preset(args.config)
    batch_size = args.batch_size or preset.batch_size
    plan = RunPlan(out=args.out, resume=False, flags={}, preset_name=args.config, preset=preset,
                   train=TrainConfig(), batch_size=batch_size, seed=args.seed, tokenizer="char",
                   vocab_size=None,
                   data=os.path.abspath(args.data) if args.data else None)
    tok, train_ids, val_ids = prepare_data(plan)
    width = args.width or preset.n_embd
    model_cfg = replace(model_config(preset, tok.vocab_size), qk_layernorm=args.qk_layernorm,
                        z_loss=args.z_loss is not None, z_loss_coef=args.z_loss or 0.0, n_embd=width,
                        mup=args.mup,
                        mup_base_width=(args.mup_base_width or preset.n_embd) if args.mup else None)
    runs = []
    for lr in learning_rates(*args.lr, args.points):
        r = run_one(lr, model_cfg, preset, (train_ids, val_ids, batch_size), args, device)
        shown = "diverged" if r["diverged"] else f"{r['final_loss']:.4f}"
        logit, log_z = (float("nan") if r[k] is None else r[k] for k in ("max_attn_logit", "log_z_mean"))
        print(f"  lr {lr:.3g}: final val loss {shown}, max attention logit {logit:.1f}, log Z {log_z:.2f}",
              flush=True)
        runs.append(r)
    initial = runs[0]["initial_loss"]  # the same for every run: same seed, same weights, same batches
    sensitivity, best = lr_sensitivity([r["final_loss"] for r in runs], initial)
    return {"label": setting_label(args), "config": args.config, "steps": args.steps,
            "batch_size": batch_size,
            "qk_layernorm": args.qk_layernorm, "z_loss": args.z_loss, "mup": args.mup,
            "independent_wd": args.independent_wd,
            "grad_clip": args.grad_clip,
            "seed": args.seed, "model": model_cfg.to_dict(), "initial_loss": initial, "best_loss": best,
            "lr_sensitivity": sensitivity, "runs": runs}


def json_path(out: str, label: str) -> str:
    return os.path.join(out, "sweep-" + re.sub(r"[^A-Za-z0-9.+-]+", "-", label).strip("-") + ".json")


def plot_sweeps(out: str) -> str | None:
    """<out>/sweep.png: final loss and max attention logit against LR, one line per sweep-*.json
    in `out` (a diverged run is drawn at its loss at initialisation, hollow). None without files."""
    results = []
    for path in sorted(glob.glob(os.path.join(out, "sweep-*.json"))):
        with open(path) as f:
            results.append(json.load(f))
    if not results:
        return None
    from ..progress import require_matplotlib

    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_logit) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    for res in results:
        lrs = [r["lr"] for r in res["runs"]]
        losses = [r["initial_loss"] if r["diverged"] else r["final_loss"] for r in res["runs"]]
        line, = ax_loss.plot(lrs, losses, "-", label=f"{res['label']} (LR sensitivity "
                                                     f"{res['lr_sensitivity']:.3f})")
        for lr, loss, r in zip(lrs, losses, res["runs"]):
            ax_loss.plot(lr, loss, "o", color=line.get_color(), fillstyle="none" if r["diverged"] else "full")
        logits = [float("nan") if r["max_attn_logit"] is None else r["max_attn_logit"] for r in res["runs"]]
        ax_logit.plot(lrs, logits, "o-", color=line.get_color(), label=res["label"])
    ax_loss.set_ylabel("final validation loss")
    ax_loss.set_title("hollow: diverged, drawn at the initial loss", fontsize=9)
    ax_logit.set_ylabel("max attention logit at the end")
    ax_logit.set_yscale("symlog")  # it spans orders of magnitude once training destabilises
    for ax in (ax_loss, ax_logit):
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "sweep.png")
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def check_model_flags(args) -> None:
    """--width and --mup-base-width against the preset: a UsageError naming the values (a base wider
    than the model is fine: its hidden matrices then train above --lr)."""
    from ..presets import get_preset
    from ..runs import UsageError

    preset = get_preset(args.config)
    width = args.width or preset.n_embd
    if width % preset.n_head:
        raise UsageError(f"--width {width} must be a multiple of the {args.config} preset's "
                         f"{preset.n_head} heads")
    if args.mup_base_width is not None and not args.mup:
        raise UsageError(f"--mup-base-width {args.mup_base_width} needs --mup")


def run(args) -> int:
    from ..cli import _best_device  # the cli's own device choice, as train makes it
    from ..progress import require_matplotlib

    device = _best_device(args.device)
    check_model_flags(args)
    require_matplotlib()
    label = setting_label(args)
    lrs = learning_rates(*args.lr, args.points)
    print(f"tinyml sweep: {args.config} GPT ({label}), {args.points} learning rates "
          f"{lrs[0]:.3g}..{lrs[-1]:.3g}, "
          f"{args.steps} steps each on {device} -> {args.out}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    result = sweep(args, device)
    path = json_path(args.out, label)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)
    plot = plot_sweeps(args.out)
    print(f"initial loss {result['initial_loss']:.4f}, best {result['best_loss']:.4f}, "
          f"LR sensitivity {result['lr_sensitivity']:.4f}\n  results: {path}\n  plot:    {plot}")
    return 0
