"""LoRA-XS (Bałazy et al. 2024, "LoRA-XS: Low-Rank Adaptation with Extremely Small Number of
Parameters"): the LoRA factors come from the pretrained weight and stay frozen; only a small
r x r matrix between them trains.

    W = U S V^T (truncated SVD, rank r):  A = V_r^T (r, in),  B = U_r S_r (out, r)    frozen
    h = W x + b + s * B R A dropout(x)      R: (r, r) ~ N(0, std 1e-5), the only trainable tensor
    s = alpha / r

r^2 trainable parameters per module (LoRA: r (in + out)). Merging adds s B R A to W.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinyml
import tinyml.nn as nn

from .lora import LoraConfig, LoraLinear, adapter_dtype, inject_linear_adapter


@dataclass
class LoraXSConfig(LoraConfig):
    """LoraConfig's fields; r and lora_alpha as in the LoRA-XS paper's code (s = alpha / r)."""

    peft_type: str = "LORA_XS"

    def inject(self, model: nn.Module, adapter_name: str) -> None:
        inject_linear_adapter(model, self, adapter_name, LoraXSLinear)


class LoraXSLinear(LoraLinear):
    """LoRA-XS on an nn.Linear: frozen A, B from the SVD of the base weight, trainable R."""

    adapter_containers = ("lora_A", "lora_B", "lora_R")

    def _create_weights(self, adapter_name: str, config, r: int) -> None:
        if "lora_R" not in self._modules:
            self.lora_R = nn.ModuleDict()
        W = self.base_layer.weight.detach().float().numpy().astype(np.float64)
        U, S, Vt = np.linalg.svd(W, full_matrices=False)  # W (out, in) = U diag(S) Vt
        dt, dev = adapter_dtype(self.base_layer), self.base_layer.weight.device
        A = self._new_linear(self.in_features, r)
        B = self._new_linear(r, self.out_features)
        R = self._new_linear(r, r)
        with tinyml.no_grad():
            A.weight.copy_(tinyml.tensor(Vt[:r], dtype=dt, device=dev))
            B.weight.copy_(tinyml.tensor(U[:, :r] * S[:r], dtype=dt, device=dev))
            if config.init_lora_weights:
                nn.init.normal_(R.weight, mean=0.0, std=1e-5)
        A.weight.requires_grad_(False)
        B.weight.requires_grad_(False)
        self.lora_A[adapter_name], self.lora_B[adapter_name], self.lora_R[adapter_name] = A, B, R

    def adapter_parameters(self, name: str):
        return [m.weight for k, m in self.lora_R.items() if k == name]

    def delete_adapter(self, name: str) -> None:
        super().delete_adapter(name)
        self.lora_R.pop(name)

    def lora_path(self, name: str, x):
        """s * B R A x for one adapter (no dropout)."""
        return self.lora_B[name](self.lora_R[name](self.lora_A[name](x)) * self.scaling[name])

    def get_delta_weight(self, name: str):
        """s * B R A, (out, in)."""
        B, R, A = self.lora_B[name].weight, self.lora_R[name].weight, self.lora_A[name].weight
        return (B @ R @ A) * self.scaling[name]
