"""Distances and losses over pairs of embeddings, composed from other ops (autograd gives their
gradients): torch.nn.functional's pairwise_distance, cosine_embedding_loss, margin_ranking_loss.

    pairwise_distance(x1, x2, p, eps)  = || x1 - x2 + eps ||_p over the last dim
    cosine_embedding_loss(x1, x2, y)   = 1 - cos(x1, x2) where y = 1, max(0, cos - margin) where y = -1,
                                         cos = <x1, x2> / sqrt((|x1|^2 + 1e-12) (|x2|^2 + 1e-12)) (torch's)
    margin_ranking_loss(a, b, y)       = max(0, -y (a - b) + margin)
"""
from __future__ import annotations

from ..tensor import Tensor
from ._loss_common import reduce_loss
from .pointwise import clamp_min, where

__all__ = ["cosine_embedding_loss", "margin_ranking_loss", "pairwise_distance"]


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    return (x1 - x2 + eps).norm(p, dim=-1, keepdim=keepdim)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          reduction: str = "mean") -> Tensor:
    dot = (input1 * input2).sum(-1)
    cos = dot / ((input1 * input1).sum(-1) + 1e-12).mul((input2 * input2).sum(-1) + 1e-12).sqrt()
    loss = where(target == 1, 1 - cos, where(target == -1, clamp_min(cos - margin, 0.0), 0.0 * cos))
    return reduce_loss(loss, reduction)


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        reduction: str = "mean") -> Tensor:
    loss = clamp_min(-target * (input1 - input2) + margin, 0.0)
    return reduce_loss(loss, reduction)
