"""Train a small GPT on an arithmetic task with the generic Trainer and measure held-out exact match:
the job behind `tinyml arithmetic` and the sample-efficiency sweep (examples/arithmetic/).

    result = train_arithmetic(ArithmeticRun(fmt="reverse", digits=3, samples=10000, steps=2000))
    result["accuracy"]      # greedy exact match on the held-out test problems

Training texts may be given instead of rendered from the split (`pairs`, as the Mix Distillation
mixer does), and with them the test texts of the split's test problems and the parser of the answer
(`traces(test_problems) -> test pairs`, `parse(completion) -> answer`); by default both are run.fmt's.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

from tinyml.models import GPT, GPTConfig

import tinyml

from ..trainer import CHECKPOINT, TrainConfig, Trainer
from . import arithmetic as ar
from .completion import CompletionSampler, encode_pairs, exact_match


@dataclass
class ArithmeticRun:
    fmt: str = "reverse"
    digits: int = 3
    op: str = "add"
    samples: int = 10000
    test_samples: int = 500
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    eval_interval: int = 500
    seed: int = 0
    out: str | None = None
    progress: bool = True
    resume: bool = False  # continue from out's checkpoint (steps may grow; the rest must match)
    pad: bool = False  # zero-pad operands to `digits` and the answer to its full width (plain, reverse)
    warmup_steps: int = 100


def build_model(run: ArithmeticRun, vocab_size: int, block_size: int) -> GPT:
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=run.n_layer, n_head=run.n_head,
                         n_embd=run.n_embd, dropout=0.0))


def train_arithmetic(run: ArithmeticRun, pairs: list[tuple[str, str]] | None = None, traces=None,
                     parse=None, device: str = "cpu") -> dict:
    """Train on `pairs` (default: the split's training problems rendered in run.fmt), then greedy
    exact match on the split's test problems written by `traces` and read back by `parse`. Returns
    the Trainer's summary with accuracy, the test size, wall seconds and a few wrong answers; with
    run.out, also arithmetic.json there beside the Trainer's checkpoint, metrics.jsonl and loss.png."""
    ar.check_task(run.op, run.fmt)
    if run.resume and not (run.out and os.path.exists(os.path.join(run.out, CHECKPOINT))):
        raise ValueError(f"resume: no checkpoint in {run.out!r} to continue from")
    if (traces is None) != (parse is None):
        raise ValueError("train_arithmetic: give both traces and parse, or neither")
    pad = run.digits if run.pad else 0
    traces = traces or (lambda problems: [ar.render(a, b, run.op, run.fmt, pad) for a, b in problems])
    parse = parse or (lambda completion: ar.parse_answer(completion, run.fmt, pad))
    started = time.perf_counter()
    tinyml.manual_seed(run.seed)
    split = ar.make_split(run.digits, run.samples, run.test_samples, run.op, seed=run.seed)
    tok = ar.tokenizer()
    eos = tok.encode(ar.EOS)[0]
    if pairs is None:
        pairs = traces(split.train)
    test_pairs = traces(split.test)
    inputs, targets = encode_pairs(tok, pairs, pad_id=eos)
    # validation loss on the test problems' texts (teacher-forced): what the Trainer plots
    val_inputs, val_targets = encode_pairs(tok, test_pairs, pad_id=eos)
    longest_answer = max(len(c) for _, c in test_pairs + pairs)
    longest_prompt = max(len(p) for p, _ in test_pairs)
    block = max(inputs.shape[1], val_inputs.shape[1], longest_prompt + longest_answer + 1)
    model = build_model(run, tok.vocab_size, block).to(device)
    cfg = TrainConfig(max_steps=run.steps, lr=run.lr, min_lr=run.lr / 10,
                      warmup_steps=min(run.warmup_steps, run.steps // 10), weight_decay=0.1, grad_clip=1.0,
                      eval_interval=min(run.eval_interval, run.steps), eval_iters=4, log_interval=10,
                      progress=run.progress)
    train_s = CompletionSampler(inputs, targets, run.batch_size, seed=run.seed)
    val_s = CompletionSampler(val_inputs, val_targets, run.batch_size, seed=run.seed + 1)
    # what a resumed run must share with its checkpoint (steps may grow: the Trainer stretches the decay)
    recorded = {k: v for k, v in asdict(run).items() if k not in ("out", "progress", "resume", "steps")}
    extra = {"task": "arithmetic", "run": recorded}
    trainer = Trainer(model, train_s, val_s, cfg, out_dir=run.out, device=device, extra_state=extra)
    summary = trainer.fit(resume=run.resume)
    eval_started = time.perf_counter()
    answers = [ar.answer_of(a, b, run.op) for a, b in split.test]
    acc, completions = exact_match(model, tok, [p for p, _ in test_pairs], answers,
                                   parse, longest_answer + 1, eos)
    wrong = [(p + c).replace("\n", "\\n") for (p, _), c, a in zip(test_pairs, completions, answers)
             if parse(c) != a][:5]
    result = {**summary, "accuracy": acc, "test_problems": len(answers), "train_samples": len(pairs),
              "parameters": model.num_parameters(), "exact_match_seconds": time.perf_counter() - eval_started,
              "wall_seconds": time.perf_counter() - started, "wrong_examples": wrong,
              "run": extra["run"]}
    if run.out:
        with open(os.path.join(run.out, "arithmetic.json"), "w") as f:
            json.dump(result, f, indent=1)
    return result
