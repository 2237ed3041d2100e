"""tinyml.train: a generic trainer and, beside it, the tasks trained with it.

Installed as `tinyml.train` (setup.py's package_dir); code here imports `tinyml...`.

    trainer.py     Trainer, TrainConfig: AdamW, warmup + cosine, clipping, gradient accumulation, evaluation,
                   early stop, checkpoints with bit-exact resume, progress, metrics.jsonl, loss.png
    batches.py     what a batch source may be; model_loss, the default loss_fn
    checkpoint.py  atomic safetensors checkpoints and the rules for resuming from one
    schedule.py    WarmupCosine
    progress.py    the progress bar, metrics.jsonl, loss.png
    lm.py          language modelling: text, tokenizer, token files, a GPT from a preset, sampling
    presets.py     the GPT presets of `tinyml train --config` (baby, small)
    runs.py        a `tinyml train` run folder: flags to a plan, resume rules, run.json
    cli.py         the `tinyml` command (train, sample); argtypes.py checks its flags
    commands/      the other subcommands, one module each: finetune, distill, sweep, arithmetic
    distill/       knowledge distillation: KD losses, layer inheritance, sequence-level KD, BERT MLM runs
    tasks/         Teaching Arithmetic's formats, the Mix Distillation mixer, TinyGSM problems, a sandbox
                   for model-written Python
    certified/     interval bound propagation training (IBP, SABR), PGD, certified accuracy
    darts/         differentiable architecture search with a softmax temperature
    detect/        object detection data: a synthetic infrared small-target set, COCO / YOLO datasets,
                   augmentation, drawing
    monitors.py    StabilityMonitor: attention logits, log Z, update sizes, written to metrics.jsonl
    distributed_run.py  DistributedTrainer and the mpiexec relaunch (tinyml.distributed over MPI)

The Trainer knows no task: a task is a module beside it that builds the model and the batches
and hands the Trainer `loss_fn(model, batch) -> loss` (lm.py uses the default, the loss the model
returns). Knowledge distillation, for instance, with a frozen teacher in eval mode (imports:
functools, tinyml, tinyml.nn.functional as F, and Trainer, TrainConfig from here):

    def distill_loss(student, batch, teacher, tau=2.0, alpha=0.5):
        x, y = batch                                            # (B, T) token ids, next-token targets
        logits, hard = student(x, y)                            # (B, T, V); cross-entropy against y
        with tinyml.no_grad():
            target = F.softmax(teacher(x)[0] / tau, dim=-1)     # the teacher's distribution, (B, T, V)
        log_p = F.log_softmax(logits / tau, dim=-1)
        kl = F.kl_div(log_p.flatten(0, 1), target.flatten(0, 1), reduction="batchmean")  # per token
        return alpha * hard + (1 - alpha) * tau**2 * kl

    Trainer(student, train_sampler, val_sampler, TrainConfig(max_steps=500), out_dir="run",
            loss_fn=functools.partial(distill_loss, teacher=teacher)).fit()
"""
from .batches import model_loss
from .checkpoint import load_checkpoint, save_checkpoint
from .schedule import WarmupCosine
from .trainer import TrainConfig, Trainer, make_optimizer

__all__ = ["load_checkpoint", "save_checkpoint", "model_loss", "WarmupCosine", "Trainer", "TrainConfig",
           "make_optimizer"]
