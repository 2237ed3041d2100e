"""Session 11's readings (docs/tinygsm.md, "Session 11"): sampling settings chosen by a fixed rule on
VALIDATION problems only, then one reading on FRESH test-side problems never used for any choice.

    # 1. the choice: every setting's best-of-16 on 600 validation problems (the run's 200 + 400 more);
    #    the rule (train/tasks/tinygsm_fresh.py: CHOICE_RULE) is applied here and written to RUN/choice.json
    python examples/tinygsm/fresh_test.py choose RUN --settings '{"split": "numbers", "steps": 800}' \
        --grid 0.6/0.9 0.8/0.9 1.0/0.9 1.2/0.9 0.8/1.0 1.0/1.0 0.6/0.9+1.2/0.9
    # 2. the reading: greedy and 48 samples per fresh problem at the chosen setting, N = 1..48, with
    #    standard errors, to RUN/fresh_test.json and RUN/fresh_test.png (--generator: another one)
    python examples/tinygsm/fresh_test.py test RUN --settings '{"split": "numbers", "steps": 800}'
    # a second generator seed: the same problems and tokenizer, another initialisation and batch
    # order, in RUN/generator_<k>steps_seed<S>/; with several --candidates the budget rule picks one
    # on validation (then: test ... --generator RUN/generator_<k>steps_seed<S> --tag _seed<S>)
    python examples/tinygsm/fresh_test.py generator RUN --seed 1 \
        --settings '{"split": "numbers", "steps": 800}'
    # session 13: a generator trained on several solution styles per template (--settings
    # '{..., "solution_styles": "all"}'), read on fresh round 2 (--fresh-round 2: none of the
    # problems session 11 read); `candidates` trains the budget candidates before `tinyml tinygsm`
    python examples/tinygsm/fresh_test.py candidates RUN --candidates 800 2000 \
        --settings '{"split": "numbers", "solution_styles": "all"}'

RUN is a finished `tinyml tinygsm` folder (its generator_<steps>steps/ and verifier/, trained with
the settings given by --settings, a JSON dict of TinyGSMRun fields; verifier_score "lm" by default).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

from tinyml.models import GPT
from tinyml.train.checkpoint import load_checkpoint
from tinyml.train.tasks.tinygsm_budget import choose_steps
from tinyml.train.tasks.tinygsm_fresh import (
    CHOICE_RULE,
    choose_setting,
    compare_settings,
    context,
    evaluate,
    extra_problems,
    load_verifier,
)
from tinyml.train.tasks.tinygsm_model import sample_solutions
from tinyml.train.tasks.tinygsm_report import plot_fresh
from tinyml.train.tasks.tinygsm_run import TinyGSMRun, load_generator, train_generator
from tinyml.train.tasks.tinygsm_samples import label_samples
from tinyml.train.tasks.tinygsm_spec import _checkpoint

import tinyml

DEFAULTS = dict(verifier_score="lm", resume=True, progress=False)


def models(ctx, out: str, generator_path: str | None):
    if generator_path:
        generator = GPT(ctx.config)
        generator.load_state_dict(load_checkpoint(_checkpoint(generator_path))["model"])
    else:
        generator = load_generator(ctx.run, ctx.config, ctx.run.steps)
    return generator, load_verifier(ctx.run, ctx.config, os.path.join(out, "verifier"))


def second_seed(ctx, out: str, seed: int, candidates: list[int]) -> None:
    """Generators of the run's recipe with another seed (initialisation and batch order; the same
    problems and tokenizer), one per candidate step count, in out/generator_<k>steps_seed<S>/; the
    budget rule (tinygsm_budget.choose_steps: validation greedy nearest run.target_greedy) picks one,
    recorded in out/generator_seed<S>.json. Validation problems only."""
    run = replace(ctx.run, seed=seed)

    def train_one(k: int):
        tinyml.manual_seed(seed)
        return train_generator(run, ctx.tok, ctx.sets.train, ctx.sets.validation, ctx.config.block_size,
                               "cpu", steps=k, folder=f"generator_{k}steps_seed{seed}")

    def accuracy(model) -> float:
        greedy = sample_solutions(model, ctx.tok, ctx.sets.validation, 1, 0.0, ctx.max_new, seed=ctx.run.seed)
        return float(label_samples(ctx.sets.validation, greedy, run.workers)[1].mean())

    chosen = choose_steps(candidates, train_one, accuracy, run.target_greedy)
    with open(os.path.join(out, f"generator_seed{seed}.json"), "w") as f:
        json.dump({"seed": seed, "steps": chosen.steps, "validation_greedy": chosen.table}, f, indent=1)


def candidates(ctx, out: str, steps: list[int]) -> None:
    """The run's budget candidates in out/generator_<k>steps/ (and out/tokenizer.json), each trained
    from tinyml.manual_seed(run.seed) (so a candidate's weights depend on the seed and k only,
    whichever others are trained with it), so that `tinyml tinygsm --generator-steps ...
    --verifier-init out/generator_<k>steps --resume` can name one and finds the others trained
    (session 10's regime-1 recipe). A finished candidate is only loaded. No validation or test
    answer is read."""
    os.makedirs(out, exist_ok=True)
    ctx.tok.save(os.path.join(out, "tokenizer.json"))
    for k in sorted(set(steps)):
        tinyml.manual_seed(ctx.run.seed)
        train_generator(ctx.run, ctx.tok, ctx.sets.train, ctx.sets.validation, ctx.config.block_size, "cpu",
                        steps=k, folder=f"generator_{k}steps")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("candidates", "choose", "test", "generator"))
    p.add_argument("out")
    p.add_argument("--settings", type=json.loads, default={})
    p.add_argument("--grid", nargs="+", default=["0.8/0.9"])
    p.add_argument("--extra-validation", type=int, default=400)
    p.add_argument("--fresh", type=int, default=600)
    p.add_argument("--samples", type=int, default=48)
    p.add_argument("--generator", default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="")
    p.add_argument("--candidates", type=int, nargs="+", default=None)
    p.add_argument("--fresh-round", type=int, default=1,
                   help="which fresh test set: 1 = session 11's (seed + 202), 2 = session 13's (seed + 303, "
                        "none of round 1's); tinygsm_fresh.extra_problems")
    a = p.parse_args()
    ctx = context(TinyGSMRun(**{**DEFAULTS, **a.settings, "out": a.out}))
    t0 = time.perf_counter()
    if a.what == "candidates":  # the budget stage's generators, trained before `tinyml tinygsm` runs
        candidates(ctx, a.out, a.candidates or [ctx.run.steps])
        print(f"candidates {a.candidates}: {time.perf_counter() - t0:.0f}s")
        return
    if a.what == "generator":
        second_seed(ctx, a.out, a.seed, a.candidates or [ctx.run.steps])
        print(f"generator seed {a.seed}: {time.perf_counter() - t0:.0f}s")
        return
    extra_val, fresh = extra_problems(ctx.run, ctx.sets, a.extra_validation, a.fresh, a.fresh_round)
    generator, verifier = models(ctx, a.out, a.generator)
    if a.what == "choose":  # validation problems only
        val = ctx.sets.validation + extra_val
        table = compare_settings(ctx, generator, verifier, val, a.grid)
        chosen = choose_setting(table)
        print(f"chosen: {chosen} ({CHOICE_RULE}); {len(val)} validation problems, "
              f"{time.perf_counter() - t0:.0f}s")
        greedy = sample_solutions(generator, ctx.tok, val, 1, 0.0, ctx.max_new, seed=ctx.run.seed)
        g = float(label_samples(val, greedy, ctx.run.workers)[1].mean())  # context only: not in the rule
        print(f"greedy on the validation problems: {g:.1%}")
        record = {"rule": CHOICE_RULE, "chosen": chosen, "validation_problems": len(val), "table": table,
                  "validation_greedy": g}
        with open(os.path.join(a.out, f"choice{a.tag}.json"), "w") as f:
            json.dump(record, f, indent=1)
        return
    with open(os.path.join(a.out, "choice.json")) as f:  # the setting was fixed before this reading
        chosen = json.load(f)["chosen"]
    reading = evaluate(ctx, generator, verifier, fresh, chosen, samples=a.samples,
                       ns=tuple(range(1, a.samples + 1)))
    reading["seconds"] = time.perf_counter() - t0
    reading["generator"] = a.generator or f"generator_{ctx.run.steps}steps"
    reading["fresh_round"] = a.fresh_round
    name = f"fresh_test{a.tag}"
    with open(os.path.join(a.out, name + ".json"), "w") as f:
        json.dump(reading, f, indent=1)
    plot_fresh(reading, os.path.join(a.out, name + ".png"),
               title=f"TinyGSM (toy), {ctx.run.split} split: {len(fresh)} fresh test problems")
    c, g = reading["curves"], reading["greedy"]
    print(f"{len(fresh)} fresh problems, setting {chosen}: greedy {g[0]:.1%} +- {g[1]:.1%}; "
          f"{reading['seconds']:.0f}s")
    for n in (1, 2, 4, 8, 16, 32, 48):
        if str(n) in c["verifier"]:
            v, o = c["verifier"][str(n)], c["oracle"][str(n)]
            maj, rule = c["majority"][str(n)]["mean_se"][0], c["number rule"][str(n)]["mean_se"][0]
            print(f"N={n}: verifier {v['mean_se'][0]:.1%} (over greedy {v['over_greedy'][0]:+.1%} +- "
                  f"{v['over_greedy'][1]:.1%}), oracle {o['mean_se'][0]:.1%}, majority {maj:.1%}, "
                  f"number rule {rule:.1%}")


if __name__ == "__main__":
    main()
