"""tinyml.train: the trainer, distillation, data pipelines and the `tinyml` command line.

Installed as `tinyml.train` (setup.py's package_dir); code here imports `tinyml...`.

    from tinyml.train import Trainer, TrainConfig
    Trainer(model, sampler, val_sampler, TrainConfig(max_steps=500), out_dir="run").fit()
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .schedule import WarmupCosine
from .trainer import TrainConfig, Trainer, make_optimizer

__all__ = ["load_checkpoint", "save_checkpoint", "WarmupCosine", "Trainer", "TrainConfig", "make_optimizer"]
