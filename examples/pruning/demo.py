"""Adapt-Pruner demonstration on Shakespeare (chars): a 6-layer GPT pretrained for P steps is pruned
to the parameter count of the baby preset's GPT while training T more steps (Adapt-Pruner), and compared
on validation loss with (a) one-shot magnitude pruning of the same pretrained model to the same size,
then T steps of training, and (b) the baby GPT trained from scratch, for T steps (the same post-pruning
budget, the paper's comparison) and for P + T steps (the same total).

    python examples/pruning/demo.py --pretrain 40 --steps 40 --out /tmp/prune   # a quick look
    # the small preset's GPT (the default --arch), pretrained once, saved, and reused by every arm run:
    python examples/pruning/demo.py --pretrain 1200 --steps 300 --save-source src1200 --out prune-300
    python examples/pruning/demo.py --source src1200 --steps 300 --schedule geometric --out prune-geo
    # every axis: 4 blocks, residual width 128, heads of 32 dims (baby's depth, width and head dim)
    python examples/pruning/demo.py --source src1200 --steps 300 --schedule geometric --prune-until 0.15 \
        --target-layers 4 --target-embd 128 --target-head-dim 32 --out prune-axes
    # the baby from scratch at several budgets, or a pruned model's architecture from a fresh init
    python examples/pruning/demo.py --baby-curve 300,600,900,1200,1500 --out curve
    python examples/pruning/demo.py --baby-curve 1500 --curve-shape prune-axes/pruned --out curve-shape
    # the narrower 1.99M-parameter source of the first tables in docs/pruning.md:
    python examples/pruning/demo.py --arch narrow --pretrain 250 --steps 250

`--arch small` (default) prunes the small preset's GPT (6 layers, 6 heads, 384 wide, MLP 1536, 10.7M
parameters) at context 64 and batch 12 instead of the preset's 256 and 64 (the same model, fewer
tokens a step: about 1.5 s a step on one CPU core), without the preset's dropout; `--arch narrow` its
depth at baby's width (4 heads of 32, a 1024-wide MLP, 1.99M parameters). Target: the baby preset's
GPT (811,264 parameters). --save-source DIR writes the pretrained model (tinyml.train.pruning.save_pruned,
with DIR/pretrain.json recording its steps and validation loss) and --source DIR loads it instead of
pretraining. Every arm after pretraining draws the same training batches; validation is the same
--eval-iters batches for every model. --target-layers / --target-embd / --target-head-dim prune those
axes too (Adapt-Pruner and one-shot alike). Writes <out>/results.json (with every round's sizes,
importances and calibration loss right before and after the cut) and <out>/pruned/ (the Adapt-Pruner
model: PrunableGPT.from_pretrained) and prints a markdown table with each arm's training compute
(6 N per token, the source's pretraining included).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time

from tinyml.models import GPT, GPTConfig
from tinyml.train.presets import get_preset
from tinyml.train.pruning import AdaptPruneConfig, adapt_prune, evaluate, magnitude_prune, save_pruned
from tinyml.train.pruning.adapt import train_steps
from tinyml.train.pruning.model import PrunableGPT, PrunableGPTConfig, load_pruned

import tinyml
from tinyml.data import CharTokenizer, RandomWindowSampler, shakespeare_split

BLOCK, BATCH = 64, 12
TOKENS = BLOCK * BATCH  # a training step's tokens
SOURCE_RECORD = "pretrain.json"  # beside the source's config.json and model.safetensors


def source_config(arch: str, vocab_size: int) -> GPTConfig:
    """The GPT to prune, at context BLOCK: "small" is the small preset's 6 x 384 GPT (6 heads, MLP
    1536, 10.7M parameters) without its dropout; "narrow" its depth at baby's width (4 heads of 32)
    with a 1024-wide MLP (1.99M)."""
    if arch == "small":
        pre = get_preset("small")
        return GPTConfig(vocab_size=vocab_size, block_size=BLOCK, n_layer=pre.n_layer, n_head=pre.n_head,
                         n_embd=pre.n_embd)
    return GPTConfig(vocab_size=vocab_size, block_size=BLOCK, n_layer=6, n_head=4, n_embd=128, n_inner=1024)


def load_source(folder: str) -> tuple[PrunableGPT, int]:
    """The pretrained model --save-source wrote to `folder`, and how many steps it was trained."""
    record_path = os.path.join(folder, SOURCE_RECORD)
    if not os.path.exists(record_path):
        raise SystemExit(f"--source {folder}: {record_path} is missing; write the folder with --save-source")
    with open(record_path) as f:
        record = json.load(f)
    return load_pruned(folder).train(), int(record["steps"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=("small", "narrow"), default="small",
                   help="the model to prune: the small preset's GPT (10.7M parameters) or its depth at "
                        "baby's width (1.99M)")
    p.add_argument("--pretrain", type=int, default=250, help="steps of the 6-layer model before pruning")
    p.add_argument("--source", help="a folder from --save-source: the pretrained model (no pretraining)")
    p.add_argument("--save-source", help="write the pretrained model to this folder for later --source runs")
    p.add_argument("--steps", type=int, default=250, help="steps of each arm after pretraining")
    p.add_argument("--rounds", type=int, default=8, help="Adapt-Pruner rounds")
    p.add_argument("--prune-until", type=float, default=0.6,
                   help="fraction of the steps holding the rounds (the rest trains the final model)")
    p.add_argument("--amplitude", type=float, default=0.5,
                   help="how much layer importance moves per-layer sparsity (0: the same in every layer)")
    p.add_argument("--schedule", choices=("linear", "geometric"), default="linear",
                   help="overall sparsity after round k of R: linear k S / R, or geometric 1 - (1 - S)^(k/R)")
    p.add_argument("--calib-batches", type=int, default=2,
                   help="batches for each round's layer importances and Taylor scores")
    p.add_argument("--target-layers", type=int, help="blocks to keep (the least important 1 - cos go)")
    p.add_argument("--target-embd", type=int, help="residual width to prune to")
    p.add_argument("--target-head-dim", type=int, help="head dim to prune every head to")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="peak learning rate after pruning, for Adapt-Pruner and one-shot + training alike")
    p.add_argument("--no-total-baby", action="store_true",
                   help="skip the baby trained for pretrain + steps (the same total number of steps)")
    p.add_argument("--baby-curve", help="comma-separated step counts: only train the baby from scratch for "
                                        "each (its own warmup + cosine schedule, the pretraining batches), "
                                        "to see how many steps it needs to match a pruned model")
    p.add_argument("--curve-shape", help="with --baby-curve: a folder holding a pruned model (<out>/pruned); "
                                         "train its architecture from a fresh init instead of the baby's")
    p.add_argument("--eval-iters", type=int, default=40)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default="tinyml-prune-demo")
    args = p.parse_args(argv)
    if args.source and args.save_source:
        p.error(f"--source {args.source} loads a pretrained model and --save-source {args.save_source} "
                f"writes one; give one of them")

    train_text, val_text = shakespeare_split(0.1)
    tok = CharTokenizer.from_text(train_text + val_text)
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)

    def sampler(seed):
        return RandomWindowSampler(train_ids, BLOCK, BATCH, seed=seed)

    def val_loss(model):
        val = RandomWindowSampler(val_ids, BLOCK, BATCH, seed=args.seed + 1)  # same batches each time
        return evaluate(model, val, args.eval_iters)

    def cfg(steps, target=0, warmup=50, lr=1e-3):
        return AdaptPruneConfig(target_params=target, steps=steps, rounds=args.rounds, warmup_steps=warmup,
                                amplitude=args.amplitude, prune_until=args.prune_until, lr=lr,
                                schedule=args.schedule, calib_batches=args.calib_batches,
                                target_layers=args.target_layers, target_embd=args.target_embd,
                                target_head_dim=args.target_head_dim)

    tinyml.manual_seed(args.seed)
    baby_preset = get_preset("baby")
    baby_cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=BLOCK, n_layer=baby_preset.n_layer,
                         n_head=baby_preset.n_head, n_embd=baby_preset.n_embd)
    target = GPT(baby_cfg).num_parameters()
    rows, t0 = [], time.time()
    if args.baby_curve:
        budgets = [int(n) for n in args.baby_curve.split(",")]
        return baby_curve(args, budgets, baby_cfg, sampler, val_loss, cfg)
    if args.source:
        big, pretrain = load_source(args.source)
        print(f"loaded {args.source}: a {big.num_parameters():,}-parameter GPT pretrained for {pretrain} "
              f"steps; target {target:,} parameters (baby)", flush=True)
    else:
        pretrain = args.pretrain
        big = GPT(source_config(args.arch, tok.vocab_size))
        print(f"pretraining a {big.num_parameters():,}-parameter GPT for {pretrain} steps; target "
              f"{target:,} parameters (baby)", flush=True)
        losses: list[float] = []
        opt = sched = None
        pre_sampler, pre_cfg = sampler(args.seed), cfg(pretrain)
        for start in range(0, pretrain, 250):  # in chunks of one schedule, to print progress
            opt, sched = train_steps(big, pre_sampler, pre_cfg, start, min(start + 250, pretrain), opt, sched,
                                     losses)
            print(f"  step {min(start + 250, pretrain)}: train loss (last 50) "
                  f"{sum(losses[-50:]) / len(losses[-50:]):.4f}  ({time.time() - t0:.0f} s)", flush=True)
    rows.append(("6-layer GPT, pretrained", big.num_parameters(), pretrain, val_loss(big)))
    print(f"  {rows[-1]}  ({time.time() - t0:.0f} s)", flush=True)
    if args.save_source:
        save_pruned(PrunableGPT.from_gpt(big), args.save_source)
        with open(os.path.join(args.save_source, SOURCE_RECORD), "w") as f:
            json.dump({"steps": pretrain, "val_loss": rows[-1][3], "seed": args.seed,
                       "seconds": time.time() - t0}, f, indent=1)
        print(f"  saved the pretrained model to {args.save_source}", flush=True)

    pruned, history = adapt_prune(copy.deepcopy(big), sampler(args.seed + 10),
                                  cfg(args.steps, target, warmup=20, lr=args.lr),
                                  log=lambda s: print("  " + s, flush=True))
    total = pretrain + args.steps
    rows.append(("Adapt-Pruner (interleaved)", pruned.num_parameters(), total, val_loss(pruned)))
    save_pruned(pruned, os.path.join(args.out, "pruned"))
    print(f"  {rows[-1]}  ({time.time() - t0:.0f} s)", flush=True)

    calib = sampler(args.seed + 20)  # ranks the blocks when one-shot pruning removes some
    oneshot = magnitude_prune(copy.deepcopy(big), target, layers=args.target_layers, embd=args.target_embd,
                              head_dim=args.target_head_dim,
                              batches=[tuple(map(tinyml.tensor, calib.next_batch())) for _ in range(2)])
    rows.append(("one-shot magnitude, before training", oneshot.num_parameters(), pretrain,
                 val_loss(oneshot)))
    train_steps(oneshot, sampler(args.seed + 10), cfg(args.steps, target, warmup=20, lr=args.lr), 0,
                args.steps)
    rows.append(("one-shot magnitude + training", oneshot.num_parameters(), total, val_loss(oneshot)))
    print(f"  {rows[-1]}  ({time.time() - t0:.0f} s)", flush=True)

    # the baby from scratch: the post-pruning budget on the arms' batches, then (optionally) the total
    budgets = [("baby from scratch, post-pruning budget", args.steps, args.seed + 10)]
    if not args.no_total_baby:
        budgets.append(("baby from scratch, total budget", total, args.seed))
    for name, steps, seed in budgets:
        tinyml.manual_seed(args.seed)
        baby = GPT(baby_cfg)
        train_steps(baby, sampler(seed), cfg(steps, warmup=20 if steps == args.steps else 50), 0, steps)
        rows.append((name, baby.num_parameters(), steps, val_loss(baby)))
        print(f"  {rows[-1]}  ({time.time() - t0:.0f} s)", flush=True)

    # training compute, 6 N per token (forward and backward), source's pretraining included
    pre_flops = 6 * big.num_parameters() * TOKENS * pretrain
    sizes = [big.num_parameters()] + [h["params"] for h in history]
    starts = [h["step"] for h in history] + [args.steps]
    adapt_flops = pre_flops + sum(6 * n * TOKENS * (starts[i] - (starts[i - 1] if i else 0))
                                  for i, n in enumerate(sizes))
    oneshot_flops = pre_flops + 6 * oneshot.num_parameters() * TOKENS * args.steps
    flops = [pre_flops, adapt_flops, pre_flops, oneshot_flops]
    flops += [6 * target * TOKENS * steps for _, steps, _ in budgets]
    rows = [(*r, f) for r, f in zip(rows, flops)]
    print("\n| model | parameters | training steps | training compute (TFLOP) | validation loss |\n"
          "|---|---:|---:|---:|---:|")
    for name, n, steps, loss, f in rows:
        print(f"| {name} | {n:,} | {steps} | {f / 1e12:.1f} | {loss:.4f} |")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        keys = ("model", "parameters", "steps", "val_loss", "flops")
        json.dump({"rows": [dict(zip(keys, r)) for r in rows],
                   "rounds": history, "args": vars(args), "pretrain_steps": pretrain,
                   "seconds": time.time() - t0}, f, indent=1)
    return 0


def scratch_shape(folder: str) -> PrunableGPTConfig:
    """The architecture of the pruned model in `folder`, for training from scratch: its sizes, with the
    softmax scale of its own head dim (head_size = its largest head dim) rather than the source's."""
    cfg = load_pruned(folder).config
    return PrunableGPTConfig(**{**cfg.to_dict(), "head_size": max(cfg.layer_head_dim)})


def baby_curve(args, budgets, baby_cfg, sampler, val_loss, cfg) -> int:
    """The baby from scratch (or, with --curve-shape, the pruned model's architecture) for each of
    `budgets` steps (each its own schedule, warmup 50, on the pretraining batches, as the total-budget
    baby): a table of validation loss by steps."""
    rows = []
    shape = scratch_shape(args.curve_shape) if args.curve_shape else None
    for steps in budgets:
        tinyml.manual_seed(args.seed)
        baby = PrunableGPT(shape) if shape else GPT(baby_cfg)
        train_steps(baby, sampler(args.seed), cfg(steps), 0, steps)
        flops = 6 * baby.num_parameters() * TOKENS * steps
        rows.append({"steps": steps, "val_loss": val_loss(baby), "flops": flops})
        print(f"  {baby.num_parameters():,} parameters, {steps} steps: {rows[-1]['val_loss']:.4f}",
              flush=True)
    print(f"\n{args.curve_shape or 'baby'} from scratch\n\n"
          "| steps | training compute (TFLOP) | validation loss |\n|---:|---:|---:|")
    for r in rows:
        print(f"| {r['steps']} | {r['flops'] / 1e12:.1f} | {r['val_loss']:.4f} |")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "baby_curve.json"), "w") as f:
        json.dump({"rows": rows, "args": vars(args)}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
