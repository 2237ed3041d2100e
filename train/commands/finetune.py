"""Fine-tune a trained model on new text with a parameter-efficient method (tinyml.models.peft):
LoRA, rsLoRA, LoRA-XS, bottleneck adapters (seqbn, double-seqbn, seqbn-inv), Ladder Side-Tuning, or
full fine-tuning. The source is a `tinyml train` run folder or a Hugging Face folder (config.json,
model.safetensors and a tokenizer.json); it is only read. The output is a run folder as train's
(progress, metrics.jsonl, loss.png, checkpoint.safetensors, --resume), but the checkpoint holds the
adapter and its optimizer state alone (hundreds of KiB for the baby GPT; the base is read again from
the source), except for --method full. `load_finetuned(OUT)` below loads the result for sampling.
Without --data the text is the bundled English dialogues (chatterbot-corpus, a modern conversational
register; tinyml/data/corpus/NOTICE.chatterbot), a register the Shakespeare GPT has not seen.
Examples: tinyml finetune --from runs/shakespeare --method lora --rank 8 --out runs/chat-lora;
tinyml finetune --from runs/shakespeare --method lst --out runs/chat-lst --steps 300.
"""
from __future__ import annotations

import json
import lzma
import os

import tinyml.nn as nn

from .. import argtypes as at
from ..runs import RUN_FILE, CLIError, UsageError

NAME = "finetune"
HELP = "fine-tune a trained run or HF model on new text with LoRA, adapters, LST or in full"
METHODS = ("lora", "rslora", "lora-xs", "seqbn", "double-seqbn", "seqbn-inv", "lst", "full")
SAMPLE_TOKENS = 200
FISHER_BATCHES = 4  # training batches whose squared gradients score the backbone for --lst-init fisher
DIALOGUES = "chatterbot_english.txt.xz"  # in tinyml/data/corpus/, beside shakespeare.txt.xz


def add_arguments(p) -> None:
    p.add_argument("--from", dest="source", type=at.existing_path, required=True,
                   help="the model to adapt: a `tinyml train` run folder or a Hugging Face folder")
    p.add_argument("--data", type=at.existing_file,
                   help="a UTF-8 text file (split 90/10; default: the bundled English dialogues)")
    p.add_argument("--method", choices=METHODS, default="lora", help="default lora")
    p.add_argument("--rank", type=at.positive_int, default=8, help="LoRA / rsLoRA / LoRA-XS rank (default 8)")
    p.add_argument("--alpha", type=at.positive_float,
                   help="LoRA alpha (default: 2 x rank; the scaling is alpha/r, alpha/sqrt(r) for rslora)")
    p.add_argument("--reduction", type=at.positive_int,
                   help="bottleneck reduction factor (default 16) or LST side-network reduction (default 8)")
    p.add_argument("--lst-init", choices=("magnitude", "fisher", "random"), default="magnitude",
                   help="LST side network init: pruned by weight magnitude (default) or by Fisher "
                        f"information (squared gradients over {FISHER_BATCHES} training batches), or random")
    p.add_argument("--targets", default="all-linear",
                   help="modules LoRA wraps: all-linear (default), names separated by commas, or a regex")
    p.add_argument("--out", type=at.folder_to_create, default="tinyml-finetune", help="run folder to create")
    p.add_argument("--resume", action="store_true", help="continue the fine-tuning run in --out")
    p.add_argument("--steps", type=at.positive_int,
                   help="optimizer steps (default 500; on --resume the run's own, or more to extend it)")
    p.add_argument("--batch-size", type=at.positive_int, default=12, help="sequences per step (default 12)")
    p.add_argument("--lr", type=at.positive_float,
                   help="peak learning rate (default 3e-3; 3e-4 for full fine-tuning)")
    p.add_argument("--eval-interval", type=at.positive_int, default=100, help="steps between evaluations")
    p.add_argument("--eval-iters", type=at.positive_int, default=20, help="validation batches per evaluation")
    p.add_argument("--seed", type=at.seed, default=1337)
    p.add_argument("--device", type=at.device_name, help="cpu, cuda, cuda:N, or auto (default)")
    p.add_argument("--sample-tokens", type=at.nonnegative_int,
                   help=f"tokens sampled at the end (default {SAMPLE_TOKENS}; 0: none)")


def adapter_config(method: str, rank: int, alpha: float | None, reduction: int | None, targets: str,
                   lst_init: str = "magnitude"):
    """The tinyml.models.peft config of a --method (None for full fine-tuning)."""
    from tinyml.models import peft

    if targets != "all-linear" and "," not in targets and not any(c in targets for c in "\\.*[]()|+?"):
        targets = [targets]
    elif "," in targets:
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    a = 2.0 * rank if alpha is None else alpha
    if method in ("lora", "rslora"):
        return peft.LoraConfig(r=rank, lora_alpha=a, target_modules=targets, use_rslora=method == "rslora")
    if method == "lora-xs":
        return peft.LoraXSConfig(r=rank, lora_alpha=a, target_modules=targets)
    bottleneck = {"seqbn": peft.SeqBnConfig, "double-seqbn": peft.DoubleSeqBnConfig,
                  "seqbn-inv": peft.SeqBnInvConfig}
    if method in bottleneck:
        return bottleneck[method](reduction_factor=reduction or 16)
    if method == "lst":
        return peft.LSTConfig(reduction_factor=reduction or 8, init=lst_init)
    if method == "full":
        return None
    raise UsageError(f"--method {method!r}: choose one of {', '.join(METHODS)}")


def load_source(source: str):
    """(model in eval mode, tokenizer, the model's run.json record or None) from a run or HF folder."""
    from tinyml.models import from_pretrained

    from tinyml.data import load_tokenizer

    from ..lm import load_run
    from ..runs import read_run

    folder = os.path.dirname(source) if os.path.isfile(source) else source
    if os.path.exists(os.path.join(folder, RUN_FILE)):
        run = read_run(folder)
        if "finetune" in run:
            raise UsageError(f"--from {source}: a fine-tuning run; fine-tune its source "
                             f"{run['finetune']['source']} instead, or merge it first")
        model, tok = load_run(source)
        return model, tok, run.get("model")
    if os.path.exists(os.path.join(folder, "config.json")):
        try:
            tok = load_tokenizer(folder)
        except (FileNotFoundError, ValueError) as e:
            raise CLIError(f"--from {source}: a Hugging Face folder needs its tokenizer.json beside the "
                           "weights "
                           f"({str(e).splitlines()[0]})") from None
        try:
            return from_pretrained(folder), tok, None
        except (ValueError, FileNotFoundError, NotImplementedError) as e:
            raise CLIError(f"--from {source}: {str(e).splitlines()[0]}") from None
    raise UsageError(f"--from {source}: neither a tinyml run (no {RUN_FILE}) nor a Hugging Face folder "
                     "(no config.json)")


class AdapterOnly(nn.Module):
    """A PeftModel as the Trainer sees it: checkpoints (state_dict / load_state_dict) hold the
    adapter alone (PeftModel.adapter_state_dict); forward and parameters are the PeftModel's."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs)

    def state_dict(self, *args, **kwargs):
        return self.inner.adapter_state_dict()

    def load_state_dict(self, state, strict: bool = True):
        self.inner.load_adapter_state_dict(dict(state))


def build_model(source: str, config, fisher_text: str | None = None, batch_size: int = 12, seed: int = 0):
    """The source model with the adapter injected (base frozen), its tokenizer and run record. An
    LST config with init="fisher" and no batches gets FISHER_BATCHES windows of `fisher_text`."""
    from tinyml.models.peft import get_peft_model

    base, tok, record = load_source(source)
    if config is None:
        return base.train(), tok, record
    if getattr(config, "init", None) == "fisher" and not config.fisher_batches:
        if fisher_text is None:
            raise UsageError("--lst-init fisher needs training text to score the backbone with")
        config.fisher_batches = _fisher_batches(base, tok, fisher_text, batch_size, seed)
    try:
        return get_peft_model(base, config).train(), tok, record
    except (ValueError, TypeError, NotImplementedError) as e:
        raise CLIError(f"cannot add {type(config).__name__} to {source}: {str(e).splitlines()[0]}") from None


def _fisher_batches(model, tok, text: str, batch_size: int, seed: int) -> list:
    """(idx, targets) windows of the training text, the model's context long, for Fisher pruning."""
    import tinyml
    from tinyml.data import RandomWindowSampler

    block = min(getattr(model, "max_positions", 256), 256)
    ids = _tokens(tok, text, "--lst-init fisher")
    if len(ids) < block + 1:
        raise CLIError(f"the text is too short for --lst-init fisher: {len(ids)} tokens for a context of "
                       f"{block}")
    sampler = RandomWindowSampler(ids, block, batch_size, seed=seed + 2)
    return [tuple(tinyml.tensor(a, dtype=tinyml.int64) for a in sampler.next_batch())
            for _ in range(FISHER_BATCHES)]


def load_finetuned(folder: str, ckpt: str | None = None):
    """(model in eval mode, tokenizer) of a finetune run folder: the base from its source, the
    adapter from its checkpoint. The function `tinyml sample` needs for these folders."""
    from tinyml.models.peft.interop import config_from_dict

    from tinyml.data import load_tokenizer

    from ..checkpoint import load_checkpoint
    from ..runs import read_run
    from ..trainer import CHECKPOINT

    info = read_run(folder)["finetune"]
    adapter = info["adapter"]
    config = None if adapter is None else config_from_dict(adapter, os.path.join(folder, RUN_FILE))
    model, _, _ = build_model(info["source"], config)
    state = load_checkpoint(ckpt or os.path.join(folder, CHECKPOINT))["model"]
    try:
        (AdapterOnly(model) if config is not None else model).load_state_dict(state, strict=True)
    except (ValueError, KeyError, RuntimeError) as e:
        raise CLIError(f"{folder}: the checkpoint does not fit the model of {RUN_FILE}: "
                       f"{str(e).splitlines()[0]}") from None
    return model.eval(), load_tokenizer(os.path.join(folder, "tokenizer.json"))


def _read_text(path: str | None) -> str:
    from tinyml.data import read_text

    if path is not None:
        return read_text(path)
    import tinyml.data

    with lzma.open(os.path.join(os.path.dirname(tinyml.data.__file__), "corpus", DIALOGUES), "rt",
                   encoding="utf-8") as f:
        return f.read()


def _tokens(tok, text: str, what: str):
    try:
        return tok.encode(text)
    except ValueError as e:  # a character the source's char tokenizer never saw
        raise CLIError(f"{what}: {e}; the text must be written in the source model's vocabulary") from None


def _write_json(path: str, obj: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def run(args) -> int:
    from tinyml.models.peft.interop import config_from_dict, config_to_dict

    import tinyml
    from tinyml.data import RandomWindowSampler, load_tokens, split_text, write_tokens

    from ..cli import _best_device
    from ..lm import sample
    from ..progress import require_matplotlib
    from ..runs import read_run
    from ..trainer import CHECKPOINT, TrainConfig, Trainer

    device = _best_device(args.device)
    require_matplotlib()
    out, run_path = args.out, os.path.join(args.out, RUN_FILE)
    if os.path.abspath(out) == os.path.abspath(args.source):
        raise UsageError(f"--out {out} is the source itself; fine-tuning never writes into its source")
    if args.resume:
        if not (os.path.exists(run_path) and os.path.exists(os.path.join(out, CHECKPOINT))):
            raise UsageError(f"--resume: no fine-tuning run to continue in {out}")
        record = read_run(out)
        info = record.get("finetune")
        if info is None:
            raise UsageError(f"--resume: {out} holds a `tinyml train` run, not a fine-tuning run")
        if info["method"] != args.method or os.path.abspath(info["source"]) != os.path.abspath(args.source):
            raise UsageError(f"--resume: {out} fine-tunes {info['source']} with --method {info['method']}; "
                             f"give the same --from and --method")
        config = None if info["adapter"] is None else config_from_dict(info["adapter"], run_path)
        lr, batch_size, seed, warmup = record["lr"], record["batch_size"], record["seed"], record["warmup"]
        steps = args.steps or record["steps"]
    else:
        if os.path.exists(os.path.join(out, CHECKPOINT)):
            raise UsageError(f"--out {out} already holds a checkpoint; --resume it or choose another --out")
        config = adapter_config(args.method, args.rank, args.alpha, args.reduction, args.targets,
                                args.lst_init)
        lr = args.lr or (3e-4 if args.method == "full" else 3e-3)
        steps = args.steps or 500
        batch_size, seed, warmup = args.batch_size, args.seed, min(100, steps // 10)
    tinyml.manual_seed(seed)
    fisher_text = None
    if getattr(config, "init", None) == "fisher":  # the scores come from the training part of the text
        fisher_text = split_text(_read_text(args.data), 0.1)[0]
    # every check before anything is written
    model, tok, base_record = build_model(args.source, config, fisher_text, batch_size, seed)
    block = min(getattr(model, "max_positions", 256), 256)
    if args.resume:
        train_ids, val_ids = (load_tokens(os.path.join(out, f)) for f in ("train.bin", "val.bin"))
    else:
        train_text, val_text = split_text(_read_text(args.data), 0.1)
        what = args.data or "the bundled dialogues"
        train_ids, val_ids = _tokens(tok, train_text, what), _tokens(tok, val_text, what)
        if min(len(train_ids), len(val_ids)) < block + 1:
            raise CLIError(f"the text is too short: {len(train_ids)} train and {len(val_ids)} validation "
                           f"tokens for a context of {block}")
        os.makedirs(out, exist_ok=True)
        tok.save(os.path.join(out, "tokenizer.json"))
        train_ids = write_tokens(os.path.join(out, "train.bin"), train_ids, tok.vocab_size)
        val_ids = write_tokens(os.path.join(out, "val.bin"), val_ids, tok.vocab_size)
        info = {"method": args.method, "source": os.path.abspath(args.source),
                "adapter": None if config is None else config_to_dict(config)}
        data = os.path.abspath(args.data) if args.data else "bundled:chatterbot_english"
        record = {"finetune": info, "model": base_record or {}, "data": data, "vocab_size": tok.vocab_size,
                  "batch_size": batch_size, "seed": seed, "lr": lr, "warmup": warmup, "steps": steps}
    record["steps"] = steps
    model.to(device)
    tcfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=warmup,
                       eval_interval=args.eval_interval, eval_iters=args.eval_iters, weight_decay=0.0)
    train_s = RandomWindowSampler(train_ids, block, batch_size, seed=seed)
    val_s = RandomWindowSampler(val_ids, block, batch_size, seed=seed + 1)
    trained = model if config is None else AdapterOnly(model)
    trainer = Trainer(trained, train_s, val_s, tcfg, out_dir=out, device=device,
                      extra_state={"finetune": json.dumps(record["finetune"], sort_keys=True)})
    if not args.resume:
        if config is None:
            record["val_loss_before"] = trainer.evaluate()
        else:
            with model.disable_adapter():
                record["val_loss_before"] = trainer.evaluate()
    _write_json(run_path, record)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"tinyml finetune: {args.method} on {info['source']}, {trainable:,} trainable of "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, {len(train_ids):,} train tokens, "
          f"device {device}, {steps} steps of {batch_size}x{block} -> {out}")
    summary = trainer.fit(resume=args.resume)
    after = summary["val_loss"]
    size = os.path.getsize(os.path.join(out, CHECKPOINT))
    print(f"done: step {summary['step']} ({summary['stopped']}), {summary['train_seconds']:.1f}s training; "
          f"validation loss {record['val_loss_before']:.4f} before, "
          f"{after if after is not None else float('nan'):.4f} after")
    print(f"  checkpoint: {os.path.join(out, CHECKPOINT)} ({size / 1024:.1f} KiB)")
    for what, name in (("metrics", "metrics.jsonl"), ("loss plot", "loss.png")):
        if os.path.exists(os.path.join(out, name)):
            print(f"  {what + ':':<12}{os.path.join(out, name)}")
    if summary["stopped"] == "interrupted":
        print(f"resume with: tinyml finetune --from {args.source} --method {args.method} --out {out} "
              f"--steps {steps} --resume")
        return 130
    n = SAMPLE_TOKENS if args.sample_tokens is None else args.sample_tokens
    if n:
        print("--- sample ---")
        print(tok.decode(sample(model.eval(), tok.encode("\n"), n, seed=seed)).strip("\n"))
    return 0
