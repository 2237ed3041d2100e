"""TinyGSM at toy scale, end to end: the job behind `tinyml tinygsm`.

    result = run_tinygsm(TinyGSMRun(out="runs/tinygsm"))
    result["curves"]["verifier"][16]        # held-out accuracy of the verifier's pick among 16 samples

Stages (Liu et al. 2023, "TinyGSM", shrunk to two CPU cores):

1. Problems (tinygsm.py) with gold answers from the sandbox, held out by `split`: "numbers"
   (default: the generator's training problems draw their quantities from 2..50, the test problems
   from 51..99), "wording" (one paraphrase of every template only in test, its others only in
   training, quantities 2..50 on both sides), "instance" (one distribution, distinct questions) or
   "template". The verifier gets problems of its own, none a training or a test question, drawn from
   both sides of the split (verifier_from="all", default: the verifier must judge the errors the
   generator makes on problems unlike its training ones, as Cobbe et al. train theirs on the
   generator's samples on the problem distribution) or from the training side only ("train": the
   held-out side unseen by both models). `validation_problems` more from the test side (never a
   test, training or verifier question) give the generator's validation loss and greedy accuracy.
2. A byte-level BPE tokenizer learned on the training questions and solutions (digits one per token).
3. The generator: a small GPT trained `steps` steps on question -> solution function (loss on the
   solution only); with `steps_candidates`, one generator per candidate and the one whose greedy
   accuracy on the validation problems is nearest `target_greedy` is kept (tinygsm_budget.py).
4. The verifier's data: `verifier_samples` generator samples per verifier problem (and
   `hard_negatives` copies of its gold solution with a number miscopied), plus `contrast_problems`
   further problems with their gold solution and `hard_negatives` miscopied copies each, all
   executed in the sandbox and labelled right or wrong against gold; the verifier
   (tinygsm_verifier.py: the generator's trunk plus a scalar head) trained on them with token-level
   BCE plus `verifier_lm` times the language-modelling loss on the right solutions. With
   `verifier_number_tokens` N > 0 the verifier reads every number below N as one token
   (tinygsm_numtok.py) and trains in verifier_numtok<N>/. `verifier_checkpoints` (budget candidates)
   share the verifier problems out with the chosen generator (samples of several training stages);
   `slot_negatives` adds gold solutions with a number in the wrong slot; `top_p` < 1 samples the
   verifier's and the held-out solutions from the nucleus.
5. Held-out evaluation: the greedy solution, and `samples` sampled ones per test problem; every
   distinct program runs in the sandbox; accuracy = executed answer equals gold. Best-of-N curves
   (tinygsm_select.py) for first sample, majority vote over executed answers, the verifier's pick
   (by its `verifier_score` reduction of the per-token scores, or "lm": the solution's log-likelihood
   under the verifier's language-modelling head; with `pick_runnable` only among programs that
   ran) and the oracle, against greedy.

With `out`, the folder gets generator/ and verifier/ (the Trainer's checkpoint, metrics.jsonl and
loss.png each), tokenizer.json, tinygsm.json (config, accuracies, timings, samples) and
accuracy_vs_n.png, and the executed samples (verifier_data.json, heldout_samples.json,
tinygsm_samples.py); with `resume`, a stage whose checkpoint is in out continues from it (a finished
one is only loaded) and saved samples of the same settings are reused, so a new verifier can be
tried on a trained generator without sampling again. The model's code runs
only in the sandbox, never in this process.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, replace

import numpy as np
from tinyml.models import GPT, GPTConfig

import tinyml

from ..checkpoint import load_checkpoint
from ..trainer import CHECKPOINT, TrainConfig, Trainer
from .completion import CompletionSampler, encode_pairs
from .tinygsm_budget import choose_steps
from .tinygsm_model import EOS, as_pair, sample_solutions, train_tokenizer
from .tinygsm_numtok import NumberTokenizer, load_trunk
from .tinygsm_report import examples, format_table, plot_curves
from .tinygsm_samples import heldout_samples, label_samples, verifier_data
from .tinygsm_select import answer_key, number_rule_scores, selection_curves
from .tinygsm_spec import ProblemSets, TinyGSMRun, _checkpoint, check_run, make_problems  # noqa: F401
from .tinygsm_verifier import Verifier, VerifierSampler, encode_scored, score


def _trainer_config(run: TinyGSMRun, steps: int, lr: float) -> TrainConfig:
    return TrainConfig(max_steps=steps, lr=lr, min_lr=lr / 10, warmup_steps=min(100, max(steps // 10, 1)),
                       weight_decay=0.1, grad_clip=1.0, eval_interval=min(run.eval_interval, steps),
                       eval_iters=4, log_interval=10, progress=run.progress)


def verifier_folder(run: TinyGSMRun) -> str:
    """verifier/, or verifier_numtok<N>/ for the number-token verifier (its weights differ in shape)."""
    return f"verifier_numtok{run.verifier_number_tokens}" if run.verifier_number_tokens else "verifier"


def _sub(out: str | None, name: str) -> str | None:
    return os.path.join(out, name) if out else None


def _fit(run: TinyGSMRun, trainer: Trainer) -> dict:
    """fit(), continuing from the stage's checkpoint on resume (a finished stage only loads it)."""
    resume = run.resume and trainer.out_dir and os.path.exists(os.path.join(trainer.out_dir, CHECKPOINT))
    return trainer.fit(resume=bool(resume))


def train_generator(run: TinyGSMRun, tok, train, validation, block: int, device, steps: int | None = None,
                    folder: str = "generator") -> tuple[GPT, dict]:
    """The generator trained `steps` (default run.steps) steps in out/`folder`; validation loss on
    the validation problems' solutions."""
    steps = run.steps if steps is None else steps
    eos = tok.token_to_id(EOS)
    inputs, targets = encode_pairs(tok, [as_pair(p) for p in train], pad_id=eos)
    val_inputs, val_targets = encode_pairs(tok, [as_pair(p) for p in validation], pad_id=eos)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block, n_layer=run.n_layer, n_head=run.n_head,
                          n_embd=run.n_embd, dropout=0.0)).to(device)
    trainer = Trainer(model, CompletionSampler(inputs, targets, run.batch_size, seed=run.seed),
                      CompletionSampler(val_inputs, val_targets, run.batch_size, seed=run.seed + 1),
                      _trainer_config(run, steps, run.lr), out_dir=_sub(run.out, folder), device=device)
    return model, _fit(run, trainer)


def generator_stage(run: TinyGSMRun, tok, sets: ProblemSets, block: int, max_new: int, device) -> tuple:
    """(generator, training summary, budget record): run.steps steps, or with run.steps_candidates
    the candidate chosen by tinygsm_budget.choose_steps (each in out/generator_<k>steps, the chosen
    one copied to out/generator). The record holds every candidate's validation greedy accuracy."""
    def accuracy(model) -> float:
        greedy = sample_solutions(model, tok, sets.validation, 1, 0.0, max_new, seed=run.seed)
        return float(label_samples(sets.validation, greedy, run.workers)[1].mean())

    if not run.steps_candidates:
        model, summary = train_generator(run, tok, sets.train, sets.validation, block, device)
        return model, summary, {"steps": run.steps, "validation_greedy": accuracy(model)}

    def train_one(k: int):
        return train_generator(run, tok, sets.train, sets.validation, block, device, steps=k,
                               folder=f"generator_{k}steps")

    chosen = choose_steps(run.steps_candidates, train_one, accuracy, run.target_greedy, log=run.log)
    if run.out:
        shutil.copytree(os.path.join(run.out, f"generator_{chosen.steps}steps"),
                        os.path.join(run.out, "generator"), dirs_exist_ok=True)
    record = {"steps": chosen.steps, "validation_greedy": chosen.table[chosen.steps],
              "rule": f"the candidate nearest {run.target_greedy:.1%} validation greedy accuracy "
                      "(ties: fewer steps)",
              "candidates": {str(k): a for k, a in chosen.table.items()}}
    return chosen.model, chosen.summary, record


def load_generator(run: TinyGSMRun, config, steps: int) -> GPT:
    """The budget candidate out/generator_<steps>steps (a ValueError naming it when it is missing)."""
    path = os.path.join(run.out or "", f"generator_{steps}steps", CHECKPOINT)
    if not run.out or not os.path.exists(path):
        raise ValueError(f"tinygsm: verifier_checkpoints has {steps}, but there is no {path}: list budget "
                         f"candidates of this run (--generator-steps)")
    model = GPT(config)
    model.load_state_dict(load_checkpoint(path)["model"])
    return model


def train_verifier(run: TinyGSMRun, tok, generator: GPT, problems, samples, correct, device, contrast=()):
    """The verifier trained on (problem, sample, right?) triples; its last tenth of problems validates.
    `contrast` rows (problem, code, right?) only ever train."""
    flat = [(p, c, float(ok)) for p, row, oks in zip(problems, samples, correct) for c, ok in zip(row, oks)]
    if run.verifier_number_tokens:  # the verifier's own input: one token per number (tinygsm_numtok.py)
        tok = NumberTokenizer(tok, run.verifier_number_tokens)
    n_val = max(1, len(problems) // 10) * len(samples[0])
    fit_rows, val_rows = list(contrast) + flat[:-n_val], flat[-n_val:]
    block = generator.config.block_size
    data = [encode_scored(tok, *zip(*rows), block_size=block) for rows in (fit_rows, val_rows)]
    config = replace(generator.config, vocab_size=tok.vocab_size)
    verifier = Verifier(config, lm_weight=run.verifier_lm).to(device)
    if run.verifier_init == "generator":
        load_trunk(verifier, generator)  # starts from what the generator learned
    elif run.verifier_init != "random":
        start = GPT(generator.config)
        try:
            start.load_state_dict(load_checkpoint(_checkpoint(run.verifier_init))["model"])
        except (KeyError, ValueError, RuntimeError) as e:
            raise ValueError(f"tinygsm: verifier_init {run.verifier_init!r} is not a generator of this run's "
                             f"shape ({str(e).splitlines()[0]})") from None
        load_trunk(verifier.to("cpu"), start)
        verifier.to(device)
    lm = run.verifier_lm > 0
    trainer = Trainer(verifier, VerifierSampler(*data[0], run.batch_size, seed=run.seed, lm=lm),
                      VerifierSampler(*data[1], run.batch_size, seed=run.seed + 1, lm=lm),
                      _trainer_config(run, run.verifier_steps, run.verifier_lr),
                      out_dir=_sub(run.out, verifier_folder(run)), device=device)
    summary = _fit(run, trainer)
    head = "min" if run.verifier_score == "lm" else run.verifier_score  # a log-likelihood has no 0
    val_scores = score(verifier, tok, [r[0] for r in val_rows], [r[1] for r in val_rows], reduce=head)
    val_labels = np.array([r[2] for r in val_rows]) > 0.5
    summary["val_accuracy"] = float(np.mean((val_scores > 0) == val_labels))  # the scalar head's, > 0
    summary["val_accuracy_score"] = head
    summary["val_positive_rate"] = float(val_labels.mean())
    return verifier, tok, summary


def run_tinygsm(run: TinyGSMRun, device: str = "cpu") -> dict:
    """All five stages; returns (and with run.out writes) the results."""
    check_run(run)
    log, started, times = run.log, time.perf_counter(), {}
    tinyml.manual_seed(run.seed)

    def stage(name: str, t0: float) -> None:
        times[name] = time.perf_counter() - t0
        log(f"tinygsm: {name} done in {times[name]:.1f}s")

    t0 = time.perf_counter()
    sets = make_problems(run)
    train, verifier_set, test, contrast_problems = sets.train, sets.verifier, sets.test, sets.contrast
    tok = train_tokenizer(train, run.vocab_size)
    if run.out:
        os.makedirs(run.out, exist_ok=True)
        tok.save(os.path.join(run.out, "tokenizer.json"))
    # the context fits every generator and verifier problem (longer contrast rows are cropped)
    lengths = [len(tok.encode(a + b)) for a, b in map(as_pair, train + verifier_set + test)]
    block = max(lengths) + 8
    max_new = max(len(tok.encode(p.solution)) for p in train) + 16
    stage("problems and tokenizer", t0)
    sides = "both sides" if run.verifier_from == "all" else "the training side"
    log(f"tinygsm: split by {run.split}: {len(train)} training, {len(verifier_set)} verifier (+ "
        f"{len(contrast_problems)} contrast; from {sides}), {len(sets.validation)} validation and "
        f"{len(test)} held-out problems, BPE vocabulary "
        f"{tok.vocab_size}, context {block}")

    t0 = time.perf_counter()
    generator, gen_summary, budget = generator_stage(run, tok, sets, block, max_new, device)
    stage("generator training", t0)

    t0 = time.perf_counter()
    others = {k: load_generator(run, generator.config, k).to(device) for k in run.verifier_checkpoints
              if k != budget["steps"]}
    v_data = verifier_data(run, generator, tok, verifier_set, contrast_problems, max_new, budget["steps"],
                           others)
    v_samples, v_correct, contrast = v_data["samples"], v_data["correct"], v_data["contrast"]
    log(f"tinygsm: verifier data: {v_correct.size} samples, {v_correct.mean():.1%} right; {len(contrast)} "
        f"contrast rows, {np.mean([r[2] for r in contrast]) if contrast else 0:.1%} right")
    stage("verifier data (sampling + sandbox)", t0)
    t0 = time.perf_counter()
    verifier, vtok, ver_summary = train_verifier(run, tok, generator, verifier_set, v_samples, v_correct,
                                                 device, contrast)
    stage("verifier training", t0)

    t0 = time.perf_counter()
    held = heldout_samples(run, generator, tok, test, max_new, budget["steps"])
    greedy, greedy_correct, sampled = held["greedy"], held["greedy_correct"], held["sampled"]
    answers, correct = held["answers"], held["correct"]
    stage("held-out sampling and execution", t0)
    t0 = time.perf_counter()
    pairs = list(dict.fromkeys((i, c) for i, row in enumerate(sampled) for c in row))
    pair_scores = dict(zip(pairs, score(verifier, vtok, [test[i] for i, _ in pairs], [c for _, c in pairs],
                                        reduce=run.verifier_score)))
    scores = np.array([[pair_scores[(i, c)] for c in row] for i, row in enumerate(sampled)])
    keys = [[answer_key(a) for a in row] for row in answers]
    if run.pick_runnable:  # the verifier picks among the programs that ran (any, when none did)
        scores = np.where([[k is not None for k in row] for row in keys], scores, -1e300)
    curves = selection_curves(correct, keys, scores, run.ns, run.repeats, seed=run.seed)
    rule = selection_curves(correct, keys, number_rule_scores([p.question for p in test], sampled), run.ns,
                            run.repeats, seed=run.seed)["verifier"]
    stage("verifier scoring and selection", t0)

    greedy_acc = float(greedy_correct.mean())
    result = {"run": {k: v for k, v in asdict(replace(run, log=None)).items() if k != "log"},
              "greedy": greedy_acc,
              "curves": {m: {str(n): a for n, a in c.items()} for m, c in curves.items()},
              "generator": gen_summary, "generator_budget": budget, "verifier": ver_summary,
              "verifier_data_right": float(v_correct.mean()),
              "number_rule": {str(n): a for n, a in rule.items()},
              "parameters": generator.num_parameters(), "seconds": times,
              "wall_seconds": time.perf_counter() - started, "test_problems": len(test),
              "distinct_programs": len({c for row in sampled for c in row}),
              "examples": examples(test, greedy, greedy_correct, sampled, correct, scores)}
    log(format_table(greedy_acc, curves))
    log("tinygsm: for reference, a rule (a program whose numbers all occur in the question) picks "
        + ", ".join(f"{rule[n]:.1%}" for n in run.ns) + f" at N = {', '.join(map(str, run.ns))}")
    if run.out:
        with open(os.path.join(run.out, "tinygsm.json"), "w") as f:
            json.dump(result, f, indent=1, default=str)
        plot_curves(greedy_acc, curves, os.path.join(run.out, "accuracy_vs_n.png"), reference=rule,
                    title=f"TinyGSM (toy), held out by {run.split}: accuracy vs N")
    return result
