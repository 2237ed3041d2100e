"""The settings of a TinyGSM run (`tinyml tinygsm`), their checks, and its problem sets.

    run = TinyGSMRun(split="instance", out="runs/gsm"); check_run(run)
    sets = make_problems(run)     # train, verifier, test, contrast, validation: no question in two

The fields are those of `tinyml tinygsm` (train/commands/tinygsm.py documents each option);
tinygsm_run.py runs the stages.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

from ..trainer import CHECKPOINT
from . import tinygsm as gsm
from .tinygsm_styles import style_count
from .tinygsm_verifier import REDUCTIONS


class ProblemSets(NamedTuple):
    train: list
    verifier: list
    test: list
    contrast: list
    validation: list


@dataclass
class TinyGSMRun:
    split: str = "numbers"  # how the test problems are held out: one of tinygsm.SPLITS
    train_problems: int = 3000
    test_problems: int = 200
    verifier_problems: int = 1200
    verifier_samples: int = 8
    hard_negatives: int = 4  # per verifier problem: its gold solution with a number miscopied
    # the verifier's trunk starts from: "generator" (this run's), "random" (fresh weights) or the path
    # of another generator checkpoint of the same shape and tokenizer (e.g. a longer budget candidate)
    verifier_init: str = "generator"
    verifier_from: str = "all"  # the verifier problems' side of the split: "all" (both) or "train"
    contrast_problems: int = 3000  # further problems: gold + hard_negatives miscopied copies each
    verifier_lm: float = 1.0  # weight of the language-modelling loss on the right solutions
    verifier_score: str = "min"  # per-token scores -> one: "last", "min", "mean"; "lm": log-likelihood
    verifier_number_tokens: int = 0  # > 0: the verifier reads numbers below this as one token each
    verifier_checkpoints: tuple = ()  # budget candidates (steps) that sample verifier problems too
    pick_runnable: bool = False  # the verifier's pick only among samples whose program ran
    slot_negatives: int = 0  # per verifier / contrast problem: gold with a number in the wrong slot
    vocab_size: int = 768
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 96
    steps: int = 800  # generator steps
    steps_candidates: tuple = ()  # if given: choose the generator's steps among these (tinygsm_budget.py)
    target_greedy: float = 0.675  # ... by validation greedy accuracy nearest this
    validation_problems: int = 200
    batch_size: int = 32
    lr: float = 2e-3
    verifier_steps: int = 1500
    verifier_lr: float = 1e-3
    samples: int = 48
    ns: tuple = (1, 2, 4, 8, 16, 32, 48)
    temperature: float = 0.8
    top_p: float = 1.0  # < 1: held-out and verifier samples from the nucleus of this mass
    verifier_temperature: float = 1.0
    repeats: int = 20
    eval_interval: int = 200
    workers: int = 4
    seed: int = 0
    # solutions in one of each template's first N styles ("all": every one; tinygsm_styles.py); 1, the
    # default, is the template's own solution, the data of every earlier run
    solution_styles: object = 1
    out: str | None = None
    resume: bool = False  # continue (or reuse, when finished) the generator and verifier checkpoints in out
    progress: bool = True
    log: object = field(default=print, repr=False)


def check_run(run: TinyGSMRun) -> None:
    ns_ok = all(1 <= n <= run.samples for n in run.ns) and len(run.ns) > 0
    if not ns_ok or run.temperature <= 0 or run.verifier_temperature <= 0 or run.verifier_samples < 2:
        raise ValueError(f"tinygsm: every N must be in 1..samples={run.samples} (got {list(run.ns)}), the "
                         f"temperatures > 0 (got {run.temperature}, {run.verifier_temperature}) and "
                         f"verifier_samples >= 2 (got {run.verifier_samples})")
    start = run.verifier_init
    if start not in ("generator", "random") and not os.path.exists(_checkpoint(start)):
        raise ValueError(f"tinygsm: verifier_init must be 'generator', 'random' or a generator checkpoint "
                         f"(file or run folder), got {start!r}: no {_checkpoint(start)}")
    if run.verifier_from not in ("all", "train") or run.verifier_score not in REDUCTIONS:
        raise ValueError(f"tinygsm: verifier_from must be 'all' or 'train' (got {run.verifier_from!r}) "
                         f"and verifier_score one of {', '.join(REDUCTIONS)} (got {run.verifier_score!r})")
    if run.split not in gsm.SPLITS:
        raise ValueError(f"tinygsm: split must be one of {', '.join(gsm.SPLITS)}, got {run.split!r}")
    if any(k < 1 for k in run.steps_candidates) or run.steps < 1 or not 0 < run.target_greedy < 1:
        raise ValueError(f"tinygsm: generator steps must be >= 1 (got {run.steps} and candidates "
                         f"{list(run.steps_candidates)}) and target_greedy in (0, 1) "
                         f"(got {run.target_greedy})")
    if run.verifier_number_tokens and run.verifier_number_tokens < 10:
        raise ValueError(f"tinygsm: verifier_number_tokens must be 0 (off) or >= 10, got "
                         f"{run.verifier_number_tokens}")
    if not 0 < run.top_p <= 1:
        raise ValueError(f"tinygsm: top_p must be in (0, 1], got {run.top_p}")
    if run.slot_negatives < 0 or any(k < 1 for k in run.verifier_checkpoints):
        raise ValueError(f"tinygsm: slot_negatives must be >= 0 (got {run.slot_negatives}) and "
                         f"verifier_checkpoints step counts >= 1 (got {list(run.verifier_checkpoints)})")
    if not set(run.verifier_checkpoints) <= set(run.steps_candidates):
        raise ValueError(f"tinygsm: verifier_checkpoints {list(run.verifier_checkpoints)} must be budget "
                         f"candidates of this run (steps_candidates {list(run.steps_candidates)})")
    if run.validation_problems < 1:
        raise ValueError(f"tinygsm: validation_problems must be >= 1, got {run.validation_problems}")
    if run.verifier_lm < 0 or run.contrast_problems < 0 or run.hard_negatives < 0:
        raise ValueError(f"tinygsm: verifier_lm, contrast_problems and hard_negatives must be >= 0, got "
                         f"{run.verifier_lm}, {run.contrast_problems}, {run.hard_negatives}")
    if run.contrast_problems and not run.hard_negatives:
        raise ValueError(f"tinygsm: contrast_problems={run.contrast_problems} needs hard_negatives >= 1")
    style_count(run.solution_styles)  # a ValueError naming the value
    if run.n_embd % run.n_head:
        raise ValueError(f"tinygsm: n_embd {run.n_embd} must be divisible by n_head {run.n_head}")


def make_problems(run: TinyGSMRun) -> ProblemSets:
    """Training, verifier, test, contrast and validation problems with gold answers: no question is
    in two of the sets. The test and validation problems come from the test side of run.split, the
    verifier and contrast ones from both sides (verifier_from="all") or the training side. Every
    solution is in one of run.solution_styles' styles (the questions are the same whatever it is)."""
    styles = run.solution_styles  # the solutions' styles only: the questions do not depend on it
    train, test = gsm.split(run.train_problems, run.test_problems, by=run.split, seed=run.seed, styles=styles)
    seen = {p.question for p in train} | {p.question for p in test}
    side = gsm.distribution(run.split, "all" if run.verifier_from == "all" else "train")
    verifier = gsm.draw_new(run.verifier_problems, run.seed + 2, seen, styles=styles, **side)
    seen |= {p.question for p in verifier}
    contrast = gsm.draw_new(run.contrast_problems, run.seed + 7, seen, styles=styles, **side)
    seen |= {p.question for p in contrast}
    validation = gsm.draw_new(run.validation_problems, run.seed + 11, seen, styles=styles,
                              **gsm.distribution(run.split, "test"))
    return ProblemSets(*(gsm.attach_gold(ps) if ps else [] for ps in (train, verifier, test, contrast,
                                                                      validation)))


def _checkpoint(path: str) -> str:
    """A checkpoint file, or the one in a run folder."""
    return os.path.join(path, CHECKPOINT) if os.path.isdir(path) else path
