"""The GPT's stability options (Wortsman et al. 2023): qk-layernorm and z-loss, against a PyTorch
re-implementation of the same model (forward, loss and every parameter's gradient), the z-loss
against its formula, and the Hugging Face adapter with the options off or training-only."""
import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig

import tinyml

torch = pytest.importorskip("torch")

SIZES = dict(vocab_size=29, block_size=16, n_layer=2, n_head=2, n_embd=16)


def tiny_gpt(seed=0, **kw):
    tinyml.manual_seed(seed)
    return GPT(GPTConfig(**{**SIZES, **kw}))


def torch_gpt_loss(state: dict, cfg: GPTConfig, idx, targets):
    """GPT-2 with optional per-head LayerNorm on q and k and the PaLM z-loss, written in torch from
    the paper's equations: (logits, loss) with `state` as leaf tensors."""
    F = torch.nn.functional
    B, T = idx.shape
    C, H = cfg.n_embd, cfg.n_head
    D = C // H
    ln = lambda x, p: F.layer_norm(x, (x.shape[-1],), state[p + ".weight"], state[p + ".bias"],  # noqa: E731
                                   cfg.layer_norm_eps)
    lin = lambda x, p: F.linear(x, state[p + ".weight"], state[p + ".bias"])  # noqa: E731
    x = state["transformer.wte.weight"][idx] + state["transformer.wpe.weight"][:T]
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}."
        q, k, v = lin(ln(x, p + "ln_1"), p + "attn.c_attn").split(C, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        if cfg.qk_layernorm:
            q, k = ln(q, p + "attn.q_norm"), ln(k, p + "attn.k_norm")
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + lin(y, p + "attn.c_proj")
        h = F.gelu(lin(ln(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh")
        x = x + lin(h, p + "mlp.c_proj")
    logits = ln(x, "transformer.ln_f") @ state["transformer.wte.weight"].T  # (B, T, V)
    flat, tgt = logits.reshape(-1, cfg.vocab_size), targets.reshape(-1)
    loss = F.cross_entropy(flat, tgt, ignore_index=-100)
    if cfg.z_loss:
        keep = tgt != -100
        loss = loss + cfg.z_loss_coef * (torch.logsumexp(flat[keep], dim=-1) ** 2).mean()
    return logits, loss


def batch(seed=1, B=3, T=11):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, SIZES["vocab_size"], size=(B, T))
    targets = rng.integers(0, SIZES["vocab_size"], size=(B, T))
    targets[0, :4] = -100  # ignored tokens count in neither the cross-entropy nor the z-loss
    return idx, targets


@pytest.mark.parametrize("options", [{}, {"qk_layernorm": True}, {"z_loss": True, "z_loss_coef": 0.3},
                                     {"qk_layernorm": True, "z_loss": True, "z_loss_coef": 1e-2}])
def test_forward_and_gradients_match_torch(options):
    model = tiny_gpt(**options)
    for name, p in model.named_parameters():  # non-trivial norm gains and biases, so their gradients matter
        if name.endswith(("q_norm.weight", "k_norm.weight", "q_norm.bias", "k_norm.bias")):
            values = np.random.default_rng(len(name)).normal(1.0, 0.5, p.shape)
            p.data = tinyml.tensor(values.astype(np.float32))
    idx, targets = batch()
    logits, loss = model(tinyml.tensor(idx), tinyml.tensor(targets))
    loss.backward()
    state = {n: torch.tensor(p.detach().numpy(), requires_grad=True) for n, p in model.named_parameters()}
    t_logits, t_loss = torch_gpt_loss(state, model.config, torch.tensor(idx), torch.tensor(targets))
    t_loss.backward()
    np.testing.assert_allclose(logits.detach().numpy(), t_logits.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-5)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), state[name].grad.numpy(), rtol=1e-3, atol=1e-6,
                                   err_msg=name)


def test_options_off_add_no_parameters_and_change_nothing():
    base = tiny_gpt(seed=4)
    off = tiny_gpt(seed=4, qk_layernorm=False, z_loss=False)
    on = tiny_gpt(seed=4, qk_layernorm=True)
    assert [n for n, _ in off.named_parameters()] == [n for n, _ in base.named_parameters()]
    extra = {n for n, _ in on.named_parameters()} - {n for n, _ in base.named_parameters()}
    assert extra == {f"transformer.h.{i}.attn.{w}_norm.{b}" for i in range(2) for w in "qk"
                     for b in ("weight", "bias")}
    idx, targets = batch()
    (la, a), (lb, b) = base(tinyml.tensor(idx), tinyml.tensor(targets)), off(tinyml.tensor(idx),
                                                                             tinyml.tensor(targets))
    np.testing.assert_array_equal(la.detach().numpy(), lb.detach().numpy())
    assert a.item() == b.item()
    # a z-loss coefficient without z_loss on is not applied (the flag switches it)
    _, c = tiny_gpt(seed=4, z_loss_coef=0.5)(tinyml.tensor(idx), tinyml.tensor(targets))
    assert c.item() == a.item()


def test_z_loss_is_coef_times_mean_squared_log_normaliser():
    idx, targets = batch(seed=7)
    plain = tiny_gpt(seed=2)
    zl = tiny_gpt(seed=2, z_loss=True, z_loss_coef=0.25)
    logits, base = plain(tinyml.tensor(idx), tinyml.tensor(targets))
    _, with_z = zl(tinyml.tensor(idx), tinyml.tensor(targets))
    lg = logits.detach().numpy().astype(np.float64)[targets != -100]  # (N, V) over the counted tokens
    log_z = np.log(np.exp(lg).sum(-1))
    assert with_z.item() == pytest.approx(base.item() + 0.25 * np.mean(log_z ** 2), rel=1e-5)


def test_training_only_z_loss_keeps_the_hf_round_trip(tmp_path):
    transformers = pytest.importorskip("transformers")
    model = tiny_gpt(seed=5, z_loss=True).eval()
    model.save_pretrained(str(tmp_path))
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
    idx, _ = batch()
    with torch.no_grad():
        ref = hf(torch.tensor(idx)).logits.numpy()
    np.testing.assert_allclose(model(tinyml.tensor(idx))[0].detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="no qk-layernorm"):
        tiny_gpt(qk_layernorm=True).save_pretrained(str(tmp_path / "qk"))
