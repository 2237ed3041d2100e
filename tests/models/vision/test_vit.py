"""ViT with Shifted Patch Tokenization and Locality Self-Attention against the same model built in PyTorch
(forward and every parameter gradient), SPT's tokens against a hand-built shifted stack, LSA's masked
diagonal, config round trip, learning, and errors."""
import numpy as np
import pytest
from tinyml.models.vision.vit import ViT, diagonal_shifts, patchify

import tinyml
from tinyml.testing import assert_close

torch = pytest.importorskip("torch")
tnn = torch.nn


class TorchAttention(tnn.Module):
    def __init__(self, dim, heads, dim_head, lsa):
        super().__init__()
        self.heads, self.dim_head, self.lsa = heads, dim_head, lsa
        self.norm = tnn.LayerNorm(dim)
        self.to_qkv = tnn.Linear(dim, 3 * heads * dim_head, bias=False)
        if lsa:
            self.temperature = tnn.Parameter(torch.log(torch.tensor(dim_head ** -0.5)))
        self.to_out = tnn.Linear(heads * dim_head, dim)

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = (t.reshape(B, N, self.heads, self.dim_head).transpose(1, 2)
                   for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
        dots = q @ k.transpose(-1, -2)
        if self.lsa:  # lucidrains' vit_for_small_dataset LSA, masked with -inf
            dots = (dots * self.temperature.exp()).masked_fill(torch.eye(N, dtype=torch.bool), float("-inf"))
        else:
            dots = dots * self.dim_head ** -0.5
        out = dots.softmax(-1) @ v
        return self.to_out(out.transpose(1, 2).reshape(B, N, -1))


class TorchFeedForward(tnn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm, self.fc1, self.fc2 = tnn.LayerNorm(dim), tnn.Linear(dim, hidden), tnn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(tnn.functional.gelu(self.fc1(self.norm(x))))


class TorchBlock(tnn.Module):
    def __init__(self, dim, heads, dim_head, mlp_dim, lsa):
        super().__init__()
        self.attn, self.ff = TorchAttention(dim, heads, dim_head, lsa), TorchFeedForward(dim, mlp_dim)

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.ff(x)


class TorchTokenizer(tnn.Module):
    def __init__(self, dim, p, channels, spt):
        super().__init__()
        self.p, self.spt = p, spt
        patch_dim = p * p * channels * (5 if spt else 1)
        if spt:
            self.norm = tnn.LayerNorm(patch_dim)
        self.proj = tnn.Linear(patch_dim, dim)

    def forward(self, x):
        if self.spt:  # PatchShifting of aanna0701/SPT_LSA_ViT: 4 diagonal half-patch shifts
            s = self.p // 2
            xp = tnn.functional.pad(x, (s, s, s, s))
            e = 2 * s
            x = torch.cat([x, xp[:, :, :-e, :-e], xp[:, :, :-e, e:], xp[:, :, e:, :-e], xp[:, :, e:, e:]], 1)
        B, C, H, W = x.shape
        p = self.p
        t = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1).reshape(B, -1, p * p * C)
        return self.proj(self.norm(t)) if self.spt else self.proj(t)


class TorchViT(tnn.Module):
    def __init__(self, image, p, classes, dim, depth, heads, dim_head, mlp_dim, channels, spt, lsa):
        super().__init__()
        self.to_patch_embedding = TorchTokenizer(dim, p, channels, spt)
        self.pos_embedding = tnn.Parameter(torch.randn(1, (image // p) ** 2 + 1, dim))
        self.cls_token = tnn.Parameter(torch.randn(1, 1, dim))
        self.blocks = tnn.ModuleList([TorchBlock(dim, heads, dim_head, mlp_dim, lsa) for _ in range(depth)])
        self.head_norm, self.head = tnn.LayerNorm(dim), tnn.Linear(dim, classes)

    def forward(self, x):
        t = self.to_patch_embedding(x)
        t = torch.cat([self.cls_token.expand(len(x), -1, -1), t], 1) + self.pos_embedding
        for block in self.blocks:
            t = block(t)
        return self.head(self.head_norm(t[:, 0]))


def _pair_models(spt, lsa, seed=0):
    tinyml.manual_seed(seed)
    kw = dict(image_size=8, patch_size=4, num_classes=5, dim=16, depth=2, heads=2, mlp_dim=24, channels=3,
              spt=spt, lsa=lsa, dim_head=8)
    ours = ViT(**kw)
    peer = TorchViT(8, 4, 5, 16, 2, 2, 8, 24, 3, spt, lsa)
    state = {k: torch.tensor(v.detach().numpy()) for k, v in ours.state_dict().items()}
    peer.load_state_dict(state, strict=True)  # same names, same shapes: the structures agree
    return ours, peer


@pytest.mark.parametrize("spt,lsa", [(False, False), (True, False), (False, True), (True, True)])
def test_vit_forward_and_gradients_match_torch(spt, lsa):
    ours, peer = _pair_models(spt, lsa)
    x = np.random.default_rng(1).random((3, 3, 8, 8), dtype=np.float32)
    labels = np.array([0, 3, 4])
    out = ours(tinyml.tensor(x))
    ref = peer(torch.tensor(x))
    assert out.shape == (3, 5)
    assert_close(out.detach().numpy(), ref.detach().numpy(), rtol=1e-4, atol=1e-5)
    tinyml.nn.functional.cross_entropy(out, tinyml.tensor(labels)).backward()
    torch.nn.functional.cross_entropy(ref, torch.tensor(labels)).backward()
    peer_params = dict(peer.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        assert_close(p.grad.numpy(), peer_params[name].grad.numpy(), rtol=1e-3, atol=1e-5, msg=name)


def test_spt_tokens_equal_hand_built_shifted_concat():
    rng = np.random.default_rng(2)
    x = rng.random((2, 2, 8, 8), dtype=np.float32)
    p, s = 4, 2
    # Hand-built: shifted[i, j] = x[i - dy, j - dx] where in range, 0 elsewhere.
    def shifted(dy, dx):
        out = np.zeros_like(x)
        out[:, :, max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = \
            x[:, :, max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)]
        return out
    stack = np.concatenate([x, shifted(s, s), shifted(s, -s), shifted(-s, s), shifted(-s, -s)], axis=1)
    assert_close(diagonal_shifts(tinyml.tensor(x), s).numpy(), stack)
    # Token (row 1, col 0) is the 4x4 block at rows 4..7, cols 0..3 of all 10 channels, (p1 p2 c) order.
    expected_token = stack[:, :, 4:8, 0:4].transpose(0, 2, 3, 1).reshape(2, -1)
    patches = patchify(tinyml.tensor(stack), p, p).numpy()
    assert patches.shape == (2, 4, p * p * 10)
    assert_close(patches[:, 2], expected_token)
    # The model's SPT = Linear(LayerNorm(those patches)).
    tinyml.manual_seed(0)
    model = ViT(8, p, 3, 12, 1, 2, 16, channels=2, spt=True, dim_head=6)
    spt = model.to_patch_embedding
    tokens = spt(tinyml.tensor(x)).detach().numpy()
    mu, var = patches.mean(-1, keepdims=True), patches.var(-1, keepdims=True)
    gamma, beta = spt.norm.weight.detach().numpy(), spt.norm.bias.detach().numpy()
    normed = (patches - mu) / np.sqrt(var + 1e-5) * gamma + beta
    manual = normed @ spt.proj.weight.detach().numpy().T + spt.proj.bias.detach().numpy()
    assert_close(tokens, manual, rtol=1e-4, atol=1e-5)


def test_lsa_attention_diagonal_is_zero_and_plain_is_not():
    tinyml.manual_seed(0)
    x = tinyml.randn(2, 9, 16)
    for lsa in (True, False):
        model = ViT(6, 2, 3, 16, 1, 2, 32, channels=1, lsa=lsa, dim_head=8)
        w = model.blocks[0].attn.attention_weights(x).detach().numpy()
        assert w.shape == (2, 2, 9, 9)
        assert_close(w.sum(-1), np.ones((2, 2, 9)), rtol=1e-5, atol=1e-5)
        diag = np.diagonal(w, axis1=-2, axis2=-1)
        if lsa:
            assert (diag == 0).all()
        else:
            assert diag.min() > 0
    temperature = ViT(6, 2, 3, 16, 1, 2, 32, channels=1, lsa=True, dim_head=8).blocks[0].attn.temperature
    assert temperature.requires_grad and np.isclose(np.exp(-temperature.item()), np.sqrt(8))


def test_config_round_trip_and_mean_pool():
    model = ViT((8, 12), (4, 2), 7, 16, 1, 2, 16, channels=1, lsa=True, dim_head=4, pool="mean")
    clone = ViT.from_config(model.config)
    clone.load_state_dict(model.state_dict())
    x = tinyml.randn(2, 1, 8, 12)
    assert_close(clone(x).detach().numpy(), model(x).detach().numpy())
    assert model.num_classes == 7 and model.in_channels == 1


def test_spt_lsa_vit_learns_digits_in_a_few_steps():
    from tinyml.data.digits import digits_split

    (x, y), _ = digits_split(seed=0)
    x, y = tinyml.tensor(x[:128, None]), tinyml.tensor(y[:128])
    tinyml.manual_seed(0)
    model = ViT(8, 2, 10, 32, 2, 4, 64, channels=1, spt=True, lsa=True, dim_head=8)
    opt = tinyml.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(20):
        loss = tinyml.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first, (first, loss.item())


@pytest.mark.parametrize("kwargs,match", [
    (dict(image_size=10, patch_size=4), r"image_size \(10, 10\) must be divisible by patch_size \(4, 4\)"),
    (dict(image_size=8, patch_size=1, spt=True), "patch_size 1"),
    (dict(image_size=8, patch_size=(4, 2), spt=True), "square"),
    (dict(image_size=8, patch_size=4, pool="max"), "pool"),
    (dict(image_size=8, patch_size=4, heads=0), "heads must be a positive integer, got 0"),
])
def test_bad_configuration_raises(kwargs, match):
    base = dict(num_classes=3, dim=8, depth=1, heads=2, mlp_dim=8, channels=1, dim_head=4)
    with pytest.raises(ValueError, match=match):
        ViT(**{**base, **kwargs})


def test_wrong_input_shape_names_both_shapes():
    model = ViT(8, 4, 3, 8, 1, 2, 8, channels=1, dim_head=4)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\), got \(2, 3, 8, 8\)"):
        model(tinyml.randn(2, 3, 8, 8))


@pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device (nor Triton's interpreter)")
def test_cuda_matches_cpu_forward_and_backward():
    tinyml.manual_seed(0)
    model = ViT(4, 2, 3, 8, 1, 2, 8, channels=1, spt=True, lsa=True, dim_head=4)
    x = tinyml.randn(2, 1, 4, 4)
    model(x).sum().backward()
    cpu_grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    model.zero_grad()
    model.to("cuda")
    out = model(x.to("cuda"))
    assert out.device.type == "cuda"
    out.sum().backward()
    for name, p in model.named_parameters():
        assert_close(p.grad.cpu().numpy(), cpu_grads[name], rtol=1e-4, atol=1e-5, msg=name)
