"""Held-out readings a reviewer can trust: a larger validation set for every choice, fresh test-side
problems for the claim, sampling settings chosen by a fixed rule, and standard errors.

    ctx = context(TinyGSMRun(split="numbers", out="runs/gsm"))      # sets, tokenizer, config, max_new
    extra_val, fresh = extra_problems(ctx.run, ctx.sets, 400, 600)  # disjoint from every other set
    table = compare_settings(ctx, generator, verifier, ctx.sets.validation + extra_val,
                             ["0.8/0.9", "1.0/0.9", "0.6/0.9+1.2/0.9"])
    best = choose_setting(table)                                     # the rule: CHOICE_RULE
    reading = evaluate(ctx, generator, verifier, fresh, best, samples=48, ns=range(1, 49))

Problem sets. `extra_problems` draws from the test side of the split (tinygsm.distribution(split,
"test")), excluding every question of the run's five sets (make_problems) and session 10's 400
further test-side problems (seed 1234, already read once): first `n_validation` further
VALIDATION problems (seed run.seed + 101), then `n_fresh` FRESH TEST problems outside all of those.
`fresh_round` says which fresh set: 1 (session 11's, seed run.seed + 202), 2 (session 13's, seed
run.seed + 303, excluding also the FRESH_READ = 600 problems of round 1, which session 11 read), and
so on (FRESH_SEEDS; round r excludes every question of the first draw, 2 x 600 + 50 problems, of
every earlier round, which holds the 600 read there). Neither the generator nor the verifier ever
sees these sets; the choices (sampling settings) read validation problems only, the fresh test
problems are read once, after. The questions do not depend on run.solution_styles
(tinygsm.generate draws the styles from a stream of their own).

A sampling setting is "T/p" (temperature T, nucleus top-p p) or a mix "T1/p1+T2/p2+..." (the N
samples of a problem shared equally among the settings: one generator, several temperatures).

Standard errors. For a selector, each problem's accuracy a_i is averaged over the random draws of N
of its samples (tinygsm_select.selection_per_problem); the reading is mean(a) and its standard error
std(a, ddof=1) / sqrt(P), the spread over problems (the draws' own noise is inside a_i). The margin
over greedy is paired: mean(a - g) with std(a - g, ddof=1) / sqrt(P), g_i in {0, 1} the greedy hit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from tinyml.models import GPTConfig

from ..checkpoint import load_checkpoint
from . import tinygsm as gsm
from .tinygsm_model import as_pair, sample_solutions, train_tokenizer
from .tinygsm_samples import label_samples
from .tinygsm_select import answer_key, number_rule_scores, selection_per_problem
from .tinygsm_spec import ProblemSets, TinyGSMRun, _checkpoint, make_problems
from .tinygsm_verifier import Verifier, score

VALIDATION_SEED, FRESH_SEED, SESSION10_SEED, SESSION10_EXTRA = 101, 202, 1234, 400
FRESH_SEEDS = (FRESH_SEED, 303)  # seed offsets of fresh rounds 1 (session 11), 2 (session 13)
FRESH_READ = 600  # problems of each earlier round that were read (excluded from later rounds)
CHOICE_RULE = ("the highest verifier best-of-16 on the validation problems (mean over draws); ties to the "
               "higher oracle@16, then to the setting listed first")


@dataclass
class Context:
    run: TinyGSMRun
    sets: ProblemSets
    tok: object
    config: GPTConfig
    max_new: int


def context(run: TinyGSMRun) -> Context:
    """The run's problem sets, its tokenizer (learned again from the training problems, as the run
    did), the models' config and the sampling length, exactly as run_tinygsm makes them."""
    sets = make_problems(run)
    tok = train_tokenizer(sets.train, run.vocab_size)
    block = max(len(tok.encode(a + b)) for a, b in map(as_pair, sets.train + sets.verifier + sets.test)) + 8
    max_new = max(len(tok.encode(p.solution)) for p in sets.train) + 16
    config = GPTConfig(vocab_size=tok.vocab_size, block_size=block, n_layer=run.n_layer, n_head=run.n_head,
                       n_embd=run.n_embd, dropout=0.0)
    return Context(run, sets, tok, config, max_new)


def extra_problems(run: TinyGSMRun, sets: ProblemSets, n_validation: int, n_fresh: int,
                   fresh_round: int = 1) -> tuple[list, list]:
    """(further validation problems, fresh test problems of round `fresh_round`), both from the test
    side of run.split, no question in any other set (the module docstring has the seeds)."""
    if not 1 <= fresh_round <= len(FRESH_SEEDS):
        raise ValueError(f"extra_problems: fresh_round must be in 1..{len(FRESH_SEEDS)}, got {fresh_round}")
    side = {**gsm.distribution(run.split, "test"), "styles": run.solution_styles}
    seen = {p.question for ps in sets for p in ps}
    seen |= {p.question for p in gsm.draw_new(SESSION10_EXTRA, SESSION10_SEED, set(seen), **side)}
    validation = gsm.draw_new(n_validation, run.seed + VALIDATION_SEED, seen, **side)
    seen |= {p.question for p in validation}
    for earlier in FRESH_SEEDS[:fresh_round - 1]:  # the rounds read before: never again (the whole
        # first draw of draw_new, 2 * 600 + 50 problems, which holds the 600 read whatever else was seen)
        seen |= {p.question for p in gsm.generate(2 * FRESH_READ + 50, run.seed + earlier, **side)}
    fresh = gsm.draw_new(n_fresh, run.seed + FRESH_SEEDS[fresh_round - 1], seen, **side)
    return tuple(gsm.attach_gold(ps) if ps else [] for ps in (validation, fresh))


def parse_setting(spec: str) -> list[tuple[float, float]]:
    """"0.8/0.9" -> [(0.8, 0.9)]; "0.6/0.9+1.2/1.0" -> [(0.6, 0.9), (1.2, 1.0)] (a ValueError naming
    the spec when a part is not T/p with T > 0 and p in (0, 1])."""
    parts = []
    for part in spec.split("+"):
        try:
            t, p = (float(x) for x in part.split("/"))
        except ValueError:
            raise ValueError(f"tinygsm: a sampling setting is T/p or T1/p1+T2/p2, got {spec!r}") from None
        if not (t > 0 and 0 < p <= 1):
            raise ValueError(f"tinygsm: setting {spec!r} needs temperature > 0 and top-p in (0, 1], "
                             f"got {t}, {p}")
        parts.append((t, p))
    return parts


def sample_setting(ctx: Context, generator, problems, n: int, spec: str, seed: int) -> list[list[str]]:
    """n samples per problem under `spec`, shared equally among its parts (n must divide)."""
    parts = parse_setting(spec)
    if n % len(parts):
        raise ValueError(f"tinygsm: {n} samples do not share equally among the {len(parts)} parts of "
                         f"{spec!r}")
    rows = [[] for _ in problems]
    for j, (t, p) in enumerate(parts):
        codes = sample_solutions(generator, ctx.tok, problems, n // len(parts), t, ctx.max_new, seed=seed + j,
                                 top_p=p)
        for row, more in zip(rows, codes):
            row.extend(more)
    return rows


def load_verifier(run: TinyGSMRun, config: GPTConfig, path: str) -> Verifier:
    """A finished verifier (a checkpoint file or a verifier/ folder) of this run's shape."""
    verifier = Verifier(config, lm_weight=run.verifier_lm)
    verifier.load_state_dict(load_checkpoint(_checkpoint(path))["model"])
    return verifier


def mean_se(values) -> tuple[float, float]:
    """(mean, standard error of the mean over problems): std(ddof=1) / sqrt(P); 0 for one value."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        raise ValueError("mean_se: no values")
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0


def scored(ctx: Context, verifier, problems, codes) -> np.ndarray:
    """(P, S) verifier scores (ctx.run.verifier_score), each distinct (problem, code) scored once."""
    pairs = list(dict.fromkeys((i, c) for i, row in enumerate(codes) for c in row))
    values = score(verifier, ctx.tok, [problems[i] for i, _ in pairs], [c for _, c in pairs],
                   reduce=ctx.run.verifier_score)
    of = dict(zip(pairs, values))
    return np.array([[of[(i, c)] for c in row] for i, row in enumerate(codes)])


def read_samples(ctx: Context, verifier, problems, codes, ns: Sequence[int], repeats: int, seed: int) -> dict:
    """Execute and score the samples: {method: {N: (P,) accuracy}} plus the number rule's."""
    answers, correct = label_samples(problems, codes, ctx.run.workers)
    keys = [[answer_key(a) for a in row] for row in answers]
    per = selection_per_problem(correct, keys, scored(ctx, verifier, problems, codes), ns, repeats, seed)
    rule = number_rule_scores([p.question for p in problems], codes)
    per["number rule"] = selection_per_problem(correct, keys, rule, ns, repeats, seed)["verifier"]
    per["_right"] = float(correct.mean())
    return per


def compare_settings(ctx: Context, generator, verifier, problems, specs: Sequence[str], n: int = 16,
                     repeats: int = 20, seed: int = 99, log=print) -> list[dict]:
    """One row per setting on (validation) problems: one sample, majority, verifier and oracle at
    N = n. Every pure setting T/p met in `specs` is sampled once (n per problem); a mix reuses its
    parts' samples (the first n / k of each)."""
    pure: dict[tuple, list] = {}
    table = []
    for spec in specs:
        parts = parse_setting(spec)
        if n % len(parts):
            raise ValueError(f"tinygsm: {n} samples do not share equally among the parts of {spec!r}")
        for part in parts:
            if part not in pure:
                pure[part] = sample_setting(ctx, generator, problems, n, f"{part[0]}/{part[1]}", seed)
        codes = [sum((pure[part][i][:n // len(parts)] for part in parts), []) for i in range(len(problems))]
        per = read_samples(ctx, verifier, problems, codes, (n,), repeats, seed)
        row = {"setting": spec, "right": per["_right"]}
        for m in ("first", "majority", "verifier", "oracle", "number rule"):
            row[m], row[m + "_se"] = mean_se(per[m][n])
        table.append(row)
        log(f"tinygsm: {spec}: one sample {row['first']:.1%}, majority {row['majority']:.1%}, verifier@{n} "
            f"{row['verifier']:.1%} (+-{row['verifier_se']:.1%}), oracle@{n} {row['oracle']:.1%}")
    return table


def choose_setting(table: Sequence[dict]) -> str:
    """CHOICE_RULE applied to compare_settings' rows."""
    if not table:
        raise ValueError("choose_setting: no settings compared")
    best = max(range(len(table)), key=lambda i: (table[i]["verifier"], table[i]["oracle"], -i))
    return table[best]["setting"]


def evaluate(ctx: Context, generator, verifier, problems, spec: str, samples: int = 48,
             ns: Sequence[int] = tuple(range(1, 49)), repeats: int = 20, seed: int = 4) -> dict:
    """Greedy and `samples` samples per problem under `spec`, executed and scored: for every method
    and N the mean accuracy, its standard error and the paired margin over greedy with its own."""
    greedy = sample_solutions(generator, ctx.tok, problems, 1, 0.0, ctx.max_new, seed=seed)
    g = label_samples(problems, greedy, ctx.run.workers)[1][:, 0].astype(np.float64)
    codes = sample_setting(ctx, generator, problems, samples, spec, seed)
    per = read_samples(ctx, verifier, problems, codes, ns, repeats, seed)
    out = {"problems": len(problems), "setting": spec, "samples": samples, "sample_right": per.pop("_right"),
           "greedy": mean_se(g), "distinct_programs": len({c for row in codes for c in row}), "curves": {}}
    for m, by_n in per.items():
        out["curves"][m] = {str(n): {"mean_se": mean_se(a), "over_greedy": mean_se(a - g)}
                            for n, a in by_n.items()}
    return out
