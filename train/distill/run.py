"""The job behind `tinyml distill`: a trained teacher run folder in, a student run folder out.

    plan = DistillPlan(teacher="runs/teacher", student="layers=2", method="logit", out="runs/student")
    summary, student, tok = distill(plan, device="cpu")

Methods: logit (word-level KD on real text: (1 - alpha) NLL + alpha T^2 KL), sequence (the teacher
continues prompts of real text and the student learns its continuations; alpha > 0 adds word-level
KD on them: Seq-KD + Word-KD), seqinter (Kim & Rush's sequence-level interpolation: of the teacher's
candidate continuations, the one closest to the real text by BLEU; seqinter.py) and distilbert
(BERT teacher, DistilBERT's 5/2/1 triple loss on masked text).
Students: baby or tiny (the sizes below, over the teacher's vocabulary and context) or layers=N
(the teacher with N layers). A student of the teacher's width and heads starts from teacher layers
0, 2, 4, ... (init.py), unless init="random". The validation loss is always the student's own loss
on held-out real text (next-token NLL, or MLM for BERT): the number `tinyml train` reports.

The student's run folder is a `tinyml train` folder written with train/lm.py's and train/runs.py's
functions (run.json, tokenizer.json, train.bin, val.bin, checkpoint, metrics.jsonl, loss.png),
with the distillation settings under run.json's "distill"; a GPT student samples with `tinyml sample`.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace

import numpy as np
from tinyml.models import BertForMaskedLM

import tinyml
from tinyml.data import RandomWindowSampler, read_text, split_text

from .. import lm
from ..batches import model_loss
from ..presets import PRESETS, Preset
from ..runs import RUN_FILE, CLIError, RunPlan, UsageError, read_run, write_run
from ..trainer import CHECKPOINT, TrainConfig, Trainer
from .init import check_same_vocabulary, inherited_layers, init_from_teacher, student_config
from .losses import DISTILBERT_TEMPERATURE, distilbert_loss, lm_distill_loss
from .mlm import MLMBatches, is_bert_run, load_bert_run, load_token_files, mlm_loss, write_bert_run
from .resume import PLAN_FIELDS, SEQUENCES_FILE, recorded_plan, trained_config
from .seqinter import reference_windows, seq_inter_sequences
from .sequence import SequenceBatches, generate_sequences, prompts_from_tokens

METHODS = ("logit", "sequence", "seqinter", "distilbert")
_baby = PRESETS["baby"]
# (layers, heads, width); the vocabulary and context are the teacher's
STUDENT_SIZES = {"baby": (_baby.n_layer, _baby.n_head, _baby.n_embd), "tiny": (2, 2, 64)}
PROMPT_LEN = 8  # real tokens the teacher continues in sequence-level KD
MAX_SEQUENCES = 4096


@dataclass
class DistillPlan:
    teacher: str
    student: str  # baby, tiny or layers=N
    method: str
    out: str
    data: str | None = None  # a text file; None: the teacher's own train.bin/val.bin
    steps: int = 2000
    batch_size: int = 12
    lr: float = 1e-3
    temperature: float | None = None  # None: 2
    alpha: float | None = None  # None: 0.5 for logit, 0 for sequence (the weight of word-level KD)
    seed: int = 1337
    eval_interval: int = 250
    eval_iters: int = 20
    init: str = "inherit"  # or random
    sequences: int | None = None  # sequence: teacher generations (None: steps x batch, at most 4096)
    gen_temperature: float = 1.0  # sequence: 0 greedy, > 0 sampled
    candidates: int = 4  # seqinter: the teacher's greedy continuation and candidates - 1 samples
    progress: bool = True
    resume: bool = False  # continue the run in `out` from its checkpoint (resume.py)


def parse_student(spec: str) -> tuple[str, int | None]:
    """("baby" | "tiny", None) or ("layers", N); ValueError for anything else."""
    if spec in STUDENT_SIZES:
        return spec, None
    name, _, n = spec.partition("=")
    if name == "layers" and n.isdigit() and int(n) >= 1:
        return "layers", int(n)
    raise ValueError(f"{spec!r}: expected baby, tiny or layers=N (N >= 1)")


def load_teacher(folder: str):
    """(model in eval mode, tokenizer, run.json) of a `tinyml train` run or a BERT run folder."""
    needed = (CHECKPOINT, RUN_FILE, "tokenizer.json")
    missing = [f for f in needed if not os.path.isfile(os.path.join(folder, f))]
    if not os.path.isdir(folder) or missing:
        why = "it is not a folder" if not os.path.isdir(folder) else "missing " + ", ".join(missing)
        raise UsageError(f"--teacher {folder}: expected a trained run folder (from tinyml train) with "
                         f"{', '.join(needed)}; {why}")
    record = read_run(folder)
    if is_bert_run(record):
        return load_bert_run(folder)
    model, tok = lm.load_run(folder)
    return model, tok, record


def _size_config(teacher, name: str):
    layers, heads, width = STUDENT_SIZES[name]
    cfg = teacher.config
    if isinstance(teacher, BertForMaskedLM):
        return replace(cfg, num_hidden_layers=layers, num_attention_heads=heads, hidden_size=width,
                       intermediate_size=4 * width)
    return replace(cfg, n_layer=layers, n_head=heads, n_embd=width, n_inner=None, dropout=0.0)


def _depth(cfg) -> int:
    return cfg.n_layer if hasattr(cfg, "n_layer") else cfg.num_hidden_layers


def _width(cfg) -> tuple:
    return (cfg.n_embd, cfg.n_head) if hasattr(cfg, "n_embd") else (cfg.hidden_size, cfg.num_attention_heads)


def build_student(teacher, spec: str, init: str = "inherit"):
    """(student, how it was initialised) for a student spec; layers=N is deeper than the teacher: refused."""
    kind, n = parse_student(spec)
    t_cfg = teacher.config
    if kind == "layers":
        if n > _depth(t_cfg):
            raise UsageError(f"--student layers={n}: the teacher has {_depth(t_cfg)} layers; a student has "
                             f"1 to {_depth(t_cfg)}")
        cfg = student_config(t_cfg, n)
    else:
        cfg = _size_config(teacher, kind)
    check_same_vocabulary(t_cfg.vocab_size, cfg.vocab_size)
    student = type(teacher)(cfg)
    n_s, n_t = _depth(cfg), _depth(t_cfg)
    if init == "random":
        return student, "fresh initialisation (--init random)"
    if _width(cfg) != _width(t_cfg) or n_s > n_t:
        return student, (f"fresh initialisation (width/heads {_width(cfg)} differ from the teacher's "
                         f"{_width(t_cfg)}: nothing to inherit)")
    layers = inherited_layers(n_t, n_s)
    init_from_teacher(student, teacher, layers)
    return student, f"teacher layers {layers}, embeddings and head inherited"


def _lm_objective(student, batch, teacher, temperature, alpha):
    # evaluation (the Trainer puts the model in eval mode) is the student's own NLL on real text
    if not student.training:
        return model_loss(student, batch)
    return lm_distill_loss(student, batch, teacher, temperature, alpha)


def _distilbert_objective(student, batch, teacher, temperature):
    if not student.training:
        return mlm_loss(student, batch)
    return distilbert_loss(student, teacher, *batch, temperature=temperature)["loss"]


def _token_data(plan: DistillPlan, tok):
    """(train ids, val ids) in the teacher's vocabulary: --data split 90/10, or the teacher's own files;
    on resume the run's own files."""
    if plan.resume:
        return load_token_files(plan.out)
    if plan.data is None:
        return load_token_files(plan.teacher)
    train_text, val_text = split_text(read_text(plan.data), 0.1)
    try:
        return tok.encode(train_text), tok.encode(val_text)
    except ValueError as e:
        raise CLIError(f"--data {plan.data}: {e}; the student shares the teacher's tokenizer. For text the "
                       "teacher cannot encode, distil at the sequence level through text: generate with "
                       "`tinyml sample --ckpt TEACHER` and train a student on it with "
                       "`tinyml train --data`") from None


def check_plan(plan: DistillPlan) -> None:
    if plan.method not in METHODS:
        raise UsageError(f"--method {plan.method!r}: unknown; choose one of: {', '.join(METHODS)}")
    parse_student(plan.student)
    if plan.resume:
        recorded_plan(plan.out)  # refuses a folder without a run to continue
    elif os.path.exists(os.path.join(plan.out, CHECKPOINT)):
        raise UsageError(f"--out {plan.out} already holds a checkpoint; pass --resume to continue that run "
                         "or choose another --out")
    if plan.alpha is not None and not 0.0 <= plan.alpha <= 1.0:
        raise UsageError(f"--alpha {plan.alpha}: must be in [0, 1] (the weight of the KD term)")


def distill(plan: DistillPlan, device: str = "cpu"):
    """Run the plan: (the Trainer's summary, the student, the tokenizer)."""
    check_plan(plan)
    teacher, tok, t_record = load_teacher(plan.teacher)
    bert = isinstance(teacher, BertForMaskedLM)
    if (plan.method == "distilbert") != bert:
        what = "BERT (masked LM); use --method distilbert" if bert else "GPT; distilbert needs a BERT teacher"
        raise UsageError(f"--method {plan.method}: the teacher in {plan.teacher} is a {what}")
    tinyml.manual_seed(plan.seed)
    student, how = build_student(teacher, plan.student, plan.init)
    if bert and _width(student.config) != _width(teacher.config):
        raise UsageError(f"--student {plan.student}: DistilBERT's cosine loss needs the teacher's width "
                         f"{_width(teacher.config)[0]}, this student is {_width(student.config)[0]} wide; "
                         "use --student layers=N")
    train_ids, val_ids = _token_data(plan, tok)
    block = t_record.get("block_size") if bert else teacher.config.block_size
    need = block + 1
    if len(train_ids) < need or len(val_ids) < need:
        raise CLIError(f"the text is too short: {len(train_ids)} train and {len(val_ids)} validation tokens, "
                       f"and the teacher's context of {block} needs at least {need} of each")
    teacher.to(device)
    student.to(device)
    T = plan.temperature if plan.temperature is not None else DISTILBERT_TEMPERATURE
    alpha = plan.alpha if plan.alpha is not None else (0.5 if plan.method == "logit" else 0.0)
    tcfg = TrainConfig(max_steps=plan.steps, lr=plan.lr, min_lr=plan.lr / 10,
                       warmup_steps=min(100, max(plan.steps // 10, 1)),
                       eval_interval=min(plan.eval_interval, plan.steps), eval_iters=plan.eval_iters,
                       progress=plan.progress)
    if plan.resume:
        tcfg = trained_config(plan.out, tcfg)
    settings = {"teacher": os.path.abspath(plan.teacher), "method": plan.method, "student": plan.student,
                "temperature": T, "alpha": None if bert else alpha, "init": how,
                "plan": {f: _recorded(plan, f) for f in PLAN_FIELDS}}
    width, heads = _width(student.config)
    flags = {"steps": plan.steps, "batch_size": plan.batch_size, "lr": plan.lr, "seed": plan.seed}
    run_plan = RunPlan(out=plan.out, resume=plan.resume, preset_name=plan.student, train=tcfg, flags=flags,
                       preset=Preset(_depth(student.config), heads, width, block, plan.batch_size, 0.0, tcfg),
                       batch_size=plan.batch_size, seed=plan.seed, tokenizer=tok.kind, vocab_size=None,
                       data=os.path.abspath(plan.data) if plan.data else t_record.get("data"),
                       record={"distill": settings})
    if bert:
        mask_id, vocab = t_record["mask_token_id"], teacher.config.vocab_size
        train_b = MLMBatches(train_ids, block, plan.batch_size, mask_id, vocab, seed=plan.seed)
        val_b = MLMBatches(val_ids, block, plan.batch_size, mask_id, vocab, seed=plan.seed + 1)
        loss_fn = functools.partial(_distilbert_objective, teacher=teacher, temperature=T)
    else:
        val_b = RandomWindowSampler(val_ids, block, plan.batch_size, seed=plan.seed + 1)
        loss_fn = functools.partial(_lm_objective, teacher=teacher, temperature=T, alpha=alpha)
        if plan.method == "seqinter" and plan.candidates > 1 and plan.gen_temperature <= 0:
            raise UsageError(f"--method seqinter with --candidates {plan.candidates} samples all but one "
                             "candidate: --gen-temperature must be > 0")
        if plan.method == "logit":
            train_b = RandomWindowSampler(train_ids, block, plan.batch_size, seed=plan.seed)
        else:
            train_b = _teacher_generations(plan, teacher, train_ids, block)
    train_ids, val_ids = lm.write_data(run_plan, tok, train_ids, val_ids)
    if bert:
        write_bert_run(plan.out, student.config, t_record["mask_token_id"], block,
                       {"tokenizer": t_record.get("tokenizer"), "vocab_size": t_record.get("vocab_size"),
                        "data": run_plan.data, "distill": settings, **flags})
    else:
        write_run(run_plan, tok.vocab_size, student.config.to_dict())
    print(f"tinyml distill: {plan.method} from {plan.teacher} ({type(teacher).__name__}, "
          f"{_layers(teacher.config)}, {_params(teacher) / 1e6:.2f}M) into {plan.student} "
          f"({_layers(student.config)}, {_params(student) / 1e6:.2f}M; {how}), T={T}"
          f"{'' if bert else f', alpha={alpha}'}, device {device}, {plan.steps} steps of "
          f"{plan.batch_size}x{block} -> {plan.out}")
    trainer = Trainer(student, train_b, val_b, tcfg, out_dir=plan.out, device=device, loss_fn=loss_fn,
                      extra_state={"model": student.config.to_dict(), "distill": settings})
    return trainer.fit(resume=plan.resume), student, tok


def _recorded(plan: DistillPlan, field: str):
    value = getattr(plan, field)
    return os.path.abspath(value) if field in ("teacher", "data") and value is not None else value


def _layers(cfg) -> str:
    n = _depth(cfg)
    return f"{n} layer{'' if n == 1 else 's'}"


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _teacher_generations(plan: DistillPlan, teacher, train_ids, block: int) -> SequenceBatches:
    """The teacher's generations as batches; written to the run folder, read back from it on resume
    (generating them again would need the same steps-dependent count and costs minutes)."""
    prompt_len = min(PROMPT_LEN, max(block // 2, 1))
    path = os.path.join(plan.out, SEQUENCES_FILE)
    if plan.resume:
        if not os.path.isfile(path):
            raise CLIError(f"--resume: {path} is missing; the teacher's generations of this run are gone")
        return SequenceBatches(np.load(path), prompt_len, plan.batch_size, seed=plan.seed)
    n = plan.sequences or min(plan.steps * plan.batch_size, MAX_SEQUENCES)
    prompts = prompts_from_tokens(train_ids, n, prompt_len, seed=plan.seed)
    if plan.method == "seqinter":
        prompts, refs = reference_windows(train_ids, n, prompt_len, block + 1 - prompt_len, seed=plan.seed)
        print(f"tinyml distill: the teacher writes {plan.candidates} candidate continuations (greedy + "
              f"sampled at temperature {plan.gen_temperature}) of {n} prompts; the one closest to the real "
              "text (BLEU) is kept")
        rows, bleu = seq_inter_sequences(teacher, prompts, refs, plan.candidates, plan.gen_temperature,
                                         seed=plan.seed)
        print(f"tinyml distill: mean BLEU of the kept continuations against the real text {bleu.mean():.3f}")
        return _keep_generations(plan, rows, prompt_len, path)
    mode = "greedy" if plan.gen_temperature == 0 else f"sampled at temperature {plan.gen_temperature}"
    print(f"tinyml distill: the teacher writes {n} sequences of {block + 1 - prompt_len} tokens ({mode}) "
          f"after {prompt_len}-token prompts from the training text")
    rows = generate_sequences(teacher, prompts, block + 1 - prompt_len, temperature=plan.gen_temperature,
                              seed=plan.seed)
    return _keep_generations(plan, rows, prompt_len, path)


def _keep_generations(plan: DistillPlan, rows, prompt_len: int, path: str) -> SequenceBatches:
    os.makedirs(plan.out, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npy"
    np.save(tmp, rows)
    os.replace(tmp, path)
    return SequenceBatches(rows, prompt_len, plan.batch_size, seed=plan.seed)
