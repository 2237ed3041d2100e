"""The generator's training budget chosen by a rule stated before any test result is seen.

    chosen = choose_steps((100, 200, 400, 800), train_one, accuracy, target=0.675)
    chosen.steps, chosen.model, chosen.table      # {steps: greedy accuracy on the validation problems}

Each candidate step count trains its own generator (its own warmup-cosine schedule to that step
count, as `--generator-steps N` alone would) and is measured by greedy accuracy on validation
problems: problems from the test side of the split that are neither test, training nor verifier
questions. The rule:

    chosen = argmin over candidates k of |accuracy_val(k) - target|   (ties: the fewer steps)

so a generator is picked whose greedy accuracy leaves room for best-of-N (Liu et al.'s 1.3B
generator is about 68% greedy on GSM8K), without looking at the test problems or the verifier.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence


@dataclass
class ChosenBudget:
    steps: int
    model: object
    summary: dict  # the chosen generator's training summary
    table: dict[int, float] = field(default_factory=dict)  # candidate steps -> validation greedy accuracy


def choose_steps(candidates: Sequence[int], train_one: Callable[[int], tuple[object, dict]],
                 accuracy: Callable[[object], float], target: float, log=print) -> ChosenBudget:
    """Train every candidate (train_one(steps) -> (model, summary)), measure accuracy(model) on the
    validation problems, and keep the one nearest `target` (ties: fewer steps)."""
    steps = sorted(set(int(k) for k in candidates))
    if not steps or steps[0] < 1 or not 0.0 < target < 1.0:
        raise ValueError(f"choose_steps: need candidate step counts >= 1 (got {list(candidates)}) and a "
                         f"target accuracy in (0, 1) (got {target})")
    best: ChosenBudget | None = None
    table: dict[int, float] = {}
    for k in steps:
        model, summary = train_one(k)
        table[k] = float(accuracy(model))
        log(f"tinygsm: generator budget {k} steps: greedy accuracy {table[k]:.1%} on the validation problems")
        if best is None or abs(table[k] - target) < abs(table[best.steps] - target):
            best = ChosenBudget(k, model, summary)
    best.table = table
    log(f"tinygsm: chosen generator budget {best.steps} steps (validation greedy {table[best.steps]:.1%}, "
        f"nearest the target {target:.1%})")
    return best
