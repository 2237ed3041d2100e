"""Distil a trained teacher run into a smaller student: logit KD (word-level, on real text), sequence-level
KD (the teacher writes the training text) or DistilBERT (a BERT teacher; 5/2/1 triple loss with MLM
masking). The student is baby, tiny or layers=N (the teacher with N layers, starting from teacher layers
0, 2, 4, ...). The run folder is a `tinyml train` folder (progress, metrics.jsonl, loss.png, checkpoint);
a GPT student samples with `tinyml sample --ckpt OUT`. The validation loss is the student's own loss on
held-out real text, the number `tinyml train` reports for the same student trained from scratch.
Examples: tinyml distill --teacher runs/teacher --student layers=4 --method logit --out runs/student;
tinyml distill --teacher runs/bert --student layers=2 --method distilbert --out runs/distilbert.
"""
from __future__ import annotations

import argparse
import re

from .. import argtypes as at

NAME = "distill"
HELP = "distil a trained teacher run into a smaller student (logit, sequence or DistilBERT KD)"
METHODS = ("logit", "sequence", "distilbert")
_STUDENT = re.compile(r"^(baby|tiny|layers=[1-9]\d*)$")
SAMPLE_TOKENS = 300


def student_spec(text: str) -> str:
    if not _STUDENT.match(text):
        raise argparse.ArgumentTypeError(f"expected baby, tiny or layers=N (N >= 1), got {text!r}")
    return text


def add_arguments(p) -> None:
    p.add_argument("--teacher", type=at.existing_path, required=True,
                   help="the teacher's run folder (tinyml train's, or a BERT run for distilbert)")
    p.add_argument("--student", type=student_spec, default="layers=2",
                   help="baby (4 layers, 128 wide), tiny (2 layers, 64 wide) or layers=N (the teacher with N "
                        "layers; default layers=2)")
    p.add_argument("--method", choices=METHODS, default="logit",
                   help="logit (default), sequence or distilbert")
    p.add_argument("--data", type=at.existing_file,
                   help="a UTF-8 text file (split 90/10) in the teacher's vocabulary "
                        "(default: the teacher's own data)")
    p.add_argument("--out", type=at.folder_to_create, default="tinyml-distill", help="run folder to create")
    p.add_argument("--steps", type=at.positive_int, default=2000, help="optimizer steps (default 2000)")
    p.add_argument("--batch-size", type=at.positive_int, default=12, help="sequences per step (default 12)")
    p.add_argument("--lr", type=at.positive_float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--temperature", type=at.positive_float, help="KD temperature T (default 2)")
    p.add_argument("--alpha", type=at.bounded_float(0.0, 1.0),
                   help="weight of word-level KD against the next-token loss, in [0, 1] (default 0.5 for "
                        "logit, 0 for sequence)")
    p.add_argument("--init", choices=("inherit", "random"), default="inherit",
                   help="inherit teacher layers where the shapes allow (default) or start from "
                        "random weights")
    p.add_argument("--sequences", type=at.positive_int,
                   help="sequence: teacher generations to train on (default steps x batch, at most 4096)")
    p.add_argument("--gen-temperature", type=at.nonnegative_float, default=1.0,
                   help="sequence: 0 for greedy generation, > 0 to sample (default 1)")
    p.add_argument("--eval-interval", type=at.positive_int, default=250, help="steps between evaluations")
    p.add_argument("--eval-iters", type=at.positive_int, default=20, help="validation batches per evaluation")
    p.add_argument("--seed", type=at.seed, default=1337)
    p.add_argument("--device", type=at.device_name,
                   help="cpu, cuda, cuda:N, or auto (default: the best present)")
    p.add_argument("--sample-tokens", type=at.nonnegative_int,
                   help=f"tokens a GPT student samples at the end (default {SAMPLE_TOKENS}; 0: none)")


def run(args) -> int:
    # the cli's own device choice (cpu, cuda or cuda:N, checked to exist here), as train makes it
    from ..cli import _best_device
    from ..distill.run import DistillPlan, distill
    from ..lm import sample
    from ..progress import require_matplotlib

    device = _best_device(args.device)
    require_matplotlib()
    plan = DistillPlan(teacher=args.teacher, student=args.student, method=args.method, out=args.out,
                       data=args.data, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       temperature=args.temperature, alpha=args.alpha, seed=args.seed,
                       eval_interval=args.eval_interval, eval_iters=args.eval_iters, init=args.init,
                       sequences=args.sequences, gen_temperature=args.gen_temperature)
    summary, student, tok = distill(plan, device)
    _report(summary, plan.out, sampled=args.method != "distilbert")
    if summary["stopped"] == "interrupted":
        print("interrupted: the checkpoint holds the student so far (distill runs do not resume)")
        return 130
    n = SAMPLE_TOKENS if args.sample_tokens is None else args.sample_tokens
    if n and args.method != "distilbert":
        print("--- sample ---")
        print(tok.decode(sample(student, tok.encode("\n"), n, seed=args.seed)).strip("\n"))
    return 0


def _report(summary: dict, out: str, sampled: bool) -> None:
    """What `tinyml train` prints at the end: the run's figures and where its files are."""
    import os
    import shlex

    val, ms = summary["val_loss"], summary["ms_per_step"]
    print(f"done: step {summary['step']} ({summary['stopped']})"
          f"{', val loss %.4f' % val if val is not None else ''}; {summary['train_seconds']:.1f}s training"
          f"{' (%.1f ms/step, %.0f tokens/s)' % (ms, summary['tokens_per_s']) if ms is not None else ''}, "
          f"{summary['eval_seconds']:.1f}s evaluation")
    for what, name in (("checkpoint", "checkpoint.safetensors"), ("metrics", "metrics.jsonl"),
                       ("loss plot", "loss.png")):
        path = os.path.join(out, name)
        if os.path.exists(path):
            print(f"  {what + ':':<12}{path}")
    if sampled:
        print(f"sample from it: tinyml sample --ckpt {shlex.quote(out)}")
    else:
        print(f"load it with: tinyml.train.distill.mlm.load_bert_run({out!r})")
