"""Adapt-Pruner demonstration on Shakespeare (chars): a 6-layer GPT pretrained for P steps is pruned
to the parameter count of the baby preset's GPT while training T more steps (Adapt-Pruner), and compared
on validation loss with (a) one-shot magnitude pruning of the same pretrained model to the same size,
then T steps of training, and (b) the baby GPT trained from scratch for P + T steps (the same total).

    python examples/pruning/demo.py                         # P = T = 250; about 15 minutes on 2 cores
    python examples/pruning/demo.py --pretrain 40 --steps 40 --out /tmp/prune   # a quick look

The pretrained model is the "small" preset's depth (6 layers, 4 heads) at the baby preset's width and
context (128, 64) with a 1024-wide MLP, 1.99M parameters: the small preset itself (10.7M, context 256)
takes seconds per step on a CPU. Writes <out>/results.json and <out>/pruned/ (the Adapt-Pruner model,
loadable with tinyml.train.pruning.load_pruned) and prints a markdown table.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time

from tinyml.models import GPT, GPTConfig
from tinyml.train.pruning import AdaptPruneConfig, adapt_prune, evaluate, magnitude_prune, save_pruned
from tinyml.train.pruning.adapt import train_steps

import tinyml
from tinyml.data import CharTokenizer, RandomWindowSampler, shakespeare_split

BLOCK, BATCH = 64, 12


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrain", type=int, default=250, help="steps of the 6-layer model before pruning")
    p.add_argument("--steps", type=int, default=250, help="steps of each arm after pretraining")
    p.add_argument("--rounds", type=int, default=8, help="Adapt-Pruner rounds")
    p.add_argument("--amplitude", type=float, default=0.5,
                   help="how much layer importance moves per-layer sparsity (0: the same in every layer)")
    p.add_argument("--eval-iters", type=int, default=40)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default="tinyml-prune-demo")
    args = p.parse_args(argv)

    train_text, val_text = shakespeare_split(0.1)
    tok = CharTokenizer.from_text(train_text + val_text)
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)

    def sampler(seed):
        return RandomWindowSampler(train_ids, BLOCK, BATCH, seed=seed)

    def val_loss(model):
        val = RandomWindowSampler(val_ids, BLOCK, BATCH, seed=args.seed + 1)  # same batches each time
        return evaluate(model, val, args.eval_iters)

    def cfg(steps, target=0, warmup=50):
        return AdaptPruneConfig(target_params=target, steps=steps, rounds=args.rounds, warmup_steps=warmup,
                                amplitude=args.amplitude)

    tinyml.manual_seed(args.seed)
    baby_cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=BLOCK, n_layer=4, n_head=4, n_embd=128)
    target = GPT(baby_cfg).num_parameters()
    big = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=BLOCK, n_layer=6, n_head=4, n_embd=128,
                        n_inner=1024))
    rows, t0 = [], time.time()
    print(f"pretraining a {big.num_parameters():,}-parameter GPT for {args.pretrain} steps; target "
          f"{target:,} parameters (baby)", flush=True)
    train_steps(big, sampler(args.seed), cfg(args.pretrain), 0, args.pretrain)
    rows.append(("6-layer GPT, pretrained", big.num_parameters(), args.pretrain, val_loss(big)))
    print(f"  {rows[-1]}  ({time.time() - t0:.0f} s)", flush=True)

    pruned, history = adapt_prune(copy.deepcopy(big), sampler(args.seed + 10),
                                  cfg(args.steps, target, warmup=20),
                                  log=lambda s: print("  " + s, flush=True))
    total = args.pretrain + args.steps
    rows.append(("Adapt-Pruner (interleaved)", pruned.num_parameters(), total, val_loss(pruned)))
    save_pruned(pruned, os.path.join(args.out, "pruned"))
    print(f"  {rows[-1]}  ({time.time() - t0:.0f} s)", flush=True)

    oneshot = magnitude_prune(copy.deepcopy(big), target)
    rows.append(("one-shot magnitude, before training", oneshot.num_parameters(), args.pretrain,
                 val_loss(oneshot)))
    train_steps(oneshot, sampler(args.seed + 10), cfg(args.steps, target, warmup=20), 0, args.steps)
    rows.append(("one-shot magnitude + training", oneshot.num_parameters(), total, val_loss(oneshot)))
    print(f"  {rows[-1]}  ({time.time() - t0:.0f} s)", flush=True)

    tinyml.manual_seed(args.seed)
    baby = GPT(baby_cfg)
    train_steps(baby, sampler(args.seed), cfg(total), 0, total)
    rows.append(("baby from scratch", baby.num_parameters(), total, val_loss(baby)))
    print(f"  {rows[-1]}  ({time.time() - t0:.0f} s)", flush=True)

    print("\n| model | parameters | training steps | validation loss |\n|---|---:|---:|---:|")
    for name, n, steps, loss in rows:
        print(f"| {name} | {n:,} | {steps} | {loss:.4f} |")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"rows": [dict(zip(("model", "parameters", "steps", "val_loss"), r)) for r in rows],
                   "rounds": history, "args": vars(args), "seconds": time.time() - t0}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
