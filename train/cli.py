"""The `tinyml` command line: flags, device choice, what a run prints, exit statuses. The training
itself is train/lm.py's (data, tokenizer, GPT, Trainer, sampling); the run folder's rules are
train/runs.py's.

    tinyml train                          char-level GPT ("baby") on the bundled Shakespeare, then a sample
    tinyml train --config small --steps 5000 --device cuda --out runs/small
    tinyml train --data my.txt --tokenizer bpe --out runs/mine
    tinyml train --out runs/small --resume     continue a run from its checkpoint, bit-exactly
    tinyml train --out runs/small --resume --steps 8000   extend it (the lr decay stretches to 8000)
    tinyml sample --ckpt runs/small --prompt "ROMEO:" --tokens 300 --temperature 0.8 --top-k 40

A run folder holds run.json (what was trained), tokenizer.json, train.bin/val.bin (token ids),
checkpoint.safetensors, metrics.jsonl and loss.png; the end of a run prints where they are and
the command that samples from it. On --resume, flags not repeated keep the run's values, a larger
--steps extends the run and its learning-rate schedule, and flags that would change what is
being trained (--batch-size, --lr, ...) are refused: train/runs.py has the rules.

Errors are one line on stderr, `tinyml: error: ...`: exit status 2 for flag values that
cannot work (checked before any text is read or any folder made; train/argtypes.py), 1 for a
run that fails (the text is too short, the loss diverges). A failed start writes nothing.

train and sample are defined here; the jobs of the other families (finetune, distill, detect, sweep,
...) are one module each in train/commands/, found at start-up (see that package's docstring).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import shlex
import sys

import tinyml
from tinyml.data.tokenizer import BPETokenizer

from . import argtypes as at
from . import commands, distributed_run, lm, runs
from .commands.finetune import load_finetuned
from .presets import MODELS, PRESETS
from .progress import require_matplotlib
from .runs import CLIError, UsageError, check_memory, plan_run, resume_command
from .trainer import CHECKPOINT

UNTIL_SAMPLE = 300  # tokens sampled at the end of `tinyml train` unless --sample-tokens says otherwise


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        sys.stderr.write(f"tinyml: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _best_device(requested: str | None) -> str:
    """The device to run on: the one named (checked to exist here), or the best present for auto."""
    if requested in (None, "auto"):
        return "cuda" if _cuda_available(allow_emulated=False) else "cpu"
    if requested == "cpu":
        return "cpu"
    if not _cuda_available(allow_emulated=True):
        raise UsageError(f"--device {requested}: no CUDA device is available here (use --device cpu)")
    index = int(requested.partition(":")[2] or 0)
    count = tinyml.cuda.device_count()
    if index >= count:
        have = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise UsageError(f"--device {requested}: this machine has {count} CUDA device(s) ({have})")
    return str(tinyml.device(requested))


def _cuda_available(allow_emulated: bool) -> bool:
    """A GPU through the driver; the host emulation of TRITON_INTERPRET=1 (which the test suite
    sets) counts only when asked for by name: it is never the best device."""
    try:
        import tinyml.cuda

        return bool(tinyml.cuda.is_available()) and (allow_emulated or not tinyml.cuda.emulated())
    except Exception:  # no driver, no triton, or no cuda backend in this build: the cpu it is
        return False


def cmd_train(args) -> int:
    if args.compile and (args.nproc and args.nproc > 1 or distributed_run.launched_by_mpiexec()):
        raise UsageError("--compile: data-parallel runs (--nproc, mpiexec) step through "
                         "DistributedDataParallel, which tinyml.compile does not capture; drop one of them")
    if args.nproc and args.nproc > 1 and not distributed_run.launched_by_mpiexec():
        try:  # this process only launches the ranks; each of them runs this command without --nproc
            return distributed_run.relaunch(args.nproc, args.argv)
        except (RuntimeError, ValueError) as e:
            raise CLIError(str(e)) from None
    rank = distributed_run.init_from_launcher()[0] if distributed_run.launched_by_mpiexec() else 0
    if rank > 0:  # rank 0 reports for the run; the others train silently
        sys.stdout = open(os.devnull, "w")
    device = _best_device(args.device)
    if rank > 0 or args.nproc and args.nproc > 1:
        if device != "cpu":
            raise UsageError(f"--device {device}: data-parallel runs are cpu only (MPI); the NCCL backend "
                             "for cuda does not exist yet")
    plan = plan_run(args)
    check_memory(plan, device)
    require_matplotlib()
    preset, tcfg = plan.preset, plan.train
    if preset.sized_for != "cpu" and device == "cpu":
        print(f"note: {plan.preset_name} is a GPU-sized preset; on cpu each step takes seconds and "
              f"each evaluation {tcfg.eval_iters} batches of {plan.batch_size}x{preset.block_size}. For a "
              "first run on cpu use the baby preset (the default), or shrink this one with --batch-size "
              "and --eval-iters.")
    summary, model, tok = lm.train_lm(plan, device, args.model)
    _report(summary, plan.out)
    if summary["stopped"] == "interrupted":
        this_time = {"device": args.device, "sample_tokens": args.sample_tokens}
        print("resume with: " + resume_command(plan, this_time))
        return 130
    n = UNTIL_SAMPLE if args.sample_tokens is None else args.sample_tokens
    if n and rank == 0:
        ids = lm.sample(model, tok.encode("\n"), n, seed=plan.seed)
        print("--- sample ---")
        print(tok.decode(ids).strip("\n"))
    return 0


def _report(summary: dict, out: str) -> None:
    """What the run did (ms/step and tokens/s count training only) and where it left its files."""
    val, ms = summary["val_loss"], summary["ms_per_step"]
    print(f"done: step {summary['step']} ({summary['stopped']})"
          f"{', val loss %.4f' % val if val is not None else ''}; {summary['train_seconds']:.1f}s training"
          f"{' (%.1f ms/step, %.0f tokens/s)' % (ms, summary['tokens_per_s']) if ms is not None else ''}, "
          f"{summary['eval_seconds']:.1f}s evaluation")
    for what, name in (("checkpoint", CHECKPOINT), ("metrics", "metrics.jsonl"), ("loss plot", "loss.png")):
        path = os.path.join(out, name)
        if os.path.exists(path):
            print(f"  {what + ':':<12}{path}")
    print(f"sample from it: tinyml sample --ckpt {shlex.quote(out)}")


def load_for_sampling(path: str):
    """(model in eval mode, tokenizer) of any run folder `tinyml sample` can generate from: a
    `tinyml train` or `tinyml distill` run, or a `tinyml finetune` run (base + adapter)."""
    folder = os.path.dirname(path) if os.path.isfile(path) else path
    run = runs.read_run(folder) if os.path.exists(os.path.join(folder, runs.RUN_FILE)) else {}
    if "finetune" in run:
        return load_finetuned(folder, path if os.path.isfile(path) else None)
    if run.get("architecture", "gpt") != "gpt":
        raise UsageError(f"--ckpt {path}: a {run['architecture']} run; tinyml sample generates from "
                         "language-model runs only (gpt, mamba, s4d)")
    return lm.load_run(path)


def cmd_sample(args) -> int:
    device = _best_device(args.device)
    model, tok = load_for_sampling(args.ckpt)
    model.to(device)
    try:
        ids = tok.encode(args.prompt if args.prompt else "\n")
    except ValueError as e:  # a character the run's char tokenizer never saw
        raise UsageError(f"--prompt {args.prompt!r}: {e}") from None
    if not ids:
        raise UsageError(f"--prompt {args.prompt!r} encodes to no tokens")
    out = lm.sample(model, ids, args.tokens, seed=args.seed, temperature=args.temperature,
                    top_k=args.top_k or None, top_p=args.top_p)
    print(tok.decode(out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tinyml", description="tinyml: train, fine-tune, distil and sample tiny models")
    p.add_argument("--version", action="version", version=f"tinyml {tinyml.__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    t = sub.add_parser("train", help="train a GPT (or Mamba, S4D) on Shakespeare or your own text",
                       description="Train a GPT. With --resume, flags not repeated keep the run's "
                                   "values; a larger --steps extends the run and stretches its learning-rate "
                                   "decay to the new end; --config, --tokenizer, --vocab-size, --data, "
                                   "--batch-size, --lr and --seed must match the run.")
    t.set_defaults(run=cmd_train)
    t.add_argument("--model", choices=list(MODELS), help="gpt (default), mamba or s4d: the state space "
                   "models at about the GPT's parameter count for the preset; on --resume, the run's own")
    t.add_argument("--config", choices=list(PRESETS), help="preset: baby (default; sized for a cpu) or small "
                   "(sized for a GPU)")
    t.add_argument("--steps", type=at.positive_int, help="optimizer steps (preset default: baby 2000, small "
                   "5000); on --resume, a larger value extends the run and its lr schedule")
    t.add_argument("--batch-size", type=at.positive_int, help="sequences per step (preset default: baby 12, "
                   "small 64)")
    t.add_argument("--lr", type=at.positive_float, help="peak learning rate (min lr is a tenth of it)")
    t.add_argument("--eval-interval", type=at.positive_int, help="steps between evaluations (default: the "
                   "preset's 250, at most --steps); a checkpoint is saved at each")
    t.add_argument("--eval-iters", type=at.positive_int, help="validation batches per evaluation "
                   "(preset default: baby 20, small 200)")
    t.add_argument("--device", type=at.device_name,
                   help="cpu, cuda, cuda:N, or auto (default: the best present)")
    t.add_argument("--out", type=at.folder_to_create, default="tinyml-run",
                   help="run folder (default ./tinyml-run)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--data", type=at.existing_file,
                   help="a UTF-8 text file to train on instead of Shakespeare")
    t.add_argument("--tokenizer", choices=["char", "bpe"], help="char (default) or byte-level bpe")
    lo, hi = BPETokenizer.vocab_size_range()
    t.add_argument("--vocab-size", type=at.bounded_int(lo, hi),
                   help=f"bpe vocabulary size, {lo} to {hi} (default {runs.DEFAULT_BPE_VOCAB})")
    t.add_argument("--seed", type=at.seed, help=f"random seed (default {runs.DEFAULT_SEED})")
    t.add_argument("--compile", action="store_true", default=None,
                   help="replay each step's kernels after recording two (tinyml.compile, docs/compile.md); "
                        "bit-identical to eager, which runs instead where a step cannot be captured")
    t.add_argument("--nproc", type=at.positive_int, help="data-parallel processes on this machine, run under "
                   "mpiexec (pip install mpi4py mpich); --batch-size is per process. `mpiexec -n N tinyml "
                   "train ...` does the same")
    t.add_argument("--sample-tokens", type=at.nonnegative_int,
                   help=f"tokens to sample at the end (default {UNTIL_SAMPLE}; 0: none)")
    s = sub.add_parser("sample", help="generate text from a trained run")
    s.set_defaults(run=cmd_sample)
    s.add_argument("--ckpt", type=at.existing_path, required=True,
                   help="run folder (or its checkpoint.safetensors)")
    s.add_argument("--prompt", default="", help="text to continue (default: a newline)")
    s.add_argument("--tokens", type=at.nonnegative_int, default=300, help="tokens to generate (default 300)")
    s.add_argument("--temperature", type=at.nonnegative_float, default=0.8, help="0 for greedy (default 0.8)")
    s.add_argument("--top-k", type=at.nonnegative_int, default=40, help="0 for no top-k filter (default 40)")
    s.add_argument("--top-p", type=at.probability, default=None,
                   help="nucleus sampling, in (0, 1] (default: off)")
    s.add_argument("--device", type=at.device_name, help="cpu, cuda, cuda:N, or auto (default)")
    s.add_argument("--seed", type=at.seed, default=runs.DEFAULT_SEED)
    for command in _family_commands():
        c = sub.add_parser(command.NAME, help=command.HELP, description=command.__doc__)
        c.set_defaults(run=command.run)
        command.add_arguments(c)
    return p


def _family_commands() -> list:
    """The modules of train/commands/, each one subcommand (see that package's docstring), by NAME."""
    modules = [importlib.import_module(f"{commands.__name__}.{info.name}")
               for info in pkgutil.iter_modules(commands.__path__) if not info.name.startswith("_")]
    return sorted(modules, key=lambda m: m.NAME)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --nproc relaunches under mpiexec
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except UsageError as e:  # a flag value that cannot work here: argparse's format and exit status
        _Parser(prog=f"tinyml {args.command}").error(str(e))
    except (CLIError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError,
            ImportError, FloatingPointError) as e:
        sys.stderr.write(f"tinyml: error: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("tinyml: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
