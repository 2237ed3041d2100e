"""The Mamba paper's synthetic tasks, shrunk to CPU size: selective copying and induction heads.

    selective_copy  L = 256: 8 data tokens (of 8 symbols) at random places among blanks, then 8 "copy
                    now" markers; the model outputs the data tokens in order at the markers. Where the
                    tokens sit changes per sequence, so a time-invariant convolution (S4D) cannot
                    fetch them; a selective scan (Mamba) can ignore the blanks.
    induction       L = 256 random tokens (vocab 16) holding a trigger token followed by an answer token
                    once; the sequence ends with the trigger, and the model must recall the answer.

Both models have 2 layers of width 64 (MambaLM: d_state 16; S4DLM: d_state 64, with MLPs), trained
with AdamW on fresh random batches; accuracy is measured on 512 held-out sequences.

    python examples/ssm/synthetic.py --task selective_copy --model mamba
    python examples/ssm/synthetic.py --task induction --model s4d --steps 800
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from tinyml.models.ssm import S4DLM, MambaConfig, MambaLM, S4DLMConfig

import tinyml
import tinyml.nn.functional as F

BLANK, MARKER = 0, 1  # selective copy; the induction task's trigger is token 1 too


def selective_copy(rng, batch: int, length: int = 256, n_data: int = 8, vocab: int = 10):
    """(inputs (B, L + n), targets (B, L + n) with -100 except at the markers)."""
    x = np.full((batch, length + n_data), BLANK, dtype=np.int64)
    data = rng.integers(2, vocab, (batch, n_data))
    for b in range(batch):
        where = np.sort(rng.choice(length, n_data, replace=False))
        x[b, where] = data[b]
    x[:, length:] = MARKER
    y = np.full_like(x, -100)
    y[:, length:] = data
    return x, y


def induction(rng, batch: int, length: int = 256, vocab: int = 16):
    """Random tokens 2..vocab-1; trigger (1) then the answer at a random place; the last token is the
    trigger, whose target is the answer."""
    x = rng.integers(2, vocab, (batch, length))
    answer = rng.integers(2, vocab, batch)
    pos = rng.integers(0, length - 3, batch)
    x[np.arange(batch), pos] = MARKER
    x[np.arange(batch), pos + 1] = answer
    x[:, -1] = MARKER
    y = np.full_like(x, -100)
    y[:, -1] = answer
    return x, y


TASKS = {"selective_copy": (selective_copy, 10), "induction": (induction, 16)}


def make_model(name: str, vocab: int):
    if name == "mamba":
        return MambaLM(MambaConfig(vocab_size=vocab, d_model=64, n_layer=2, d_state=16))
    return S4DLM(S4DLMConfig(vocab_size=vocab, d_model=64, n_layer=2, d_state=64))


def accuracy(model, task, rng) -> float:
    x, y = task(rng, 512)
    with tinyml.no_grad():
        logits, _ = model(tinyml.tensor(x))
    pred = logits.numpy().argmax(-1)
    keep = y != -100
    return float((pred[keep] == y[keep]).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=list(TASKS), default="selective_copy")
    p.add_argument("--model", choices=["mamba", "s4d"], default="mamba")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", default=None, help="write the curve (step, loss, accuracy) here as JSON")
    args = p.parse_args()
    tinyml.set_num_threads(2)
    tinyml.manual_seed(args.seed)
    task, vocab = TASKS[args.task]
    model = make_model(args.model, vocab)
    opt = tinyml.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    rng, held_out = np.random.default_rng(args.seed), np.random.default_rng(10_000 + args.seed)
    curve, t0 = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        lr = args.lr * min(1.0, step / 50) * (0.5 * (1 + np.cos(np.pi * step / args.steps)) * 0.9 + 0.1)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = task(rng, args.batch)
        logits, _ = model(tinyml.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, vocab), tinyml.tensor(y.reshape(-1)), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        tinyml.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.steps:
            acc = accuracy(model, task, np.random.default_rng(held_out.integers(1 << 31)))
            curve.append((step, loss.item(), acc))
            print(f"{args.task} {args.model} step {step:5d}  loss {loss.item():.3f}  accuracy {acc:.3f}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"final: {args.task} {args.model} ({sum(p.numel() for p in model.parameters())} parameters) "
          f"accuracy {curve[-1][2]:.3f} after {args.steps} steps, {time.perf_counter() - t0:.0f} s")
    if args.log:
        with open(args.log, "w") as f:
            json.dump({"task": args.task, "model": args.model, "curve": curve}, f)


if __name__ == "__main__":
    main()
