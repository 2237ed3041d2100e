"""Masked-language-model data and BERT run folders: what DistilBERT distils from and into.

    batches = MLMBatches(ids, block_size=64, batch_size=12, mask_token_id=65, vocab_size=66, seed=0)
    input_ids, attention_mask, labels = batches.next_batch()     # BERT's 15% masking, 80/10/10
    summary = train_mlm_teacher("runs/bert", steps=600)          # a small BERT on the bundled corpus
    model, tok, record = load_bert_run("runs/bert")

A BERT run folder is a `tinyml train` folder (run.json, tokenizer.json, train.bin, val.bin,
checkpoint.safetensors, metrics.jsonl, loss.png) whose run.json says "architecture": "bert" and
holds the BertConfig and the [MASK] id. The vocabulary is the char tokenizer's plus [MASK] (the
last id); windows of real text have no padding, so the attention mask is all ones.
"""
from __future__ import annotations

import json
import os

import numpy as np
from tinyml.models import BertConfig, BertForMaskedLM, mask_tokens

import tinyml
from tinyml.data import (
    CharTokenizer,
    RandomWindowSampler,
    load_tokenizer,
    load_tokens,
    read_text,
    shakespeare_split,
    split_text,
    write_tokens,
)

from ..checkpoint import load_checkpoint
from ..runs import RUN_FILE, CLIError
from ..trainer import CHECKPOINT, TrainConfig, Trainer

ARCHITECTURE = "bert"


class MLMBatches:
    """Random windows of `ids` with BERT's masking applied: (input_ids, attention_mask, labels),
    each (batch_size, block_size), labels -100 where nothing is predicted. Windows and masks come
    from own generators seeded by `seed`; state_dict/load_state_dict resume both."""

    def __init__(self, ids, block_size: int, batch_size: int, mask_token_id: int, vocab_size: int,
                 seed: int = 0, mlm_probability: float = 0.15):
        # the window sampler yields block_size + 1 tokens split in two; one window of block_size is x + y[-1:]
        self.windows = RandomWindowSampler(ids, block_size - 1, batch_size, seed=seed)
        self.mask_token_id, self.vocab_size = int(mask_token_id), int(vocab_size)
        self.mlm_probability = mlm_probability
        self.rng = np.random.Generator(np.random.PCG64(seed + 7919))

    def next_batch(self):
        x, y = self.windows.next_batch()
        ids = np.concatenate([x, y[:, -1:]], axis=1)
        inputs, labels = mask_tokens(ids, self.mask_token_id, self.vocab_size, self.mlm_probability,
                                     rng=self.rng)
        return inputs, np.ones_like(inputs), labels

    def state_dict(self) -> dict:
        return {"windows": self.windows.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.windows.load_state_dict(state["windows"])
        self.rng.bit_generator.state = state["rng"]


def mlm_loss(model, batch):
    """The MLM cross-entropy a BertForMaskedLM computes on (input_ids, attention_mask, labels)."""
    input_ids, attention_mask, labels = batch
    return model(input_ids, attention_mask, labels=labels)[1]


def write_bert_run(out: str, config: BertConfig, mask_token_id: int, block_size: int, extra: dict) -> None:
    record = {"architecture": ARCHITECTURE, "model": config.to_dict(), "mask_token_id": int(mask_token_id),
              "block_size": int(block_size), **extra}
    path = os.path.join(out, RUN_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, path)


def train_mlm_teacher(out: str, data: str | None = None, n_layer: int = 4, hidden: int = 128, heads: int = 4,
                      block_size: int = 64, batch_size: int = 12, steps: int = 600, lr: float = 1e-3,
                      seed: int = 1337, device: str = "cpu", eval_interval: int = 200, eval_iters: int = 10,
                      progress: bool = True) -> dict:
    """Train a BertForMaskedLM on `data` (a text file; default the bundled Shakespeare) with a char
    tokenizer, into the run folder `out`. Returns the Trainer's summary."""
    tinyml.manual_seed(seed)
    train_text, val_text = split_text(read_text(data), 0.1) if data else shakespeare_split(0.1)
    tok = CharTokenizer.from_text(train_text + val_text)
    mask_id, vocab = tok.vocab_size, tok.vocab_size + 1
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=n_layer,
                     num_attention_heads=heads, intermediate_size=4 * hidden,
                     max_position_embeddings=block_size, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(out, CHECKPOINT)):
        raise CLIError(f"{out} already holds a checkpoint; choose another folder")
    tok.save(os.path.join(out, "tokenizer.json"))
    train_ids = write_tokens(os.path.join(out, "train.bin"), tok.encode(train_text), vocab)
    val_ids = write_tokens(os.path.join(out, "val.bin"), tok.encode(val_text), vocab)
    write_bert_run(out, cfg, mask_id, block_size, {"tokenizer": "char", "vocab_size": vocab, "seed": seed,
                                                   "data": data or "shakespeare (bundled)", "steps": steps,
                                                   "batch_size": batch_size})
    model = BertForMaskedLM(cfg).to(device)
    tcfg = TrainConfig(max_steps=steps, lr=lr, min_lr=lr / 10, warmup_steps=min(100, max(steps // 10, 1)),
                       eval_interval=min(eval_interval, steps), eval_iters=eval_iters, progress=progress)
    train_b = MLMBatches(train_ids, block_size, batch_size, mask_id, vocab, seed=seed)
    val_b = MLMBatches(val_ids, block_size, batch_size, mask_id, vocab, seed=seed + 1)
    return Trainer(model, train_b, val_b, tcfg, out_dir=out, device=device, loss_fn=mlm_loss,
                   extra_state={"model": cfg.to_dict()}).fit()


def is_bert_run(record: dict) -> bool:
    return record.get("architecture") == ARCHITECTURE


def load_bert_run(folder: str):
    """(BertForMaskedLM in eval mode, tokenizer, run.json's record) from a BERT run folder."""
    with open(os.path.join(folder, RUN_FILE)) as f:
        record = json.load(f)
    if not is_bert_run(record):
        raise CLIError(f"{os.path.join(folder, RUN_FILE)} is not a BERT run (no \"architecture\": \"bert\")")
    model = BertForMaskedLM(BertConfig(**record["model"]))
    state = load_checkpoint(os.path.join(folder, CHECKPOINT))
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise CLIError(f"{os.path.join(folder, CHECKPOINT)} does not match its {RUN_FILE}: "
                       f"{str(e).splitlines()[0]}") from None
    return model.eval(), load_tokenizer(os.path.join(folder, "tokenizer.json")), record


def load_token_files(folder: str) -> tuple:
    """(train ids, val ids) of a run folder."""
    return load_tokens(os.path.join(folder, "train.bin")), load_tokens(os.path.join(folder, "val.bin"))
