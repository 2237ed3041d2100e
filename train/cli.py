"""The `tinyml` command line.

    tinyml train                          char-level GPT ("baby") on the bundled Shakespeare, then a sample
    tinyml train --config small --steps 5000 --device cuda --out runs/small
    tinyml train --data my.txt --tokenizer bpe --out runs/mine
    tinyml train --out runs/small --resume     continue a run from its checkpoint, bit-exactly
    tinyml sample --ckpt runs/small --prompt "ROMEO:" --tokens 300 --temperature 0.8 --top-k 40

A run folder holds run.json (what was trained), tokenizer.json, train.bin/val.bin (token ids),
checkpoint.safetensors, metrics.jsonl and loss.png. Bad input ends with one line on stderr and
exit status 1 (2 for bad arguments); nothing already in the folder is overwritten by a failed start.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

RUN_FILE = "run.json"


class CLIError(Exception):
    """An error shown to the user as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _best_device(requested: str | None) -> str:
    if requested and requested != "auto":
        import tinyml

        dev = tinyml.device(requested)  # validates the name
        if dev.type == "cuda" and not _cuda_available(allow_emulated=True):
            raise CLIError(f"--device {requested}: no CUDA device is available here (use --device cpu)")
        return str(dev)
    return "cuda" if _cuda_available(allow_emulated=False) else "cpu"


def _cuda_available(allow_emulated: bool) -> bool:
    """A GPU through the driver; the host emulation of TRITON_INTERPRET=1 (which the test suite
    sets) counts only when asked for by name: it is never the best device."""
    try:
        import tinyml.cuda

        return bool(tinyml.cuda.is_available()) and (allow_emulated or not tinyml.cuda.emulated())
    except Exception:  # no driver, no triton, or no cuda backend in this build: the cpu it is
        return False


def _load_text(args) -> tuple[str, str]:
    """(train text, validation text): the last 10% of --data, or of each bundled play."""
    from tinyml.data import read_text, shakespeare_split, split_text

    if args.data:
        return split_text(read_text(args.data), 0.1)
    return shakespeare_split(0.1)


def _prepare_data(args, out: str, block_size: int, resume: bool):
    """Tokenizer and token files in `out`; on resume, the ones already there."""
    from tinyml.data import BPETokenizer, CharTokenizer, load_tokenizer, load_tokens, write_tokens

    tok_path = os.path.join(out, "tokenizer.json")
    if resume:
        for f in ("tokenizer.json", "train.bin", "val.bin"):
            if not os.path.exists(os.path.join(out, f)):
                raise CLIError(f"--resume: {os.path.join(out, f)} is missing; this folder holds no complete run")
        return load_tokenizer(tok_path), load_tokens(os.path.join(out, "train.bin")), \
            load_tokens(os.path.join(out, "val.bin"))
    train_text, val_text = _load_text(args)
    if args.tokenizer == "char":
        tok = CharTokenizer.from_text(train_text + val_text)
    else:
        tok = BPETokenizer.train(train_text, vocab_size=args.vocab_size)
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)
    need = block_size + 1
    if len(train_ids) < need or len(val_ids) < need:
        raise CLIError(f"the text is too short: {len(train_ids)} train and {len(val_ids)} validation tokens, "
                       f"and a context of {block_size} needs at least {need} of each")
    tok.save(tok_path)
    return tok, write_tokens(os.path.join(out, "train.bin"), train_ids, tok.vocab_size), \
        write_tokens(os.path.join(out, "val.bin"), val_ids, tok.vocab_size)


def cmd_train(args) -> int:
    from tinyml.models import GPT, GPTConfig, generate

    import tinyml
    from tinyml.data import RandomWindowSampler

    from .presets import get_preset
    from .trainer import CHECKPOINT, Trainer

    preset = get_preset(args.config)
    out = args.out
    ckpt = os.path.join(out, CHECKPOINT)
    run_path = os.path.join(out, RUN_FILE)
    if args.resume:
        if not os.path.exists(ckpt) or not os.path.exists(run_path):
            raise CLIError(f"--resume: no checkpoint in {out} (expected {CHECKPOINT} and {RUN_FILE})")
        with open(run_path) as f:
            run = json.load(f)
        if run["preset"] != args.config or (args.tokenizer and run["tokenizer"] != args.tokenizer):
            raise CLIError(f"--resume: the checkpoint in {out} comes from another configuration "
                           f"(--config {run['preset']} --tokenizer {run['tokenizer']})")
        args.tokenizer = run["tokenizer"]
    else:
        if os.path.exists(ckpt):
            raise CLIError(f"{out} already holds a checkpoint; pass --resume to continue it "
                           "or --out to start elsewhere")
        args.tokenizer = args.tokenizer or "char"
    device = _best_device(args.device)
    os.makedirs(out, exist_ok=True)
    tinyml.manual_seed(args.seed)
    tok, train_tokens, val_tokens = _prepare_data(args, out, preset.block_size, args.resume)

    mcfg = GPTConfig(vocab_size=tok.vocab_size, block_size=preset.block_size, n_layer=preset.n_layer,
                     n_head=preset.n_head, n_embd=preset.n_embd, dropout=preset.dropout)
    model = GPT(mcfg).to(device)
    tcfg = preset.train
    overrides = {k: v for k, v in (("max_steps", args.steps), ("lr", args.lr)) if v is not None}
    if "lr" in overrides and tcfg.min_lr is not None:
        overrides["min_lr"] = overrides["lr"] / 10
    if args.steps is not None:
        if args.steps < 1:
            raise CLIError(f"--steps must be at least 1, got {args.steps}")
        # a short run keeps the curve's shape: warmup at most a tenth of it, decay over all of it
        overrides["decay_steps"] = args.steps
        overrides["warmup_steps"] = min(tcfg.warmup_steps, max(args.steps // 10, 1))
        overrides["eval_interval"] = min(tcfg.eval_interval, args.steps)
    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    tcfg = replace(tcfg, **overrides)
    batch = args.batch_size or preset.batch_size
    train_s = RandomWindowSampler(train_tokens, preset.block_size, batch, seed=args.seed)
    val_s = RandomWindowSampler(val_tokens, preset.block_size, batch, seed=args.seed + 1)
    extra = {"preset": args.config, "model": mcfg.to_dict(), "tokenizer": args.tokenizer}
    if not args.resume:
        data = os.path.abspath(args.data) if args.data else "shakespeare (bundled)"
        with open(run_path, "w") as f:
            json.dump({**extra, "data": data, "batch_size": batch, "seed": args.seed}, f, indent=2)
    print(f"tinyml train: {args.config} GPT, {model.num_parameters() / 1e6:.2f}M parameters, "
          f"{args.tokenizer} tokenizer ({tok.vocab_size} tokens), {len(train_tokens):,} train tokens, "
          f"device {device}, {tcfg.max_steps} steps of {batch}x{preset.block_size} -> {out}")
    trainer = Trainer(model, train_s, val_s, tcfg, out_dir=out, device=device, extra_state=extra)
    summary = trainer.fit(resume=args.resume)
    ms = 1000 * summary["seconds"] / max(len(trainer.losses), 1)
    val = summary["val_loss"]
    print(f"done: step {summary['step']}, {summary['stopped']}, "
          f"{'val loss %.4f, ' % val if val is not None else ''}{summary['seconds']:.1f}s "
          f"({ms:.1f} ms/step, {summary['tokens_per_s']:.0f} tokens/s)")
    if summary["stopped"] == "interrupted":
        print(f"resume with: tinyml train --config {args.config} --out {out} --resume")
        return 130
    if args.sample_tokens:
        tinyml.manual_seed(args.seed)
        ids = generate(model, [tok.encode("\n")], args.sample_tokens, temperature=0.8, top_k=40)[0]
        print("--- sample ---")
        print(tok.decode(ids).strip("\n"))
    return 0


def _load_run(path: str):
    """(model, tokenizer) from a run folder (or its checkpoint file)."""
    from tinyml.models import GPT, GPTConfig

    import tinyml
    from tinyml.data import load_tokenizer

    from .checkpoint import load_checkpoint
    from .trainer import CHECKPOINT

    folder = os.path.dirname(path) if os.path.isfile(path) else path
    ckpt = path if os.path.isfile(path) else os.path.join(folder, CHECKPOINT)
    run_path = os.path.join(folder, RUN_FILE)
    if not os.path.exists(ckpt) or not os.path.exists(run_path):
        raise CLIError(f"--ckpt {path}: expected a run folder with {CHECKPOINT} and {RUN_FILE}")
    with open(run_path) as f:
        run = json.load(f)
    model = GPT(GPTConfig(**{**run["model"], "dropout": 0.0}))
    state = load_checkpoint(ckpt)
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise CLIError(f"{ckpt} does not match {run_path}: {str(e).splitlines()[0]}") from None
    return model.eval(), load_tokenizer(os.path.join(folder, "tokenizer.json")), tinyml


def cmd_sample(args) -> int:
    from tinyml.models import generate

    model, tok, tinyml = _load_run(args.ckpt)
    model.to(_best_device(args.device))
    tinyml.manual_seed(args.seed)
    prompt = args.prompt if args.prompt else "\n"
    ids = tok.encode(prompt)
    if not ids:
        raise CLIError("the prompt encodes to no tokens")
    out = generate(model, [ids], args.tokens, temperature=args.temperature, top_k=args.top_k or None,
                   top_p=args.top_p)[0]
    print(tok.decode(out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tinyml", description="tinyml: train and sample tiny language models")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    t = sub.add_parser("train", help="train a GPT on the bundled Shakespeare or your own text")
    t.add_argument("--config", default="baby", help="preset: baby (default) or small")
    t.add_argument("--steps", type=int, help="optimizer steps (preset default: baby 2000, small 5000)")
    t.add_argument("--batch-size", type=int, help="sequences per step")
    t.add_argument("--lr", type=float, help="peak learning rate (min lr is a tenth of it)")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (the best present)")
    t.add_argument("--out", default="tinyml-run", help="run folder (default ./tinyml-run)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--data", help="a UTF-8 text file to train on instead of Shakespeare")
    t.add_argument("--tokenizer", choices=["char", "bpe"], help="char (default) or byte-level bpe")
    t.add_argument("--vocab-size", type=int, default=512, help="bpe vocabulary size (default 512)")
    t.add_argument("--seed", type=int, default=1337)
    t.add_argument("--sample-tokens", type=int, default=300, help="tokens to sample at the end (0: none)")
    s = sub.add_parser("sample", help="generate text from a trained run")
    s.add_argument("--ckpt", required=True, help="run folder (or its checkpoint.safetensors)")
    s.add_argument("--prompt", default="", help="text to continue (default: a newline)")
    s.add_argument("--tokens", type=int, default=300)
    s.add_argument("--temperature", type=float, default=0.8, help="0 for greedy")
    s.add_argument("--top-k", type=int, default=40, help="0 for no top-k filter")
    s.add_argument("--top-p", type=float, default=None)
    s.add_argument("--device", default="auto")
    s.add_argument("--seed", type=int, default=1337)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "train":
            return cmd_train(args)
        return cmd_sample(args)
    except (CLIError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError,
            FloatingPointError) as e:
        sys.stderr.write(f"tinyml: error: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("tinyml: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
