"""train/monitors.py on a tiny GPT: attention logits and entropy and output log Z against torch,
parameter / gradient / update RMS and AdamW's sqrt(v_hat)/eps against their definitions, the
Trainer attachment (metrics.jsonl, training forwards only) and the plot."""
import json
import math

import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig
from tinyml.train.monitors import StabilityMonitor, attention_logits, attention_stats, plot_monitors
from tinyml.train.trainer import TrainConfig, Trainer, make_optimizer

import tinyml

torch = pytest.importorskip("torch")


def tiny_gpt(**kw):
    tinyml.manual_seed(0)
    return GPT(GPTConfig(**{**dict(vocab_size=23, block_size=12, n_layer=2, n_head=2, n_embd=16), **kw}))


def batches(n=4, B=2, T=9, seed=0):
    rng = np.random.default_rng(seed)
    return [(tinyml.tensor(rng.integers(0, 23, (B, T))), tinyml.tensor(rng.integers(0, 23, (B, T))))
            for _ in range(n)]


@pytest.mark.parametrize("qk", [False, True])
def test_attention_logits_and_entropy_match_torch(qk):
    model = tiny_gpt(qk_layernorm=qk)
    attn = model.transformer.h[1].attn
    x = tinyml.randn(2, 7, 16)
    scores = attention_logits(attn, x)
    F = torch.nn.functional
    W, b = (torch.tensor(t.detach().numpy()) for t in (attn.c_attn.weight, attn.c_attn.bias))
    q, k, _ = F.linear(torch.tensor(x.numpy()), W, b).split(16, dim=2)
    q, k = (t.view(2, 7, 2, 8).transpose(1, 2) for t in (q, k))
    if qk:
        q = F.layer_norm(q, (8,), *(torch.tensor(t.detach().numpy()) for t in attn.q_norm.parameters()))
        k = F.layer_norm(k, (8,), *(torch.tensor(t.detach().numpy()) for t in attn.k_norm.parameters()))
    ref = (q @ k.transpose(-2, -1)) / math.sqrt(8)
    ref = ref.masked_fill(torch.ones(7, 7, dtype=torch.bool).triu(1), float("-inf"))
    np.testing.assert_allclose(scores, ref.double().numpy(), rtol=1e-5, atol=1e-6)
    top, entropy = attention_stats(scores)
    p = ref.double().softmax(-1)
    ref_entropy = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1).mean()
    assert top == pytest.approx(ref[torch.isfinite(ref)].max().item(), rel=1e-5)
    assert entropy == pytest.approx(ref_entropy.item(), rel=1e-6)


def test_manual_loop_records_rms_log_z_and_adam_eps_ratio():
    model = tiny_gpt()
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99))
    monitor = StabilityMonitor(model, every=2, optimizer=opt)
    for step, (x, y) in enumerate(batches(4)):
        logits, loss = model(x, y)
        loss.backward()
        grads = {n: p.grad.numpy().astype(np.float64) for n, p in model.named_parameters()}
        before = {n: p.detach().numpy().astype(np.float64) for n, p in model.named_parameters()}
        opt.step()
        opt.zero_grad()
        if step == 1:  # the second step is the first one monitored
            grads_1, before_1 = grads, before
            lg = logits.detach().numpy().astype(np.float64)
            log_z = torch.logsumexp(torch.tensor(lg), dim=-1).numpy()
            after = {n: p.detach().numpy().astype(np.float64) for n, p in model.named_parameters()}
            saved_opt_state = {n: opt.state[p]["exp_avg_sq"].numpy().astype(np.float64)
                               for n, p in model.named_parameters()}
    assert [r["step"] for r in monitor.records] == [2, 4]
    rec = monitor.records[0]
    assert rec["log_z_mean"] == pytest.approx(log_z.mean(), rel=1e-5)
    assert rec["log_z_std"] == pytest.approx(log_z.std(), rel=1e-4)
    assert len(rec["attn_logit_max"]) == 2 and all(np.isfinite(rec["attn_logit_max"]))
    assert all(0 < e < math.log(9) for e in rec["attn_entropy"])
    name = "transformer.h.0.attn.c_attn.weight"
    rms = lambda a: np.sqrt(np.mean(a ** 2))  # noqa: E731
    assert rec["grad_rms"][name] == pytest.approx(rms(grads_1[name]), rel=1e-5)
    assert rec["param_rms"][name] == pytest.approx(rms(after[name]), rel=1e-5)
    assert rec["update_rms"][name] == pytest.approx(rms(after[name] - before_1[name]), rel=1e-4)
    v_hat = saved_opt_state[name] / (1 - 0.99 ** 2)
    assert rec["adam_sqrt_v_over_eps"][name] == pytest.approx(rms(np.sqrt(v_hat) / 1e-8), rel=1e-5)
    assert rec["adam_frac_below_eps"][name] == pytest.approx(np.mean(np.sqrt(v_hat) < 1e-8))
    monitor.detach()
    assert "step" not in vars(opt) and not model._forward_hooks


def test_trainer_attachment_writes_metrics_and_plot(tmp_path):
    model = tiny_gpt(qk_layernorm=True)
    cfg = TrainConfig(max_steps=4, warmup_steps=1, eval_interval=4, eval_iters=1, log_interval=1,
                      grad_accum=2, progress=False)
    trainer = Trainer(model, batches(8), batches(2, seed=1), cfg, out_dir=str(tmp_path))
    monitor = StabilityMonitor(model, every=2).attach(trainer)
    trainer.fit()
    monitor.detach()
    lines = [json.loads(s) for s in open(tmp_path / "metrics.jsonl")]
    stability = [r for r in lines if r.get("kind") == "stability"]
    assert [r["step"] for r in stability] == [2, 4]
    # log Z pools both micro-batches (2 x 2 x 9 tokens); evaluation forwards are not counted
    assert stability[0]["log_z_mean"] is not None
    assert [r["step"] for r in monitor.records] == [2, 4]
    assert stability[1]["attn_logit_max"] == pytest.approx(monitor.records[1]["attn_logit_max"])
    assert plot_monitors(lines, str(tmp_path / "stability.png"))
    assert (tmp_path / "stability.png").stat().st_size > 0 and (tmp_path / "loss.png").exists()
    assert not plot_monitors([{"step": 1, "loss": 2.0}], str(tmp_path / "none.png"))


def test_micro_batches_are_pooled_into_one_record():
    model = tiny_gpt()
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.0)
    monitor = StabilityMonitor(model, every=1, optimizer=opt)
    data = batches(2)
    zs = []
    for x, y in data:  # two micro-batches, one optimizer step
        logits, loss = model(x, y)
        loss.backward()
        zs.append(torch.logsumexp(torch.tensor(logits.detach().numpy()).double(), -1).reshape(-1))
    opt.step()
    (rec,) = monitor.records
    assert rec["log_z_mean"] == pytest.approx(torch.cat(zs).mean().item(), rel=1e-6)
    model.eval()
    model(*data[0])  # no record and nothing pending from an evaluation forward
    opt.step()
    assert len(monitor.records) == 2 and monitor.records[1]["log_z_mean"] is None


def test_errors():
    with pytest.raises(ValueError, match="every must be a positive number of steps, got 0"):
        StabilityMonitor(tiny_gpt(), every=0)
    with pytest.raises(ValueError, match="no GPT attention block .* in Linear"):
        StabilityMonitor(tinyml.nn.Linear(2, 2))
    trainer = Trainer(tiny_gpt(), batches(1), config=TrainConfig(max_steps=1, progress=False))
    with pytest.raises(ValueError, match="trains another model"):
        StabilityMonitor(tiny_gpt()).attach(trainer)
