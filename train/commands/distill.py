"""Distil a trained teacher run into a smaller student: logit KD (word-level, on real text), sequence-level
KD (the teacher writes the training text; --alpha > 0 adds word-level KD on it), seqinter (Kim & Rush's
sequence-level interpolation: of --candidates teacher continuations, the one closest to the real text by
BLEU) or DistilBERT (a BERT teacher; 5/2/1 triple loss with MLM
masking). The student is baby, tiny or layers=N (the teacher with N layers, starting from teacher layers
0, 2, 4, ...). The run folder is a `tinyml train` folder (progress, metrics.jsonl, loss.png, checkpoint);
a GPT student samples with `tinyml sample --ckpt OUT`. The validation loss is the student's own loss on
held-out real text, the number `tinyml train` reports for the same student trained from scratch.
Examples: tinyml distill --teacher runs/teacher --student layers=4 --method logit --out runs/student;
tinyml distill --teacher runs/bert --student layers=2 --method distilbert --out runs/distilbert.
Resume: tinyml distill --out runs/student --resume [--steps 4000] continues bit-exactly from the checkpoint;
flags not repeated keep the run's values (run.json), and only --steps, --eval-interval, --eval-iters and
--device may change.
"""
from __future__ import annotations

import argparse
import re

from .. import argtypes as at

NAME = "distill"
HELP = "distil a trained teacher run into a smaller student (logit, sequence, Seq-Inter or DistilBERT KD)"
METHODS = ("logit", "sequence", "seqinter", "distilbert")
_STUDENT = re.compile(r"^(baby|tiny|layers=[1-9]\d*)$")
SAMPLE_TOKENS = 300
# the defaults of a fresh run; on --resume, flags not given keep the run's own values instead
DEFAULTS = {"student": "layers=2", "method": "logit", "steps": 2000, "batch_size": 12, "lr": 1e-3,
            "seed": 1337, "init": "inherit", "gen_temperature": 1.0, "candidates": 4, "eval_interval": 250,
            "eval_iters": 20}


def student_spec(text: str) -> str:
    if not _STUDENT.match(text):
        raise argparse.ArgumentTypeError(f"expected baby, tiny or layers=N (N >= 1), got {text!r}")
    return text


def add_arguments(p) -> None:
    p.add_argument("--teacher", type=at.existing_path,
                   help="the teacher's run folder (tinyml train's, or a BERT run for distilbert); required "
                        "unless --resume")
    p.add_argument("--student", type=student_spec,
                   help="baby (4 layers, 128 wide), tiny (2 layers, 64 wide) or layers=N (the teacher with N "
                        "layers; default layers=2)")
    p.add_argument("--method", choices=METHODS,
                   help="logit (default), sequence, seqinter (Kim & Rush's sequence-level interpolation) or "
                        "distilbert")
    p.add_argument("--data", type=at.existing_file,
                   help="a UTF-8 text file (split 90/10) in the teacher's vocabulary "
                        "(default: the teacher's own data)")
    p.add_argument("--out", type=at.folder_to_create, default="tinyml-distill", help="run folder to create")
    p.add_argument("--steps", type=at.positive_int,
                   help="optimizer steps (default 2000; on --resume, more extends the run)")
    p.add_argument("--batch-size", type=at.positive_int, help="sequences per step (default 12)")
    p.add_argument("--lr", type=at.positive_float, help="peak learning rate (default 1e-3)")
    p.add_argument("--temperature", type=at.positive_float, help="KD temperature T (default 2)")
    p.add_argument("--alpha", type=at.bounded_float(0.0, 1.0),
                   help="weight of word-level KD against the next-token loss, in [0, 1] (default 0.5 for "
                        "logit, 0 for sequence)")
    p.add_argument("--init", choices=("inherit", "random"),
                   help="inherit teacher layers where the shapes allow (default) or start from "
                        "random weights")
    p.add_argument("--sequences", type=at.positive_int,
                   help="sequence: teacher generations to train on (default steps x batch, at most 4096)")
    p.add_argument("--gen-temperature", type=at.nonnegative_float,
                   help="sequence: 0 for greedy generation, > 0 to sample (default 1)")
    p.add_argument("--candidates", type=at.positive_int,
                   help="seqinter: teacher continuations per prompt, greedy + samples; the one closest to "
                        "the real text (BLEU) is kept (default 4)")
    p.add_argument("--eval-interval", type=at.positive_int, help="steps between evaluations (default 250)")
    p.add_argument("--eval-iters", type=at.positive_int,
                   help="validation batches per evaluation (default 20)")
    p.add_argument("--seed", type=at.seed, help="random seed (default 1337)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, bit-exactly (flags not repeated keep "
                        "the run's values; --steps may grow)")
    p.add_argument("--device", type=at.device_name,
                   help="cpu, cuda, cuda:N, or auto (default: the best present)")
    p.add_argument("--sample-tokens", type=at.nonnegative_int,
                   help=f"tokens a GPT student samples at the end (default {SAMPLE_TOKENS}; 0: none)")


def run(args) -> int:
    # the cli's own device choice (cpu, cuda or cuda:N, checked to exist here), as train makes it
    from ..cli import _best_device
    from ..distill.resume import resume_plan
    from ..distill.run import DistillPlan, distill
    from ..lm import sample
    from ..progress import require_matplotlib
    from ..runs import UsageError

    device = _best_device(args.device)
    require_matplotlib()
    fields = ("teacher", "student", "method", "data", "steps", "batch_size", "lr", "temperature", "alpha",
              "seed", "eval_interval", "eval_iters", "init", "sequences", "gen_temperature", "candidates")
    given = {f: getattr(args, f) for f in fields}
    if args.resume:
        plan = resume_plan(args.out, given, DistillPlan)
    elif args.teacher is None:
        raise UsageError("--teacher is required (the teacher's run folder), unless --resume continues a run")
    else:
        plan = DistillPlan(out=args.out, **{f: DEFAULTS[f] if v is None and f in DEFAULTS else v
                                            for f, v in given.items()})
    summary, student, tok = distill(plan, device)
    _report(summary, plan.out, sampled=plan.method != "distilbert")
    if summary["stopped"] == "interrupted":
        print(f"interrupted: the checkpoint holds the student so far; continue with: tinyml distill --out "
              f"{plan.out} --resume")
        return 130
    n = SAMPLE_TOKENS if args.sample_tokens is None else args.sample_tokens
    if n and plan.method != "distilbert":
        print("--- sample ---")
        print(tok.decode(sample(student, tok.encode("\n"), n, seed=plan.seed)).strip("\n"))
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
