"""The choices of docs/tinygsm.md's "Regime 2 with a likelihood verifier", made on VALIDATION problems
only (200 problems from the test side that are neither test, training nor verifier questions; no
test problem is sampled, executed or scored here).

    # 1. held-out sampling settings: oracle@16 of the chosen generator on the validation problems
    python examples/tinygsm/choose_on_validation.py sampling RUN 0.5/1.0 0.6/1.0 0.8/1.0 0.8/0.9 1.0/0.9
    # 2. the verifier's score: its best-of-16 on those validation samples, for every reduction
    python examples/tinygsm/choose_on_validation.py scores RUN RUN/val_T0.8_p0.9.json

RUN is a `tinyml tinygsm --split instance --generator-steps 200,...,800` folder (its generator/,
generator_<k>steps/ and, for `scores`, a finished verifier/ trained with the settings given by
--settings, a JSON dict of TinyGSMRun fields). Each setting prints one line; the rule that picks
one (highest oracle@16, then highest best-of-16; ties to the simpler) is applied by the reader and
recorded in the doc.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
from tinyml.train.tasks.tinygsm_fresh import context
from tinyml.train.tasks.tinygsm_model import sample_solutions
from tinyml.train.tasks.tinygsm_run import (
    TinyGSMRun,
    load_generator,
    train_verifier,
)
from tinyml.train.tasks.tinygsm_samples import label_samples
from tinyml.train.tasks.tinygsm_select import answer_key, number_rule_scores, selection_curves
from tinyml.train.tasks.tinygsm_verifier import REDUCTIONS, log_likelihood, score

SETTINGS = dict(split="instance", resume=True, verifier_temperature=0.8, top_p=0.9,
                verifier_checkpoints=(400, 600, 700, 800), slot_negatives=3, steps=500)


def setup(out: str, settings: dict):
    run = TinyGSMRun(**{**SETTINGS, **settings, "out": out})
    c = context(run)  # the run's problem sets, tokenizer, config and sampling length
    return c.run, c.sets, c.tok, c.config, c.max_new


def sampling(out: str, specs: list[str], settings: dict, n: int = 16) -> None:
    run, sets, tok, config, max_new = setup(out, settings)
    generator, val = load_generator(run, config, run.steps), sets.validation
    for spec in specs:
        temperature, top_p = (float(x) for x in spec.split("/"))
        codes = sample_solutions(generator, tok, val, n, temperature, max_new, seed=99, top_p=top_p)
        answers, correct = label_samples(val, codes, run.workers)
        keys = [[answer_key(a) for a in row] for row in answers]
        rule = number_rule_scores([p.question for p in val], codes)
        c = selection_curves(correct, keys, rule, (n,), 10)
        print(f"T={temperature} top_p={top_p}: one sample {correct.mean():.3f}, "
              f"oracle@{n} {c['oracle'][n]:.3f}, majority {c['majority'][n]:.3f}, "
              f"number rule {c['verifier'][n]:.3f}", flush=True)
        with open(os.path.join(out, f"val_T{temperature}_p{top_p}.json"), "w") as f:
            json.dump({"samples": codes, "correct": correct.tolist(), "keys": keys}, f, default=repr)


def scores(out: str, samples_file: str, settings: dict, n: int = 16) -> None:
    run, sets, tok, config, max_new = setup(out, settings)
    generator, val = load_generator(run, config, run.steps), sets.validation
    with open(samples_file) as f:
        d = json.load(f)
    codes, correct, keys = d["samples"], np.array(d["correct"], dtype=bool), d["keys"]
    # the finished verifier/ of the run is only loaded (train_verifier resumes a finished stage)
    verifier, vtok, _ = train_verifier(run, tok, generator, sets.verifier, [["x"] * 2] * len(sets.verifier),
                                       np.zeros((len(sets.verifier), 2), dtype=bool), "cpu")
    pairs = list(dict.fromkeys((i, c) for i, row in enumerate(codes) for c in row))
    probs, texts = [val[i] for i, _ in pairs], [c for _, c in pairs]
    table = {f"verifier {r}": score(verifier, vtok, probs, texts, reduce=r) for r in REDUCTIONS}
    for k in (700, 800):
        candidate = load_generator(run, config, k)
        table[f"generator_{k}steps likelihood"] = log_likelihood(candidate, tok, probs, texts)
    ran = np.array([[k is not None for k in row] for row in keys])
    for name, values in table.items():
        of = dict(zip(pairs, values))
        s = np.array([[of[(i, c)] for c in row] for i, row in enumerate(codes)])
        for runnable in (False, True):
            c = selection_curves(correct, keys, np.where(ran, s, -1e300) if runnable else s, (4, n), 10)
            print(f"{name}{', runnable only' if runnable else ''}: best-of-4 {c['verifier'][4]:.3f}, "
                  f"best-of-{n} {c['verifier'][n]:.3f} (oracle {c['oracle'][n]:.3f})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("sampling", "scores"))
    p.add_argument("out")
    p.add_argument("rest", nargs="+")
    p.add_argument("--settings", type=json.loads, default={})
    a = p.parse_args()
    if a.what == "sampling":
        sampling(a.out, a.rest, a.settings)
    else:
        scores(a.out, a.rest[0], a.settings)


if __name__ == "__main__":
    main()
