"""TinyGSM at toy scale, end to end: the job behind `tinyml tinygsm`.

    result = run_tinygsm(TinyGSMRun(out="runs/tinygsm"))
    result["curves"]["verifier"][16]        # held-out accuracy of the verifier's pick among 16 samples

Stages (Liu et al. 2023, "TinyGSM", shrunk to two CPU cores):

1. Problems (tinygsm.py) with gold answers from the sandbox, split by number range: the
   generator's training problems draw their quantities from 2..50, the test problems from 51..99.
   The verifier gets problems of its own, none a training or a test question, drawn from both
   ranges (verifier_numbers="all", default: the verifier must judge the errors the generator makes
   on numbers it never saw, as Cobbe et al. train theirs on the generator's samples on the problem
   distribution) or from 2..50 only ("train": the number range held out from both models).
2. A byte-level BPE tokenizer learned on the training questions and solutions (digits one per token).
3. The generator: a small GPT trained on question -> solution function (loss on the solution only).
4. The verifier's data: `verifier_samples` generator samples per verifier problem (and
   `hard_negatives` copies of its gold solution with a number miscopied), plus `contrast_problems`
   further problems with their gold solution and `hard_negatives` miscopied copies each, all
   executed in the sandbox and labelled right or wrong against gold; the verifier
   (tinygsm_verifier.py: the generator's trunk plus a scalar head) trained on them with token-level
   BCE plus `verifier_lm` times the language-modelling loss on the right solutions.
5. Held-out evaluation: the greedy solution, and `samples` sampled ones per test problem; every
   distinct program runs in the sandbox; accuracy = executed answer equals gold. Best-of-N curves
   (tinygsm_select.py) for first sample, majority vote over executed answers, the verifier's pick
   (by its `verifier_score` reduction of the per-token scores) and the oracle, against greedy.

With `out`, the folder gets generator/ and verifier/ (the Trainer's checkpoint, metrics.jsonl and
loss.png each), tokenizer.json, tinygsm.json (config, accuracies, timings, samples) and
accuracy_vs_n.png; with `resume`, a stage whose checkpoint is in out continues from it (a finished
one is only loaded), so a new verifier can be tried on a trained generator. The model's code runs
only in the sandbox, never in this process.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from tinyml.models import GPT, GPTConfig

import tinyml

from ..trainer import CHECKPOINT, TrainConfig, Trainer
from . import tinygsm as gsm
from .completion import CompletionSampler, encode_pairs
from .tinygsm_model import EOS, as_pair, execute, execute_many, same_answer, sample_solutions, train_tokenizer
from .tinygsm_select import answer_key, selection_curves
from .tinygsm_verifier import (
    REDUCTIONS,
    Verifier,
    VerifierSampler,
    contrast_set,
    encode_scored,
    perturbed_solutions,
    score,
)


@dataclass
class TinyGSMRun:
    train_problems: int = 3000
    test_problems: int = 200
    verifier_problems: int = 1200
    verifier_samples: int = 8
    hard_negatives: int = 4  # per verifier problem: its gold solution with a number miscopied
    verifier_init: str = "generator"  # or "random": the verifier's trunk starts from fresh weights
    verifier_numbers: str = "all"  # the verifier problems' quantities: "all" 2..99 or "train" 2..50
    contrast_problems: int = 3000  # further problems: gold + hard_negatives miscopied copies each
    verifier_lm: float = 1.0  # weight of the language-modelling loss on the right solutions
    verifier_score: str = "min"  # per-token scores -> one: "last", "min" or "mean"
    vocab_size: int = 768
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 96
    steps: int = 800
    batch_size: int = 32
    lr: float = 2e-3
    verifier_steps: int = 1500
    verifier_lr: float = 1e-3
    samples: int = 48
    ns: tuple = (1, 2, 4, 8, 16, 32, 48)
    temperature: float = 0.8
    verifier_temperature: float = 1.0
    repeats: int = 20
    eval_interval: int = 200
    workers: int = 4
    seed: int = 0
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
    if run.verifier_init not in ("generator", "random"):
        raise ValueError(f"tinygsm: verifier_init must be 'generator' or 'random', got {run.verifier_init!r}")
    if run.verifier_numbers not in ("all", "train") or run.verifier_score not in REDUCTIONS:
        raise ValueError(f"tinygsm: verifier_numbers must be 'all' or 'train' (got {run.verifier_numbers!r}) "
                         f"and verifier_score one of {', '.join(REDUCTIONS)} (got {run.verifier_score!r})")
    if run.verifier_lm < 0 or run.contrast_problems < 0 or run.hard_negatives < 0:
        raise ValueError(f"tinygsm: verifier_lm, contrast_problems and hard_negatives must be >= 0, got "
                         f"{run.verifier_lm}, {run.contrast_problems}, {run.hard_negatives}")
    if run.contrast_problems and not run.hard_negatives:
        raise ValueError(f"tinygsm: contrast_problems={run.contrast_problems} needs hard_negatives >= 1")
    if run.n_embd % run.n_head:
        raise ValueError(f"tinygsm: n_embd {run.n_embd} must be divisible by n_head {run.n_head}")


def verifier_range(run: TinyGSMRun) -> tuple[int, int]:
    lo, hi = gsm.NUMBER_RANGES["train"][0], gsm.NUMBER_RANGES["test"][1]
    return (lo, hi) if run.verifier_numbers == "all" else gsm.NUMBER_RANGES["train"]


def make_problems(run: TinyGSMRun):
    """(train, verifier, test, contrast) problems with gold answers: no verifier or contrast
    question is a training or a test one, and the contrast questions are not verifier ones."""
    train, test = gsm.split(run.train_problems, run.test_problems, by="numbers", seed=run.seed)
    seen = {p.question for p in train} | {p.question for p in test}
    pool = gsm.generate(2 * run.verifier_problems + 50, run.seed + 2, numbers=verifier_range(run))
    verifier = [p for p in pool if p.question not in seen][:run.verifier_problems]
    seen |= {p.question for p in verifier}
    pool = gsm.generate(2 * run.contrast_problems, run.seed + 7, numbers=verifier_range(run))
    contrast = [p for p in pool if p.question not in seen][:run.contrast_problems]
    return tuple(gsm.attach_gold(ps) if ps else [] for ps in (train, verifier, test, contrast))


def _trainer_config(run: TinyGSMRun, steps: int, lr: float) -> TrainConfig:
    return TrainConfig(max_steps=steps, lr=lr, min_lr=lr / 10, warmup_steps=min(100, max(steps // 10, 1)),
                       weight_decay=0.1, grad_clip=1.0, eval_interval=min(run.eval_interval, steps),
                       eval_iters=4, log_interval=10, progress=run.progress)


def _sub(out: str | None, name: str) -> str | None:
    return os.path.join(out, name) if out else None


def _fit(run: TinyGSMRun, trainer: Trainer) -> dict:
    """fit(), continuing from the stage's checkpoint on resume (a finished stage only loads it)."""
    resume = run.resume and trainer.out_dir and os.path.exists(os.path.join(trainer.out_dir, CHECKPOINT))
    return trainer.fit(resume=bool(resume))


def train_generator(run: TinyGSMRun, tok, train, test, block: int, device) -> tuple[GPT, dict]:
    eos = tok.token_to_id(EOS)
    inputs, targets = encode_pairs(tok, [as_pair(p) for p in train], pad_id=eos)
    val_inputs, val_targets = encode_pairs(tok, [as_pair(p) for p in test], pad_id=eos)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block, n_layer=run.n_layer, n_head=run.n_head,
                          n_embd=run.n_embd, dropout=0.0)).to(device)
    trainer = Trainer(model, CompletionSampler(inputs, targets, run.batch_size, seed=run.seed),
                      CompletionSampler(val_inputs, val_targets, run.batch_size, seed=run.seed + 1),
                      _trainer_config(run, run.steps, run.lr), out_dir=_sub(run.out, "generator"),
                      device=device)
    return model, _fit(run, trainer)


def label_samples(problems, samples: list[list[str]], workers: int):
    """Execute every distinct program: (answers (P lists), correct (P, S) bool)."""
    answers_of = execute([c for row in samples for c in row], workers=workers)
    answers = [[answers_of[c] for c in row] for row in samples]
    correct = np.array([[same_answer(a, p.answer) for a in row] for p, row in zip(problems, answers)])
    return answers, correct


def train_verifier(run: TinyGSMRun, tok, generator: GPT, problems, samples, correct, device, contrast=()):
    """The verifier trained on (problem, sample, right?) triples; its last tenth of problems validates.
    `contrast` rows (problem, code, right?) only ever train."""
    flat = [(p, c, float(ok)) for p, row, oks in zip(problems, samples, correct) for c, ok in zip(row, oks)]
    n_val = max(1, len(problems) // 10) * len(samples[0])
    fit_rows, val_rows = list(contrast) + flat[:-n_val], flat[-n_val:]
    block = generator.config.block_size
    data = [encode_scored(tok, *zip(*rows), block_size=block) for rows in (fit_rows, val_rows)]
    verifier = Verifier(generator.config, lm_weight=run.verifier_lm).to(device)
    if run.verifier_init == "generator":
        verifier.trunk.load_state_dict(generator.state_dict())  # starts from what the generator learned
    lm = run.verifier_lm > 0
    trainer = Trainer(verifier, VerifierSampler(*data[0], run.batch_size, seed=run.seed, lm=lm),
                      VerifierSampler(*data[1], run.batch_size, seed=run.seed + 1, lm=lm),
                      _trainer_config(run, run.verifier_steps, run.verifier_lr),
                      out_dir=_sub(run.out, "verifier"), device=device)
    summary = _fit(run, trainer)
    val_scores = score(verifier, tok, [r[0] for r in val_rows], [r[1] for r in val_rows],
                       reduce=run.verifier_score)
    val_labels = np.array([r[2] for r in val_rows]) > 0.5
    summary["val_accuracy"] = float(np.mean((val_scores > 0) == val_labels))
    summary["val_positive_rate"] = float(val_labels.mean())
    return verifier, summary


def contrast_rows(run: TinyGSMRun, problems, rng) -> list[tuple]:
    """(problem, code, right?) for each contrast problem's gold solution and miscopied copies."""
    if not problems:
        return []
    problems, codes = contrast_set(problems, run.hard_negatives, rng)
    answers = execute_many([c for row in codes for c in row], workers=run.workers)
    return [(p, c, float(same_answer(answers[c], p.answer))) for p, row in zip(problems, codes) for c in row]


def run_tinygsm(run: TinyGSMRun, device: str = "cpu") -> dict:
    """All five stages; returns (and with run.out writes) the results."""
    check_run(run)
    log, started, times = run.log, time.perf_counter(), {}
    tinyml.manual_seed(run.seed)

    def stage(name: str, t0: float) -> None:
        times[name] = time.perf_counter() - t0
        log(f"tinygsm: {name} done in {times[name]:.1f}s")

    t0 = time.perf_counter()
    train, verifier_set, test, contrast_problems = make_problems(run)
    tok = train_tokenizer(train, run.vocab_size)
    if run.out:
        os.makedirs(run.out, exist_ok=True)
        tok.save(os.path.join(run.out, "tokenizer.json"))
    # the context fits every generator and verifier problem (longer contrast rows are cropped)
    lengths = [len(tok.encode(a + b)) for a, b in map(as_pair, train + verifier_set + test)]
    block = max(lengths) + 8
    max_new = max(len(tok.encode(p.solution)) for p in train) + 16
    stage("problems and tokenizer", t0)
    log(f"tinygsm: {len(train)} training, {len(verifier_set)} verifier (+ {len(contrast_problems)} contrast, "
        f"numbers in {verifier_range(run)}) and {len(test)} held-out problems (numbers in "
        f"{gsm.NUMBER_RANGES['test']}), BPE vocabulary {tok.vocab_size}, context {block}")

    t0 = time.perf_counter()
    generator, gen_summary = train_generator(run, tok, train, test, block, device)
    stage("generator training", t0)

    t0 = time.perf_counter()
    rng = np.random.default_rng(run.seed + 5)
    v_samples = sample_solutions(generator, tok, verifier_set, run.verifier_samples, run.verifier_temperature,
                                 max_new, seed=run.seed + 3)
    if run.hard_negatives:
        v_samples = [row + perturbed_solutions(p, run.hard_negatives, rng)
                     for p, row in zip(verifier_set, v_samples)]
    _, v_correct = label_samples(verifier_set, v_samples, run.workers)
    contrast = contrast_rows(run, contrast_problems, rng)
    log(f"tinygsm: verifier data: {v_correct.size} samples, {v_correct.mean():.1%} right; {len(contrast)} "
        f"contrast rows, {np.mean([r[2] for r in contrast]) if contrast else 0:.1%} right")
    stage("verifier data (sampling + sandbox)", t0)
    t0 = time.perf_counter()
    verifier, ver_summary = train_verifier(run, tok, generator, verifier_set, v_samples, v_correct, device,
                                           contrast)
    stage("verifier training", t0)

    t0 = time.perf_counter()
    greedy = sample_solutions(generator, tok, test, 1, 0.0, max_new, seed=run.seed)
    sampled = sample_solutions(generator, tok, test, run.samples, run.temperature, max_new, seed=run.seed + 4)
    stage("held-out sampling", t0)
    t0 = time.perf_counter()
    _, greedy_correct = label_samples(test, greedy, run.workers)
    answers, correct = label_samples(test, sampled, run.workers)
    stage("held-out execution", t0)
    t0 = time.perf_counter()
    pairs = list(dict.fromkeys((i, c) for i, row in enumerate(sampled) for c in row))
    pair_scores = dict(zip(pairs, score(verifier, tok, [test[i] for i, _ in pairs], [c for _, c in pairs],
                                        reduce=run.verifier_score)))
    scores = np.array([[pair_scores[(i, c)] for c in row] for i, row in enumerate(sampled)])
    keys = [[answer_key(a) for a in row] for row in answers]
    curves = selection_curves(correct, keys, scores, run.ns, run.repeats, seed=run.seed)
    stage("verifier scoring and selection", t0)

    greedy_acc = float(greedy_correct.mean())
    result = {"run": {k: v for k, v in asdict(replace(run, log=None)).items() if k != "log"},
              "greedy": greedy_acc,
              "curves": {m: {str(n): a for n, a in c.items()} for m, c in curves.items()},
              "generator": gen_summary, "verifier": ver_summary,
              "verifier_data_right": float(v_correct.mean()),
              "parameters": generator.num_parameters(), "seconds": times,
              "wall_seconds": time.perf_counter() - started, "test_problems": len(test),
              "distinct_programs": len({c for row in sampled for c in row}),
              "examples": _examples(test, greedy, greedy_correct, sampled, correct, scores)}
    log(format_table(greedy_acc, curves))
    if run.out:
        with open(os.path.join(run.out, "tinygsm.json"), "w") as f:
            json.dump(result, f, indent=1, default=str)
        plot_curves(greedy_acc, curves, os.path.join(run.out, "accuracy_vs_n.png"))
    return result


def _examples(test, greedy, greedy_correct, sampled, correct, scores, k: int = 3) -> list[dict]:
    """A few held-out problems where greedy was wrong: the question, greedy's code and the verifier's pick."""
    out = []
    for i in np.flatnonzero(~greedy_correct[:, 0])[:k]:
        pick = int(np.argmax(scores[i]))
        out.append({"question": test[i].question, "gold": test[i].answer, "greedy": greedy[i][0],
                    "verifier_pick": sampled[i][pick], "verifier_pick_right": bool(correct[i, pick])})
    return out


def format_table(greedy: float, curves: dict) -> str:
    ns = list(next(iter(curves.values())))
    head = "| N | " + " | ".join(["greedy", *curves]) + " |"
    rows = [head, "|" + "---|" * (len(curves) + 2)]
    for n in ns:
        rows.append(f"| {n} | {greedy:.1%} | " + " | ".join(f"{curves[m][n]:.1%}" for m in curves) + " |")
    return "\n".join(rows)


def plot_curves(greedy: float, curves: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ns = list(next(iter(curves.values())))
    names = {"first": "one sample", "majority": "majority vote (executed answers)",
             "verifier": "verifier best-of-N", "oracle": "oracle (any right)"}
    for m, c in curves.items():
        ax.plot(ns, [100 * c[n] for n in ns], marker="o", label=names.get(m, m),
                linestyle=":" if m == "oracle" else "-")
    ax.axhline(100 * greedy, color="k", linestyle="--", label="greedy")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("N (samples per problem)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("TinyGSM (toy): accuracy vs N")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
