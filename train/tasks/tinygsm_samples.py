"""TinyGSM's sampled data: the verifier's training rows and the held-out samples, executed in the
sandbox, and kept in the run folder so that `--resume` retrains a verifier without sampling and
executing again.

    v = verifier_data(run, generator, tok, verifier_problems, contrast_problems, max_new, steps)
    v["samples"], v["correct"], v["contrast"]          # P lists of codes, (P, S) bools, (problem, code, y)
    h = heldout_samples(run, generator, tok, test, max_new, steps)
    h["greedy_correct"], h["sampled"], h["answers"], h["correct"]

With run.out, each is saved as verifier_data.json / heldout_samples.json together with the
settings it depends on (`key`: split, sizes, generator shape and steps, temperatures, seed); with
run.resume a saved file whose key equals this run's is loaded instead of sampled again. The
executed answers come back from JSON (a tuple answer as a list, which only regroups majority votes
among equal answers the same way).
"""
from __future__ import annotations

import json
import os

import numpy as np

from .tinygsm_model import execute, execute_many, same_answer, sample_solutions
from .tinygsm_verifier import contrast_set, perturbed_solutions, slot_negatives

_GENERATOR_FIELDS = ("split", "train_problems", "test_problems", "vocab_size", "n_layer", "n_head", "n_embd",
                     "batch_size", "lr", "seed")


def label_samples(problems, samples: list[list[str]], workers: int):
    """Execute every distinct program: (answers (P lists), correct (P, S) bool)."""
    answers_of = execute([c for row in samples for c in row], workers=workers)
    answers = [[answers_of[c] for c in row] for row in samples]
    correct = np.array([[same_answer(a, p.answer) for a in row] for p, row in zip(problems, answers)])
    return answers, correct


def contrast_rows(run, problems, rng) -> list[tuple]:
    """(problem, code, right?) for each contrast problem's gold solution, miscopied copies and
    (run.slot_negatives) copies with a number in the wrong slot."""
    if not problems:
        return []
    problems, codes = contrast_set(problems, run.hard_negatives, rng)
    if getattr(run, "slot_negatives", 0):  # their own stream: the miscopies stay those of earlier runs
        slot_rng = np.random.default_rng(run.seed + 8)
        codes = [row + slot_negatives(p, run.slot_negatives, slot_rng) for p, row in zip(problems, codes)]
    answers = execute_many([c for row in codes for c in row], workers=run.workers)
    return [(p, c, float(same_answer(answers[c], p.answer))) for p, row in zip(problems, codes) for c in row]


def _new_fields(run, fields: tuple) -> tuple:
    """The settings added since the first saved files, named in a key only when not at their
    defaults, so that files saved before them keep matching: `fields` when set, top_p < 1 and
    solution_styles other than 1."""
    styles = ("solution_styles",) if getattr(run, "solution_styles", 1) != 1 else ()
    return tuple(f for f in fields if getattr(run, f)) + (("top_p",) if run.top_p < 1 else ()) + styles


def _key(run, generator_steps: int, fields: tuple) -> dict:
    return {"generator_steps": int(generator_steps),
            **{f: getattr(run, f) for f in _GENERATOR_FIELDS + fields}}


def _cached(run, name: str, key: dict, compute):
    """compute() -> a JSON-able dict, or the one saved as out/name under the same key (on resume)."""
    path = os.path.join(run.out, name) if run.out else None
    key = json.loads(json.dumps(key))  # tuples as lists, as they come back from the file
    if path and run.resume and os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved.get("key") == key:
            run.log(f"tinygsm: {name} reused (same settings)")
            return saved["value"]
        run.log(f"tinygsm: {name} has other settings; sampling again")
    value = compute()
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump({"key": key, "value": value}, f, default=repr)
        os.replace(path + ".tmp", path)
    return value


def verifier_data(run, generator, tok, problems, contrast_problems, max_new: int,
                  generator_steps: int, others: dict | None = None) -> dict:
    """run.verifier_samples generator samples per verifier problem (+ run.hard_negatives miscopied gold
    solutions, + run.slot_negatives gold solutions with a number in the wrong slot), labelled by
    execution, and the contrast rows: {samples, correct (P, S), contrast}. `others` ({steps: model},
    run.verifier_checkpoints' generators): problem i is sampled by the i-th of [generator, *others]
    in turn, so the verifier sees the errors of generators at several stages (as Liu et al. train
    theirs on samples of several generator checkpoints)."""
    models = [generator] + [m for _, m in sorted((others or {}).items())]

    def compute() -> dict:
        rng = np.random.default_rng(run.seed + 5)
        samples: list = [None] * len(problems)
        for j, model in enumerate(models):
            idx = list(range(j, len(problems), len(models)))
            rows = sample_solutions(model, tok, [problems[i] for i in idx], run.verifier_samples,
                                    run.verifier_temperature, max_new, seed=run.seed + 3 + 1000 * j,
                                    top_p=run.top_p)
            for i, row in zip(idx, rows):
                samples[i] = row
        if run.hard_negatives:
            samples = [row + perturbed_solutions(p, run.hard_negatives, rng)
                       for p, row in zip(problems, samples)]
        if run.slot_negatives:  # padded to a fixed count per problem (a repeat when fewer are possible)
            slot_rng = np.random.default_rng(run.seed + 6)
            samples = [row + _padded(slot_negatives(p, run.slot_negatives, slot_rng), run.slot_negatives,
                                     p.solution) for p, row in zip(problems, samples)]
        _, correct = label_samples(problems, samples, run.workers)
        index = {p.question: i for i, p in enumerate(contrast_problems)}
        rows = [[index[p.question], c, y] for p, c, y in contrast_rows(run, contrast_problems, rng)]
        return {"samples": samples, "correct": correct.tolist(), "contrast": rows}

    fields = ("verifier_problems", "verifier_samples", "hard_negatives", "verifier_from", "contrast_problems",
              "verifier_temperature") + _new_fields(run, ("verifier_checkpoints", "slot_negatives"))
    value = _cached(run, "verifier_data.json", _key(run, generator_steps, fields), compute)
    contrast = [(contrast_problems[i], c, float(y)) for i, c, y in value["contrast"]]
    return {"samples": value["samples"], "correct": np.array(value["correct"], dtype=bool).reshape(
        len(problems), -1), "contrast": contrast}


def _padded(codes: list[str], k: int, fallback: str) -> list[str]:
    """codes repeated (or `fallback` when there is none) to exactly k entries."""
    return [(codes or [fallback])[i % max(1, len(codes))] for i in range(k)]


def heldout_samples(run, generator, tok, test, max_new: int, generator_steps: int) -> dict:
    """The greedy solution and run.samples sampled ones per test problem, executed: {greedy,
    greedy_correct (P, 1), sampled, answers, correct (P, S)}."""
    def compute() -> dict:
        greedy = sample_solutions(generator, tok, test, 1, 0.0, max_new, seed=run.seed)
        sampled = sample_solutions(generator, tok, test, run.samples, run.temperature, max_new,
                                   seed=run.seed + 4, top_p=run.top_p)
        _, greedy_correct = label_samples(test, greedy, run.workers)
        answers, correct = label_samples(test, sampled, run.workers)
        return {"greedy": greedy, "greedy_correct": greedy_correct.tolist(), "sampled": sampled,
                "answers": answers, "correct": correct.tolist()}

    key = _key(run, generator_steps, ("samples", "temperature") + _new_fields(run, ()))
    value = _cached(run, "heldout_samples.json", key, compute)
    return {**value, "greedy_correct": np.array(value["greedy_correct"], dtype=bool).reshape(len(test), 1),
            "correct": np.array(value["correct"], dtype=bool).reshape(len(test), -1)}
