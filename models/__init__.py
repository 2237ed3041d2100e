"""tinyml.models: transformers (GPT, Llama, BERT), state space models, adapters, detection heads.

Installed as `tinyml.models` (setup.py's package_dir); code here imports `tinyml...`.
"""
