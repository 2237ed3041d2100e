"""Softmax-bottleneck diagnostic for a language model's output head (Godey et al. 2024, "Why do small
language models underperform? Studying LM saturation via the softmax bottleneck").

The logits are h W^T with W the (vocab, hidden) head, so their rank is at most min(vocab, hidden); a
small hidden size caps what the softmax can express, and a head whose singular values fall off fast
uses even less of it. This reports the head's singular value spectrum and its effective rank
(Roy & Vetterli 2007):

    sigma_1 >= ... >= sigma_r,  p_i = sigma_i / sum_j sigma_j,  erank(W) = exp(-sum_i p_i log p_i),

which is r for a flat spectrum and near 1 when one direction dominates.

    report = head_spectrum(model)            # {"singular_values": [...], "effective_rank": ..., ...}
    plot_head_spectra({"init": r0, "trained": r1}, "head_spectrum.png")
"""
from __future__ import annotations

import numpy as np

__all__ = ["output_head", "effective_rank", "head_spectrum", "plot_head_spectra"]


def output_head(model):
    """The (vocab, hidden) weight that makes the logits: lm_head, or the tied token embedding."""
    head = getattr(model, "lm_head", None)
    if head is not None:
        return head.weight
    for path in ("transformer.wte", "model.embed_tokens"):
        m = model
        for part in path.split("."):
            m = getattr(m, part, None)
        if m is not None:
            return m.weight
    raise ValueError(f"{type(model).__name__} has no lm_head and no tied token embedding (transformer.wte "
                     "or model.embed_tokens) to take as its output head")


def effective_rank(singular_values) -> float:
    """exp of the entropy of the singular values normalised to sum 1 (0 for an all-zero matrix)."""
    s = np.asarray(singular_values, dtype=np.float64)
    if s.ndim != 1 or (s < 0).any() or not np.isfinite(s).all():
        raise ValueError(f"effective_rank expects finite non-negative singular values, got shape {s.shape}")
    total = s.sum()
    if total == 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def head_spectrum(model_or_weight) -> dict:
    """Singular values of the output head (descending), normalised by the largest, its effective rank,
    and the rank bound min(vocab, hidden)."""
    is_model = hasattr(model_or_weight, "parameters")  # a Module; else a Tensor or an array
    w = output_head(model_or_weight) if is_model else model_or_weight
    a = w.detach().float().numpy().astype(np.float64) if hasattr(w, "detach") else np.asarray(w, np.float64)
    if a.ndim != 2:
        raise ValueError(f"head_spectrum expects a (vocab, hidden) matrix, got shape {a.shape}")
    s = np.linalg.svd(a, compute_uv=False)
    return {"shape": list(a.shape), "max_rank": int(min(a.shape)), "singular_values": s.tolist(),
            "normalised": (s / s[0]).tolist() if s[0] > 0 else s.tolist(),
            "effective_rank": effective_rank(s)}


def plot_head_spectra(reports: dict, path: str) -> str:
    """One line per report (label -> head_spectrum result): normalised singular value against index."""
    from .progress import require_matplotlib

    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    for label, rep in reports.items():
        s = rep["normalised"]
        ax.plot(range(1, len(s) + 1), s, label=f"{label} (effective rank {rep['effective_rank']:.1f} "
                                               f"of {rep['max_rank']})")
    ax.set_yscale("log")
    ax.set_xlabel("singular value index")
    ax.set_ylabel("sigma_i / sigma_1")
    ax.set_title("output head spectrum", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
