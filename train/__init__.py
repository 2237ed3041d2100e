"""tinyml.train: the trainer, distillation, data pipelines and the `tinyml` command line.

Installed as `tinyml.train` (setup.py's package_dir); code here imports `tinyml...`.
"""
