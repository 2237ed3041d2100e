"""Vision Transformer, with the two switches of "Vision Transformer for Small-Size Datasets" (Lee, Lee &
Song 2021): Shifted Patch Tokenization (SPT) and Locality Self-Attention (LSA).

    model = ViT(image_size=8, patch_size=2, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128,
                channels=1, spt=True, lsa=True)
    logits = model(images)                     # images (B, C, H, W) -> logits (B, num_classes)

Plain ViT (spt=False, lsa=False; Dosovitskiy et al. 2021): the image is cut into P x P patches, each
flattened and mapped by a Linear to `dim`; a learned cls token is prepended, learned positions are added,
and `depth` pre-norm blocks x + MHSA(LN(x)), x + MLP(LN(x)) follow; the head is LN + Linear on the cls
token (pool="cls") or on the token mean (pool="mean").

SPT (spt=True): the image is concatenated channel-wise with its four diagonal shifts by half a patch
(s = P // 2; left-up, right-up, left-down, right-down, zero filled), giving 5C channels; the patches of
that stack are flattened, LayerNorm'd and mapped by a Linear to `dim`. Each token so also sees the pixels
of its neighbours, which widens the receptive field of tokenisation (the paper's code,
aanna0701/SPT_LSA_ViT PatchShifting, shifts by half a patch diagonally; lucidrains' vit_for_small_dataset
shifts by one pixel in the four cardinal directions).

LSA (lsa=True): attention softmax(M(q k^T) * exp(t)) v where t is a learned scalar initialised to
log(1 / sqrt(dim_head)) (a learned temperature T = exp(-t) that starts at sqrt(dim_head), as lucidrains'
vit_for_small_dataset.py stores it) and M sets the diagonal (a token attending to itself) to -inf, so
the attention weights are spread over the other tokens and the distribution sharpens.
"""
from __future__ import annotations

import math

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F


def _pair(value) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (tuple, list)) else (int(value), int(value))


def patchify(x, patch_height: int, patch_width: int):
    """(B, C, H, W) -> (B, (H/ph)(W/pw), ph*pw*C): einops 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'."""
    B, C, H, W = x.shape
    h, w = H // patch_height, W // patch_width
    x = x.reshape(B, C, h, patch_height, w, patch_width)
    x = x.permute(0, 2, 4, 3, 5, 1)                                      # (B, h, w, p1, p2, C)
    return x.reshape(B, h * w, patch_height * patch_width * C)


def diagonal_shifts(x, shift: int):
    """The input and its four diagonal shifts by `shift` pixels, zero filled: (B, C, H, W) -> (B, 5C, H, W).

    Order as PatchShifting in the paper's code: x, left-up, right-up, left-down, right-down, where
    left-up[i, j] = x[i - s, j - s] (the content moves down-right; pixels outside the image are 0)."""
    s = shift
    H, W = x.shape[-2:]
    padded = F.pad(x, (s, s, s, s))                                      # (B, C, H + 2s, W + 2s)
    left_up = padded[:, :, :H, :W]
    right_up = padded[:, :, :H, 2 * s:]
    left_down = padded[:, :, 2 * s:, :W]
    right_down = padded[:, :, 2 * s:, 2 * s:]
    return tinyml.cat([x, left_up, right_up, left_down, right_down], dim=1)


class PatchEmbedding(nn.Module):
    """Plain ViT tokenisation: flattened P x P patches -> Linear(P*P*C, dim)."""

    def __init__(self, dim: int, patch_size, channels: int):
        super().__init__()
        self.patch_height, self.patch_width = _pair(patch_size)
        self.proj = nn.Linear(self.patch_height * self.patch_width * channels, dim)

    def forward(self, x):
        return self.proj(patchify(x, self.patch_height, self.patch_width))   # (B, N, dim)


class ShiftedPatchTokenization(nn.Module):
    """SPT: [x, four diagonal half-patch shifts] -> patches -> LayerNorm(P*P*5C) -> Linear(P*P*5C, dim)."""

    def __init__(self, dim: int, patch_size, channels: int):
        super().__init__()
        self.patch_height, self.patch_width = _pair(patch_size)
        if self.patch_height != self.patch_width:
            raise ValueError(f"ShiftedPatchTokenization shifts diagonally by half a patch and needs square "
                             f"patches; got patch_size {(self.patch_height, self.patch_width)}")
        if self.patch_height < 2:
            raise ValueError(f"ShiftedPatchTokenization shifts by patch_size // 2 pixels, which is 0 for "
                             f"patch_size {self.patch_height}; use patch_size >= 2 or spt=False")
        self.shift = self.patch_height // 2
        patch_dim = self.patch_height * self.patch_width * 5 * channels
        self.norm = nn.LayerNorm(patch_dim)
        self.proj = nn.Linear(patch_dim, dim)

    def forward(self, x):
        x = diagonal_shifts(x, self.shift)                                   # (B, 5C, H, W)
        tokens = patchify(x, self.patch_height, self.patch_width)          # (B, N, P*P*5C)
        return self.proj(self.norm(tokens))                                 # (B, N, dim)


class FeedForward(nn.Module):
    """Pre-norm MLP: Linear(GELU(Linear(LN(x)))) with dropout after each Linear."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.fc2(self.dropout(self.act(self.fc1(self.norm(x))))))


class Attention(nn.Module):
    """Pre-norm multi-head self-attention; with lsa=True, Locality Self-Attention (module docstring).

    scores = q k^T * s, s = 1/sqrt(dim_head) (plain) or exp(temperature) (LSA, learned); LSA also masks
    the diagonal of the scores with -inf before the softmax."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0, lsa: bool = False):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head, self.lsa = heads, dim_head, lsa
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        if lsa:
            self.temperature = nn.Parameter(tinyml.tensor(math.log(dim_head ** -0.5), dtype=tinyml.float32))
        self.attn_dropout = nn.Dropout(dropout)
        self.to_out = nn.Linear(inner, dim)
        self.out_dropout = nn.Dropout(dropout)

    def _qkv(self, x):
        B, N, _ = x.shape
        q, k, v = self.to_qkv(self.norm(x)).chunk(3, dim=-1)
        shape = (B, N, self.heads, self.dim_head)
        return [t.reshape(shape).transpose(1, 2) for t in (q, k, v)]   # 3 x (B, H, N, D)

    def attention_weights(self, x):
        """The softmax attention weights (B, heads, N, N) for tokens x (B, N, dim), before dropout."""
        q, k, _ = self._qkv(x)
        return self._weights(q, k)

    def _weights(self, q, k):
        scores = q.matmul(k.transpose(-1, -2))                              # (B, H, N, N)
        if self.lsa:
            scores = scores * self.temperature.exp()
            n = scores.shape[-1]
            diagonal = tinyml.tensor(np.eye(n, dtype=bool), device=scores.device)
            scores = scores.masked_fill(diagonal, float("-inf"))
        else:
            scores = scores * (self.dim_head ** -0.5)
        return scores.softmax(dim=-1)

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = self._qkv(x)
        out = self.attn_dropout(self._weights(q, k)).matmul(v)             # (B, H, N, D)
        out = out.transpose(1, 2).reshape(B, N, self.heads * self.dim_head)
        return self.out_dropout(self.to_out(out))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float, lsa: bool):
        super().__init__()
        self.attn = Attention(dim, heads=heads, dim_head=dim_head, dropout=dropout, lsa=lsa)
        self.ff = FeedForward(dim, mlp_dim, dropout=dropout)

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.ff(x)


class ViT(nn.Module):
    """Vision Transformer classifier: forward(images (B, C, H, W)) -> logits (B, num_classes).

    spt / lsa switch on Shifted Patch Tokenization and Locality Self-Attention (module docstring);
    with both off it is the plain ViT baseline. `config` and `ViT.from_config` rebuild the model."""

    def __init__(self, image_size, patch_size, num_classes: int, dim: int, depth: int, heads: int,
                 mlp_dim: int, channels: int = 3, spt: bool = False, lsa: bool = False, dropout: float = 0.0,
                 emb_dropout: float = 0.0, dim_head: int = 64, pool: str = "cls"):
        super().__init__()
        image_height, image_width = _pair(image_size)
        patch_height, patch_width = _pair(patch_size)
        if min(image_height, image_width, patch_height, patch_width) < 1:
            raise ValueError(f"image_size {image_size} and patch_size {patch_size} must be positive")
        if image_height % patch_height or image_width % patch_width:
            raise ValueError(f"image_size {(image_height, image_width)} must be divisible by patch_size "
                             f"{(patch_height, patch_width)}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        for name, value in (("num_classes", num_classes), ("dim", dim), ("depth", depth), ("heads", heads),
                            ("mlp_dim", mlp_dim), ("channels", channels), ("dim_head", dim_head)):
            if int(value) < 1:
                raise ValueError(f"ViT: {name} must be a positive integer, got {value}")
        self.config = {"image_size": [image_height, image_width], "patch_size": [patch_height, patch_width],
                       "num_classes": int(num_classes), "dim": int(dim), "depth": int(depth),
                       "heads": int(heads), "mlp_dim": int(mlp_dim), "channels": int(channels),
                       "spt": bool(spt), "lsa": bool(lsa), "dropout": float(dropout),
                       "emb_dropout": float(emb_dropout), "dim_head": int(dim_head), "pool": pool}
        self.image_size = (image_height, image_width)
        self.num_classes, self.in_channels, self.pool = int(num_classes), int(channels), pool
        num_patches = (image_height // patch_height) * (image_width // patch_width)
        tokenizer = ShiftedPatchTokenization if spt else PatchEmbedding
        self.to_patch_embedding = tokenizer(dim, (patch_height, patch_width), channels)
        # Positions and cls token ~ N(0, 1) as in lucidrains' ViT (torch.randn).
        self.pos_embedding = nn.Parameter(tinyml.randn(1, num_patches + 1, dim))
        self.cls_token = nn.Parameter(tinyml.randn(1, 1, dim))
        self.emb_dropout = nn.Dropout(emb_dropout)
        self.blocks = nn.ModuleList([Block(dim, heads, dim_head, mlp_dim, dropout, lsa)
                                     for _ in range(depth)])
        self.head_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    @classmethod
    def from_config(cls, config: dict) -> ViT:
        return cls(**config)

    def tokens(self, images):
        """Images (B, C, H, W) -> transformer output tokens (B, 1 + N, dim); token 0 is the cls token."""
        expected = (self.in_channels, *self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"ViT expects images of shape (B, {self.in_channels}, {self.image_size[0]}, "
                             f"{self.image_size[1]}), got {tuple(images.shape)}")
        x = self.to_patch_embedding(images)                                 # (B, N, dim)
        B = x.shape[0]
        cls = self.cls_token.expand(B, 1, x.shape[-1])
        x = tinyml.cat([cls, x], dim=1) + self.pos_embedding                # (B, 1 + N, dim)
        x = self.emb_dropout(x)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, images):
        x = self.tokens(images)
        x = x[:, 0] if self.pool == "cls" else x.mean(dim=1)                # (B, dim)
        return self.head(self.head_norm(x))                                 # (B, num_classes)
