"""Language-model training, the task behind `tinyml train` and `tinyml sample`: text (the bundled
Shakespeare or --data) through a char or byte-level BPE tokenizer into token files, a GPT built
from a preset (train/presets.py; or, with family "mamba" | "s4d", a MambaLM or S4DLM of about the
same size), the generic Trainer on random windows of the tokens, and sampling from the trained
model. Flags and the run folder's rules are train/runs.py's; printing and exit statuses are the
command line's (train/cli.py).

    tok, train_ids, val_ids = prepare_data(plan)   # read and tokenize, in memory
    summary, model, tok = train_lm(plan, device)   # write the run folder, train, checkpoint
    ids = sample(model, tok.encode("\\n"), 300, seed=1337)   # then tok.decode(ids)
    model, tok = load_run("runs/small")            # a trained run back from its folder
"""
from __future__ import annotations

import os

from tinyml.models import GPT, GPTConfig, generate
from tinyml.models.ssm import S4DLM, MambaConfig, MambaLM, S4DLMConfig

import tinyml
import tinyml.distributed as dist
from tinyml.data import (
    BPETokenizer,
    CharTokenizer,
    RandomWindowSampler,
    load_tokenizer,
    load_tokens,
    read_text,
    shakespeare_split,
    split_text,
    write_tokens,
)

from .checkpoint import load_checkpoint
from .distributed_run import DistributedTrainer, shard_seed
from .presets import MODELS, SSM_SIZES, Preset
from .runs import RUN_FILE, CLIError, RunPlan, UsageError, read_run, write_run
from .trainer import CHECKPOINT, Trainer

DATA_FILES = ("tokenizer.json", "train.bin", "val.bin")


def prepare_data(plan: RunPlan):
    """(tokenizer, train ids, val ids): on resume the files in the run folder; on a fresh start
    read and tokenized in memory (nothing written yet; `write_data` does that)."""
    if plan.resume:
        paths = [os.path.join(plan.out, f) for f in DATA_FILES]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise CLIError(f"--resume: {missing[0]} is missing; this folder holds no complete run")
        return load_tokenizer(paths[0]), load_tokens(paths[1]), load_tokens(paths[2])
    train_text, val_text = split_text(read_text(plan.data), 0.1) if plan.data else shakespeare_split(0.1)
    if plan.tokenizer == "char":
        tok = CharTokenizer.from_text(train_text + val_text)
    else:
        tok = BPETokenizer.train(train_text, vocab_size=plan.vocab_size)
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)
    need = plan.preset.block_size + 1
    if len(train_ids) < need or len(val_ids) < need:
        raise CLIError(f"the text is too short: {len(train_ids)} train and {len(val_ids)} validation tokens, "
                       f"and a context of {plan.preset.block_size} needs at least {need} of each")
    return tok, train_ids, val_ids


def write_data(plan: RunPlan, tok, train_ids, val_ids):
    """Create the run folder and, on a fresh start, write the tokenizer and the token files;
    returns the token arrays to train on (memory-mapped from the folder)."""
    os.makedirs(plan.out, exist_ok=True)
    if not plan.resume:
        tokenizer, train_bin, val_bin = (os.path.join(plan.out, f) for f in DATA_FILES)
        tok.save(tokenizer)
        train_ids = write_tokens(train_bin, train_ids, tok.vocab_size)
        val_ids = write_tokens(val_bin, val_ids, tok.vocab_size)
    return train_ids, val_ids


def model_config(preset: Preset, vocab_size: int) -> GPTConfig:
    """The GPT of a preset for a vocabulary."""
    return GPTConfig(vocab_size=vocab_size, block_size=preset.block_size, n_layer=preset.n_layer,
                     n_head=preset.n_head, n_embd=preset.n_embd, dropout=preset.dropout)


# model family -> (its class, its config class, its name in messages)
FAMILIES = {"gpt": (GPT, GPTConfig, "GPT"), "mamba": (MambaLM, MambaConfig, "Mamba"),
            "s4d": (S4DLM, S4DLMConfig, "S4D")}


def model_family(plan: RunPlan, requested: str | None) -> str:
    """The model to train: --model, or on --resume the run's own (a different --model is refused)."""
    if requested is not None and requested not in MODELS:
        raise UsageError(f"--model {requested!r}: choose one of {', '.join(MODELS)}")
    if not plan.resume:
        return requested or "gpt"
    recorded = plan.record.get("model", {}).get("family", "gpt")
    if requested is not None and requested != recorded:
        raise UsageError(f"--model {requested} does not match the run in {plan.out}, which trains {recorded}")
    return recorded


def family_config(family: str, plan: RunPlan, vocab_size: int):
    """The config of `family` for the run's preset: the GPT's own, or SSM_SIZES' for the SSMs."""
    if family == "gpt":
        return model_config(plan.preset, vocab_size)
    sizes = SSM_SIZES[(family, plan.preset_name)]
    return FAMILIES[family][1](vocab_size=vocab_size, **sizes)


def train_lm(plan: RunPlan, device: str, family: str | None = None):
    """Train the run `plan` describes on `device`: (the Trainer's summary, the model, the tokenizer).
    `family` is gpt (default), mamba or s4d (train/presets.py's MODELS). A batch that does not fit
    in memory ends as a CLIError naming --batch-size."""
    preset, tcfg = plan.preset, plan.train
    family = model_family(plan, family)
    tinyml.manual_seed(plan.seed)
    tok, train_ids, val_ids = prepare_data(plan)
    mcfg = family_config(family, plan, tok.vocab_size)
    record = mcfg.to_dict() if family == "gpt" else {"family": family, **mcfg.to_dict()}
    model_class, _, label = FAMILIES[family]
    distributed = dist.is_initialized()  # a rank of `tinyml train --nproc N` (train/distributed_run.py)
    try:
        model = model_class(mcfg).to(device)
        if distributed:
            dist.barrier()  # every rank has checked the run folder before rank 0 writes to it
        if not distributed or dist.get_rank() == 0:
            train_ids, val_ids = write_data(plan, tok, train_ids, val_ids)
            write_run(plan, tok.vocab_size, record)
        if distributed:
            dist.barrier()
        # each rank draws its own windows (shard_seed); rank 0's seed is plan.seed, as in one process
        train_s = RandomWindowSampler(train_ids, preset.block_size, plan.batch_size,
                                      seed=shard_seed(plan.seed))
        val_s = RandomWindowSampler(val_ids, preset.block_size, plan.batch_size, seed=plan.seed + 1)
        extra = {"preset": plan.preset_name, "model": record, "tokenizer": plan.tokenizer}
        print(f"tinyml train: {plan.preset_name} {label}, {model.num_parameters() / 1e6:.2f}M parameters, "
              f"{plan.tokenizer} tokenizer ({tok.vocab_size} tokens), {len(train_ids):,} train tokens, "
              f"device {device}, {tcfg.max_steps} steps of {plan.batch_size}x{preset.block_size}"
              f"{f' from step {plan.start_step}' if plan.resume else ''} -> {plan.out}")
        trainer_class = DistributedTrainer if distributed else Trainer
        trainer = trainer_class(model, train_s, val_s, tcfg, out_dir=plan.out, device=device,
                                extra_state=extra)
        summary = trainer.fit(resume=plan.resume)
    except MemoryError:
        raise CLIError(f"out of memory with --batch-size {plan.batch_size} ({plan.batch_size}x"
                       f"{preset.block_size} tokens a step) on {device}; lower --batch-size") from None
    return summary, model, tok


def sample(model, prompt_ids, tokens: int, seed: int, temperature: float = 0.8, top_k: int | None = 40,
           top_p: float | None = None) -> list[int]:
    """The prompt followed by `tokens` sampled ids, reproducible from `seed`."""
    tinyml.manual_seed(seed)
    return generate(model, [prompt_ids], tokens, temperature=temperature, top_k=top_k, top_p=top_p)[0]


def load_run(path: str):
    """(model in eval mode, tokenizer) from a run folder (or its checkpoint file)."""
    folder = os.path.dirname(path) if os.path.isfile(path) else path
    ckpt = path if os.path.isfile(path) else os.path.join(folder, CHECKPOINT)
    if not os.path.exists(ckpt) or not os.path.exists(os.path.join(folder, RUN_FILE)):
        raise UsageError(f"--ckpt {path}: expected a run folder with {CHECKPOINT} and {RUN_FILE}")
    run = read_run(folder)
    fields = dict(run["model"])
    model_class, config_class, _ = FAMILIES[fields.pop("family", "gpt")]
    if "dropout" in fields:
        fields["dropout"] = 0.0
    model = model_class(config_class(**fields))
    state = load_checkpoint(ckpt)
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, ValueError, KeyError) as e:
        why = str(e).splitlines()[0]
        raise CLIError(f"{ckpt} does not match {os.path.join(folder, RUN_FILE)}: {why}") from None
    return model.eval(), load_tokenizer(os.path.join(folder, DATA_FILES[0]))
