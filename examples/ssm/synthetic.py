"""The Mamba paper's synthetic tasks (Gu and Dao 2023, section 4.1.1, appendix E.1) at CPU size.

    selective_copy  `length` positions hold `n_data` data tokens (symbols 2..vocab-1) at random places
                    among blanks (0), then come `n_data` "copy now" markers (1); at the k-th marker the
                    model outputs the k-th data token. The paper: vocab 16, 16 data tokens, length 4096;
                    here length 256 (S4's copying.py with variable=True: the same layout).
                    Where the tokens sit changes per sequence, so a time-invariant convolution (S4D)
                    cannot fetch them; a selective scan (Mamba) can ignore the blanks.
    induction       `length` random tokens (2..vocab-1) in which a trigger (1) is followed by an answer
                    token; the sequence ends with the trigger, whose target is the answer. The paper:
                    vocab 16, trained at length 256 (safari's generate_induction_head, one trigger).
                    For training, `n_triggers` > 1 puts the trigger + answer pair in that many places;
                    every trigger after the first is then a query (denser supervision, as multi-query
                    associative recall). Evaluation always uses the paper's task: one pair, one query.

Targets are -100 except at the queried positions; accuracy is over every queried position of 512
held-out sequences at the evaluation length. Models: 2 layers of width 64 (MambaLM, d_state 16;
S4DLM, d_state 64, with MLPs), AdamW with warmup and cosine decay, fresh random batches every step,
and a length curriculum (`--stages 64:400,128:400,256:600`: training length and steps per stage).
Each task's defaults (RECIPES) are the runs of examples/ssm/README.md:

    python examples/ssm/synthetic.py --task induction --model mamba --log synthetic_induction_mamba.json
    python examples/ssm/synthetic.py --task selective_copy --model s4d
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


def selective_copy(rng, batch: int, length: int = 256, n_data: int = 16, vocab: int = 16):
    """(inputs (B, length + n_data), targets of the same shape, -100 except at the markers)."""
    if not 0 < n_data <= length or vocab < 3:
        raise ValueError(f"selective_copy: need 0 < n_data <= length and vocab >= 3, got n_data={n_data}, "
                         f"length={length}, vocab={vocab}")
    x = np.full((batch, length + n_data), BLANK, dtype=np.int64)
    data = rng.integers(2, vocab, (batch, n_data))
    where = np.sort(np.argsort(rng.random((batch, length)), axis=1)[:, :n_data], axis=1)  # distinct places
    np.put_along_axis(x, where, data, axis=1)
    x[:, length:] = MARKER
    y = np.full_like(x, -100)
    y[:, length:] = data
    return x, y


def induction(rng, batch: int, length: int = 256, vocab: int = 16, n_triggers: int = 1):
    """(inputs (B, length), targets (B, length)): random tokens 2..vocab-1 with `n_triggers` trigger +
    answer pairs (the same answer, places that do not overlap) and the trigger at the end; every trigger
    after the first has the answer as its target."""
    if n_triggers < 1 or 2 * n_triggers > length - 1 or vocab < 3:
        raise ValueError(f"induction: need 1 <= n_triggers <= (length - 1) / 2 and vocab >= 3, got "
                         f"n_triggers={n_triggers}, length={length}, vocab={vocab}")
    x = rng.integers(2, vocab, (batch, length))
    answer = rng.integers(2, vocab, batch)
    # n sorted distinct starts in [0, length - 1 - n), shifted by 0..n-1: gaps >= 2, the last pair ends
    # at length - 2 at the latest, uniform over the non-overlapping placements
    starts = np.sort(np.argsort(rng.random((batch, length - 1 - n_triggers)), axis=1)[:, :n_triggers], axis=1)
    pos = starts + np.arange(n_triggers)
    rows = np.arange(batch)[:, None]
    x[rows, pos] = MARKER
    x[rows, pos + 1] = answer[:, None]
    x[:, -1] = MARKER
    y = np.full_like(x, -100)
    y[rows, pos[:, 1:]] = answer[:, None]
    y[:, -1] = answer
    return x, y


TASKS = {"selective_copy": (selective_copy, 16), "induction": (induction, 16)}
# the recipes of examples/ssm/README.md: training length curriculum, queries per training sequence
RECIPES = {"selective_copy": {"stages": "64:1000,128:500,256:2500", "n_triggers": 1, "eval_every": 250},
           "induction": {"stages": "64:400,128:400,256:600", "n_triggers": 4, "eval_every": 100}}


def make_model(name: str, vocab: int, d_state: int | None = None):
    """2 layers of width 64: MambaLM (d_state 16 by default) or S4DLM (d_state 64, with MLPs)."""
    if name == "mamba":
        return MambaLM(MambaConfig(vocab_size=vocab, d_model=64, n_layer=2, d_state=d_state or 16))
    return S4DLM(S4DLMConfig(vocab_size=vocab, d_model=64, n_layer=2, d_state=d_state or 64))


def sample(task: str, rng, batch: int, length: int, n_triggers: int = 1, n_data: int = 16):
    if task == "induction":
        return induction(rng, batch, length, n_triggers=n_triggers)
    return selective_copy(rng, batch, length, n_data=n_data)


def accuracy(model, x, y, batch: int = 128) -> float:
    """Fraction of the queried positions (targets != -100) where the argmax is the target."""
    hits = total = 0
    with tinyml.no_grad():
        for i in range(0, len(x), batch):
            pred = model(tinyml.tensor(x[i:i + batch]))[0].numpy().argmax(-1)
            keep = y[i:i + batch] != -100
            hits += int((pred[keep] == y[i:i + batch][keep]).sum())
            total += int(keep.sum())
    return hits / total


def parse_stages(text: str) -> list[tuple[int, int]]:
    """"64:2000,256:500" -> [(64, 2000), (256, 500)]: training length and steps per stage."""
    try:
        stages = [tuple(int(v) for v in part.split(":")) for part in text.split(",")]
    except ValueError:
        stages = []
    if not stages or any(len(s) != 2 or s[0] < 4 or s[1] < 1 for s in stages):
        raise ValueError("--stages: expected LENGTH:STEPS[,LENGTH:STEPS...] with LENGTH >= 4 and "
                         f"STEPS >= 1, got {text!r}")
    return stages


def train(task: str, model_name: str, stages, batch: int = 32, lr: float = 3e-3, warmup: int = 100,
          n_triggers: int = 1, n_data: int = 16, d_state: int | None = None, eval_length: int = 256,
          eval_every: int = 250, n_eval: int = 512, seed: int = 0, extrapolate=(), log=print) -> dict:
    """Train on fresh batches stage by stage; evaluate on the held-out set (the paper's task at
    `eval_length`) every `eval_every` steps. The curve: (step, CPU seconds, mean training loss since
    the last point, held-out accuracy). After training, the accuracy at each length in `extrapolate`
    (held-out sets of the same task, longer than anything trained on, as in the paper's induction-heads
    extrapolation table)."""
    tinyml.manual_seed(seed)
    vocab = TASKS[task][1]
    model = make_model(model_name, vocab, d_state)
    opt = tinyml.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    x_eval, y_eval = sample(task, np.random.default_rng(10_000 + seed), n_eval, eval_length, 1, n_data)
    total = sum(steps for _, steps in stages)
    curve, losses, step, cpu0 = [], [], 0, time.process_time()
    for length, steps in stages:
        for _ in range(steps):
            step += 1
            decay = 0.5 * (1 + np.cos(np.pi * step / total)) * 0.9 + 0.1  # cosine to lr / 10
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, step / warmup) * decay
            x, y = sample(task, rng, batch, length, n_triggers, n_data)
            logits, _ = model(tinyml.tensor(x))
            loss = F.cross_entropy(logits.reshape(-1, vocab), tinyml.tensor(y.reshape(-1)), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            tinyml.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if step % eval_every == 0 or step == total:
                acc = accuracy(model, x_eval, y_eval)
                cpu = time.process_time() - cpu0
                curve.append((step, round(cpu, 1), round(float(np.mean(losses)), 4), acc))
                losses = []
                log(f"{task} {model_name} step {step:5d} (train length {length})  loss {curve[-1][2]:.3f}  "
                    f"held-out accuracy @{eval_length} {acc:.3f}  ({cpu:.0f} CPU s)")
    extrapolation = {}
    for length in extrapolate:
        x_long, y_long = sample(task, np.random.default_rng(20_000 + length), n_eval, length, 1, n_data)
        extrapolation[str(length)] = accuracy(model, x_long, y_long, batch=max(1, 32768 // length))
        log(f"{task} {model_name} held-out accuracy at length {length}: {extrapolation[str(length)]:.3f}")
    return {"task": task, "model": model_name, "parameters": sum(p.numel() for p in model.parameters()),
            "stages": stages, "batch": batch, "lr": lr, "warmup": warmup, "n_triggers": n_triggers,
            "n_data": n_data, "eval_length": eval_length, "n_eval": n_eval, "seed": seed,
            "cpu_seconds": curve[-1][1], "accuracy": curve[-1][3], "extrapolation": extrapolation,
            "curve_columns": ["step", "cpu_seconds", "loss", "accuracy"], "curve": curve}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=list(TASKS), default="selective_copy")
    p.add_argument("--model", choices=["mamba", "s4d"], default="mamba")
    p.add_argument("--stages", default=None, help="training length:steps per stage, e.g. 64:2000,256:500 "
                   "(default: the task's RECIPES entry)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--n-triggers", type=int, default=None, help="induction: trigger + answer pairs per "
                   "training sequence (evaluation: always 1; default: 4, RECIPES)")
    p.add_argument("--n-data", type=int, default=16, help="selective copy: data tokens per sequence")
    p.add_argument("--d-state", type=int, default=None)
    p.add_argument("--eval-length", type=int, default=256)
    p.add_argument("--eval-every", type=int, default=None, help="default: the task's RECIPES entry")
    p.add_argument("--extrapolate", default="", help="after training, the accuracy at these longer lengths, "
                   "e.g. 512,1024,4096")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log", default=None, help="write the run (settings and curve) here as JSON")
    args = p.parse_args(argv)
    for name, value in RECIPES[args.task].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    tinyml.set_num_threads(args.threads)
    result = train(args.task, args.model, parse_stages(args.stages), args.batch, args.lr, args.warmup,
                   args.n_triggers, args.n_data, args.d_state, args.eval_length, args.eval_every,
                   seed=args.seed, extrapolate=[int(v) for v in args.extrapolate.split(",") if v])
    print(f"final: {args.task} {args.model} ({result['parameters']} parameters) held-out accuracy "
          f"{result['accuracy']:.3f} at length {args.eval_length} after {result['curve'][-1][0]} steps, "
          f"{result['cpu_seconds'] / 60:.1f} CPU minutes")
    if args.log:
        with open(args.log, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
