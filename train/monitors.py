"""Training-stability monitors for GPT models (Wortsman et al. 2023, "Small-scale proxies for
large-scale Transformer training instabilities"), attached by hooks: nothing in the model changes.

    monitor = StabilityMonitor(model, every=10).attach(trainer)   # records go to metrics.jsonl
    trainer.fit(); monitor.detach(); plot_monitors(monitor.records, "stability.png")

The Trainer has no callback seam, so `attach` wraps `trainer.optimizer.step` (gradients are there,
clipped, and the parameters are still the old ones) and registers forward hooks on the model and
on each attention block. Without a Trainer, `StabilityMonitor(model, optimizer=opt)` does the same
around any loop that calls opt.step(). Every `every`-th optimizer step it records, in one dict:

- attn_logit_max[l]: max over batch, heads and causal pairs of layer l's attention logits
  z_ij = q_i . k_j / sqrt(head_dim) (after qk-layernorm when the model has it), recomputed in the
  hook from the block's own c_attn on the block's input; their growth precedes divergence.
- attn_entropy[l]: mean over rows of -sum_j p_ij log p_ij, p = softmax over the causal row; an
  entropy collapse towards 0 is the same failure seen from the softmax's side.
- log_z_mean, log_z_std: log Z = logsumexp over the vocabulary of the output logits, per token;
  output-logit divergence drives it far from 0, z-loss holds it there.
- param_rms, grad_rms, update_rms: RMS of each parameter tensor (by its name), of its gradient as
  the optimizer sees it, and of the step's change p_new - p_old.
- adam_sqrt_v_over_eps: RMS over a tensor's entries of sqrt(v_hat) / eps, v_hat = exp_avg_sq /
  (1 - beta2^t), AdamW's denominator against its epsilon: near or below 1 the eps term dominates
  and the update shrinks (the paper's "AdamW epsilon" instability); adam_frac_below_eps is the
  fraction of entries with sqrt(v_hat) < eps.
"""
from __future__ import annotations

import math
import os

import numpy as np
from tinyml.models.transformer.gpt import CausalSelfAttention

import tinyml

RECORD_KIND = "stability"  # metrics.jsonl records of this module carry kind="stability"


def attention_logits(attn: CausalSelfAttention, x) -> np.ndarray:
    """Layer `attn`'s pre-softmax logits on its input x (B, T, C): (B, H, T, T) float64, with the
    positions a causal mask hides set to -inf."""
    B, T, _ = x.shape
    H, D = attn.n_head, attn.head_dim
    with tinyml.no_grad():
        q, k, _ = attn.c_attn(x).split(H * D, dim=2)  # H * D < C in a pruned model
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, H, D).transpose(1, 2)
        if attn.qk_layernorm:
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = q.detach().float().numpy(), k.detach().float().numpy()
    scale = getattr(attn, "attn_scale", None)  # muP's sqrt(d_base)/d; None: 1/sqrt(D)
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    scores = np.einsum("bhtd,bhsd->bhts", q.astype(np.float64), k.astype(np.float64)) * scale
    scores[..., np.triu(np.ones((T, T), dtype=bool), 1)] = -np.inf
    return scores


def attention_stats(scores: np.ndarray) -> tuple[float, float]:
    """(max logit, mean row entropy of the softmax) of (..., T, S) logits with -inf where masked."""
    finite = scores[np.isfinite(scores)]
    top = float(finite.max()) if finite.size else float("nan")
    m = scores.max(-1, keepdims=True)
    e = np.exp(scores - m)
    p = e / e.sum(-1, keepdims=True)
    logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    return top, float((-(p * logp).sum(-1)).mean())


def log_normaliser(logits) -> np.ndarray:
    """log Z = logsumexp over the last dim of the logits, for every token (float64)."""
    lg = logits.detach().float().numpy().astype(np.float64)
    m = lg.max(-1, keepdims=True)
    return (m + np.log(np.exp(lg - m).sum(-1, keepdims=True)))[..., 0].reshape(-1)


def rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64)))) if a.size else 0.0


def adam_eps_ratio(optimizer, param) -> tuple[float, float] | None:
    """(RMS of sqrt(v_hat)/eps, fraction of entries with sqrt(v_hat) < eps) of `param` under an
    Adam-family optimizer, or None before its first step or for an optimizer without exp_avg_sq."""
    state = optimizer.state.get(param) if hasattr(optimizer.state, "get") else None
    if not state or "exp_avg_sq" not in state:
        return None
    group = next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))
    t = float(state["step"].item() if isinstance(state["step"], tinyml.Tensor) else state["step"])
    v_hat = state["exp_avg_sq"].detach().float().numpy().astype(np.float64) / (1 - group["betas"][1] ** t)
    root = np.sqrt(v_hat)
    return rms(root / group["eps"]), float(np.mean(root < group["eps"]))


class StabilityMonitor:
    """Records the module docstring's quantities every `every` optimizer steps into `records`
    (and into a Trainer's metrics.jsonl once attached). Hooks fire on training forwards only
    (model.training), so evaluations do not count; with gradient accumulation the step's
    micro-batches are pooled (max of maxima, mean of entropies, log Z over all their tokens)."""

    def __init__(self, model, every: int = 10, optimizer=None):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every!r}")
        self.model, self.every = model, every
        self.layers = [m for _, m in model.named_modules() if isinstance(m, CausalSelfAttention)]
        if not self.layers:
            raise ValueError(f"StabilityMonitor found no GPT attention block (CausalSelfAttention) in "
                             f"{type(model).__name__}")
        self.names = {id(p): n for n, p in model.named_parameters()}
        self.records: list[dict] = []
        self.step = 0  # optimizer steps seen
        self._metrics = None
        self._optimizer, self._original_step = None, None
        self._pending = self._empty()
        self._handles = [model.register_forward_hook(self._on_output)]
        self._handles += [m.register_forward_hook(self._layer_hook(i)) for i, m in enumerate(self.layers)]
        if optimizer is not None:
            self._wrap(optimizer)

    def attach(self, trainer) -> StabilityMonitor:
        """Watch `trainer`: its optimizer's steps, and its metrics.jsonl for the records."""
        if trainer.model is not self.model:
            raise ValueError("attach: the trainer trains another model than this monitor watches")
        self.step, self._metrics = trainer.step, trainer.metrics
        self._wrap(trainer.optimizer)
        return self

    def detach(self) -> None:
        """Remove the hooks and restore the optimizer's own step."""
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._optimizer is not None:
            del self._optimizer.step  # the instance attribute; the class's step shows again
            self._optimizer = None

    # ---- hooks ------------------------------------------------------------------------------------
    def _due(self) -> bool:
        return self.model.training and (self.step + 1) % self.every == 0

    def _empty(self) -> dict:
        n = len(self.layers)
        return {"max": [-math.inf] * n, "entropy": [[] for _ in range(n)], "log_z": []}

    def _layer_hook(self, i: int):
        def hook(module, args, output):
            cache = args[1] if len(args) > 1 else None
            if self._due() and cache is None:
                top, entropy = attention_stats(attention_logits(module, args[0]))
                self._pending["max"][i] = max(self._pending["max"][i], top)
                self._pending["entropy"][i].append(entropy)
        return hook

    def _on_output(self, module, args, output):
        if self._due():
            logits = output[0] if isinstance(output, tuple) else output
            self._pending["log_z"].append(log_normaliser(logits))

    def _wrap(self, optimizer) -> None:
        if self._optimizer is not None:
            raise ValueError("this monitor already watches an optimizer")
        self._optimizer, original = optimizer, optimizer.step

        def step(*args, **kwargs):
            if not (self.step + 1) % self.every:
                before = self._before_step()
                out = original(*args, **kwargs)
                self._after_step(before)
            else:
                out = original(*args, **kwargs)
            self.step += 1
            return out

        optimizer.step = step

    def _before_step(self) -> dict:
        params = [p for g in self._optimizer.param_groups for p in g["params"] if id(p) in self.names]
        return {id(p): (p, p.detach().float().numpy().copy(),
                        None if p.grad is None else p.grad.detach().float().numpy()) for p in params}

    def _after_step(self, before: dict) -> None:
        pending, self._pending = self._pending, self._empty()
        log_z = np.concatenate(pending["log_z"]) if pending["log_z"] else np.zeros(0)
        rec = {"step": self.step + 1, "kind": RECORD_KIND,
               "attn_logit_max": [None if m == -math.inf else m for m in pending["max"]],
               "attn_entropy": [float(np.mean(e)) if e else None for e in pending["entropy"]],
               "log_z_mean": float(log_z.mean()) if log_z.size else None,
               "log_z_std": float(log_z.std()) if log_z.size else None,
               "param_rms": {}, "grad_rms": {}, "update_rms": {}, "adam_sqrt_v_over_eps": {},
               "adam_frac_below_eps": {}}
        for p, old, grad in before.values():
            name = self.names[id(p)]
            new = p.detach().float().numpy()
            rec["param_rms"][name] = rms(new)
            rec["update_rms"][name] = rms(new - old)
            if grad is not None:
                rec["grad_rms"][name] = rms(grad)
            ratio = adam_eps_ratio(self._optimizer, p)
            if ratio is not None:
                rec["adam_sqrt_v_over_eps"][name], rec["adam_frac_below_eps"][name] = ratio
        self.records.append(rec)
        if self._metrics is not None:
            self._metrics.write(rec)


def plot_monitors(records: list[dict], path: str) -> bool:
    """A 2x3 PNG of the records against step: max attention logit and attention entropy per layer,
    log Z (mean with a +-std band), and the median over parameter tensors of param, grad and
    update RMS. False (nothing written) without stability records."""
    records = [r for r in records if r.get("kind") == RECORD_KIND]
    if not records:
        return False
    from .progress import require_matplotlib

    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), dpi=100)
    as_float = lambda v: float("nan") if v is None else v  # noqa: E731
    for key, ax, title in (("attn_logit_max", axes[0, 0], "max attention logit"),
                           ("attn_entropy", axes[0, 1], "attention entropy (nats)")):
        for layer in range(len(records[0][key])):
            ax.plot(steps, [as_float(r[key][layer]) for r in records], label=f"layer {layer}")
        ax.set_title(title)
        ax.legend(fontsize=7)
    mean = np.array([as_float(r["log_z_mean"]) for r in records])
    std = np.array([as_float(r["log_z_std"]) for r in records])
    axes[0, 2].plot(steps, mean)
    axes[0, 2].fill_between(steps, mean - std, mean + std, alpha=0.3)
    axes[0, 2].set_title("output log Z (mean +- std)")
    for key, ax in (("param_rms", axes[1, 0]), ("grad_rms", axes[1, 1]), ("update_rms", axes[1, 2])):
        ax.plot(steps, [np.median(list(r[key].values())) if r[key] else np.nan for r in records])
        ax.set_title(f"{key.replace('_', ' ')} (median over tensors)")
        ax.set_yscale("log")
    for ax in axes.flat:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return True
