"""Structured pruning of GPT models with Adapt-Pruner (Pan et al. 2025): attention heads and MLP
channels removed with every dependent weight (structure.py), a GPT whose layers keep their own sizes
and saves/loads with them (model.py), and the adaptive, training-interleaved pruning loop with its
one-shot magnitude baseline (adapt.py). examples/pruning/ compares them with a model trained at the
target size from scratch."""
from .adapt import AdaptPruneConfig, adapt_prune, check_target, evaluate, layer_importance, magnitude_prune
from .model import PrunableGPT, PrunableGPTConfig, load_pruned, save_pruned
from .structure import group_scores, prunable_size, prune_layer

__all__ = ["AdaptPruneConfig", "adapt_prune", "check_target", "evaluate", "layer_importance",
           "magnitude_prune", "PrunableGPT", "PrunableGPTConfig", "load_pruned", "save_pruned",
           "group_scores", "prune_layer", "prunable_size"]
