"""Choosing one of N sampled solutions per problem, and accuracy against N (TinyGSM's best-of-N).

    curves = selection_curves(correct, keys, scores, ns=(1, 2, 4, 8, 16), repeats=20, seed=0)
    curves["verifier"][16]     # held-out accuracy of the verifier's pick among 16 samples
    per = selection_per_problem(correct, keys, scores, ns=(16,))   # the same, per problem: (P,) each

For each N, every problem's N candidates are a random subset of its S >= N samples (`repeats`
draws, averaged: an unbiased estimate of the expected accuracy with N samples). Methods:

    first     the first candidate (plain sampling, one try)
    majority  the most frequent executed answer among the candidates (failed runs do not vote;
              ties go to the answer reached first); right when that answer is gold
    verifier  the candidate with the highest verifier score
    oracle    any candidate right (pass@N: the ceiling every selector is under)

`number_rule_scores` is a reference selector, not a model: 1 for a program whose every number
literal (but 0, 1 and 100, which solutions write on their own) occurs in the question, else 0;
as `scores` of selection_curves its "verifier" curve is what a perfect check of miscopied numbers
picks (a random one of the programs that pass; ties fall to the random order of the draw).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

METHODS = ("first", "majority", "verifier", "oracle")
_LITERAL = re.compile(r"(?<![\w.])\d+(?![\w.])")
_OWN_NUMBERS = {"0", "1", "100"}  # written by the solutions themselves (a base case, a percent)


def number_rule_scores(questions: Sequence[str], codes: Sequence[Sequence[str]]) -> np.ndarray:
    """(P, S) float: 1.0 where every number literal of the code (but 0, 1, 100) is in the question."""
    out = np.zeros((len(codes), max((len(r) for r in codes), default=0)))
    for p, (question, row) in enumerate(zip(questions, codes)):
        given = set(re.findall(r"\d+", question))
        for s, code in enumerate(row):
            out[p, s] = float(set(_LITERAL.findall(code)) - _OWN_NUMBERS <= given)
    return out


def answer_key(answer) -> object:
    """A hashable key under which equal answers vote together (numbers to 6 decimals); None: no vote."""
    if answer is None:
        return None
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return round(float(answer), 6)
    return repr(answer)


def _majority(keys: Sequence, correct: np.ndarray) -> bool:
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return False
    best = max(votes.values())
    winner = next(k for k in keys if k is not None and votes[k] == best)  # ties: reached first
    return bool(correct[keys.index(winner)])


def selection_curves(correct: np.ndarray, keys: Sequence[Sequence], scores: np.ndarray,
                     ns: Sequence[int], repeats: int = 20, seed: int = 0) -> dict[str, dict[int, float]]:
    """{method: {N: mean accuracy}} from correct (P, S) bools, keys (P lists of S answer keys) and
    verifier scores (P, S)."""
    per = selection_per_problem(correct, keys, scores, ns, repeats, seed)
    return {m: {n: float(a.mean()) if a.size else 0.0 for n, a in c.items()} for m, c in per.items()}


def selection_per_problem(correct: np.ndarray, keys: Sequence[Sequence], scores: np.ndarray,
                          ns: Sequence[int], repeats: int = 20,
                          seed: int = 0) -> dict[str, dict[int, np.ndarray]]:
    """{method: {N: (P,) float}}: each problem's accuracy averaged over the `repeats` draws of N of
    its samples (selection_curves' means, with the same draws; their spread over problems gives
    standard errors, tinygsm_fresh.mean_se)."""
    correct = np.asarray(correct, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if correct.ndim != 2 or scores.shape != correct.shape or len(keys) != correct.shape[0]:
        raise ValueError(f"selection_curves: correct and scores must be (P, S) and keys P lists, got "
                         f"{correct.shape}, {scores.shape} and {len(keys)}")
    P, S = correct.shape
    bad = [n for n in ns if not 1 <= n <= S]
    if bad or repeats < 1:
        raise ValueError(f"selection_curves: every N must be in 1..{S} (the samples per problem), got {bad}; "
                         f"repeats >= 1, got {repeats}")
    rng = np.random.default_rng(seed)
    out: dict[str, dict[int, np.ndarray]] = {m: {} for m in METHODS}
    for n in ns:
        hits = {m: np.zeros(P) for m in METHODS}
        draws = 1 if n == S else repeats  # every subset of size S is the whole pool
        for _ in range(draws):
            for p in range(P):
                sub = rng.permutation(S)[:n]
                hits["first"][p] += correct[p, sub[0]]
                hits["majority"][p] += _majority([keys[p][i] for i in sub], correct[p, sub])
                hits["verifier"][p] += correct[p, sub[int(np.argmax(scores[p, sub]))]]
                hits["oracle"][p] += correct[p, sub].any()
        for m in METHODS:
            out[m][n] = hits[m] / draws
    return out
