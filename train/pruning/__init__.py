"""Structured pruning of GPT models with Adapt-Pruner (Pan et al. 2025): attention heads and MLP
channels (structure.py), head dims, whole blocks and the residual width (axes.py), each removed with
every dependent weight; a GPT whose layers keep their own sizes and saves/loads with them (model.py);
the per-round sizing (allocate.py) and the adaptive, training-interleaved pruning loop with its
one-shot magnitude baseline (adapt.py). examples/pruning/ compares them with a model trained at the
target size from scratch."""
from .adapt import AdaptPruneConfig, adapt_prune, check_target, evaluate, layer_importance, magnitude_prune
from .axes import head_dim_scores, keep_top_dims, prune_blocks, prune_head_dims, prune_width, width_scores
from .model import PrunableGPT, PrunableGPTConfig, load_pruned, save_pruned
from .structure import group_scores, prunable_size, prune_layer

__all__ = ["AdaptPruneConfig", "adapt_prune", "check_target", "evaluate", "layer_importance",
           "magnitude_prune", "PrunableGPT", "PrunableGPTConfig", "load_pruned", "save_pruned",
           "group_scores", "prune_layer", "prunable_size", "head_dim_scores", "keep_top_dims", "prune_blocks",
           "prune_head_dims", "prune_width", "width_scores"]
