"""Mix Distillation on Teaching-Arithmetic data: the same small GPT trained on the same addition
problems with long traces only (detailed scratchpad), short traces only (the plain answer) or a
long:short mix (1:4, train/tasks/mix.py), all after one shared prompt; held-out exact match of the
answer the model writes, long or short (greedy).

    python examples/arithmetic/mix_distillation.py --digits 2 --samples 2000 --steps 400

writes --json after each arm.
"""
from __future__ import annotations

import argparse
import functools
import json
import time

from tinyml.train.tasks import arithmetic as ar
from tinyml.train.tasks import mix
from tinyml.train.tasks.arithmetic_run import ArithmeticRun, train_arithmetic


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--digits", type=int, default=2)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--ratio", default="1:4")
    p.add_argument("--short", choices=["plain", "reverse"], default="plain")
    p.add_argument("--arms", nargs="+", default=["short", "mix", "long"])
    p.add_argument("--test-samples", type=int, default=200)
    p.add_argument("--json", default="examples/arithmetic/results/mix_distillation.json")
    args = p.parse_args()
    spec = ArithmeticRun(fmt="plain", digits=args.digits, samples=args.samples,
                         test_samples=args.test_samples,
                         steps=args.steps, batch_size=args.batch_size, lr=2e-3, n_layer=args.layers, n_head=2,
                         n_embd=args.width, eval_interval=args.steps, progress=False)
    train = ar.make_split(spec.digits, spec.samples, spec.test_samples, seed=spec.seed).train
    long, short = mix.arithmetic_traces(train, args.short)
    data = {"long": long, "short": short, "mix": mix.mix_traces(long, short, args.ratio, seed=spec.seed)}

    def traces(problems):  # the test prompts are the shared ones; the short trace is only a placeholder
        return mix.arithmetic_traces(problems, args.short)[1]

    parse = functools.partial(mix.parse_trace, short_fmt=args.short)
    results = []
    for arm in args.arms:
        t = time.perf_counter()
        r = train_arithmetic(spec, pairs=data[arm], traces=traces, parse=parse)
        results.append({"arm": arm, "ratio": args.ratio if arm == "mix" else None, "accuracy": r["accuracy"],
                        "long_fraction": sum("<scratch>" in c for _, c in data[arm]) / len(data[arm]),
                        "train_seconds": round(r["train_seconds"], 1),
                        "seconds": round(time.perf_counter() - t, 1), "wrong": r["wrong_examples"][:2]})
        print(json.dumps(results[-1]), flush=True)
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
