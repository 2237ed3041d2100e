"""Distillation losses against PyTorch's formulas (forward and gradients), float64 gradcheck, masks
(a fully masked batch gives 0, not NaN), and DistilBERT's triple loss on two tiny BERTs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from tinyml.models import GPT, BertConfig, BertForMaskedLM, GPTConfig, mask_tokens
from tinyml.train.distill import (
    bert_mlm_outputs,
    causal_lm_outputs,
    distilbert_loss,
    hidden_cosine_loss,
    hidden_mse_loss,
    kd_loss,
    lm_distill_loss,
)

import tinyml
import tinyml.nn as nn
from tinyml.testing import assert_close, gradcheck


def _pair(shape, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape).astype(dtype) * 2, rng.standard_normal(shape).astype(dtype) * 2)


def _torch_kd(s, t, T, mask):
    """T^2 * KLDivLoss('batchmean') on the rows the mask keeps: the formula of Hinton et al. in torch."""
    keep = torch.as_tensor(mask, dtype=torch.bool)
    log_p = TF.log_softmax(s / T, dim=-1)[keep]
    q = TF.softmax(t / T, dim=-1)[keep]
    return TF.kl_div(log_p, q, reduction="batchmean") * T * T


@pytest.mark.parametrize("T", [1.0, 2.0, 4.5])
def test_kd_loss_matches_torch_kl_div_forward_and_backward(T):
    s, t = _pair((3, 5, 11))
    mask = np.random.default_rng(1).random((3, 5)) < 0.7
    mask[0, 0] = True
    xs = tinyml.tensor(s, requires_grad=True)
    loss = kd_loss(xs, tinyml.tensor(t), T, mask=mask)
    loss.backward()
    ts = torch.tensor(s, requires_grad=True)
    ref = _torch_kd(ts, torch.tensor(t), T, mask)
    ref.backward()
    assert_close(loss, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert_close(xs.grad, ts.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_kd_loss_without_mask_is_batchmean_over_all_tokens_and_zero_for_equal_logits():
    s, t = _pair((4, 7))
    out = kd_loss(tinyml.tensor(s), tinyml.tensor(t), 2.0)
    ref = TF.kl_div(TF.log_softmax(torch.tensor(s) / 2, -1), TF.softmax(torch.tensor(t) / 2, -1),
                    reduction="batchmean") * 4
    assert_close(out, ref.numpy(), rtol=1e-5, atol=1e-6)
    assert abs(kd_loss(tinyml.tensor(s), tinyml.tensor(s), 3.0).item()) < 1e-6


def test_kd_loss_fully_masked_gives_zero_and_zero_gradient():
    s, t = _pair((2, 3, 5))
    xs = tinyml.tensor(s, requires_grad=True)
    loss = kd_loss(xs, tinyml.tensor(t), 2.0, mask=np.zeros((2, 3), dtype=bool))
    loss.backward()
    assert loss.item() == 0.0
    assert np.all(xs.grad.numpy() == 0)


def test_kd_loss_teacher_zero_probabilities_and_nan_propagation():
    s, t = _pair((2, 4))
    t[:, 0] = -np.inf  # a token the teacher rules out: q = 0 adds 0 (xlogy), as torch's kl_div
    ref = _torch_kd(torch.tensor(s), torch.tensor(t), 1.0, np.ones(2, bool))
    assert_close(kd_loss(tinyml.tensor(s), tinyml.tensor(t), 1.0), ref.numpy(), rtol=1e-5, atol=1e-6)
    s[1, 2] = np.nan
    assert np.isnan(kd_loss(tinyml.tensor(s), tinyml.tensor(t), 1.0).item())


def test_kd_loss_gradcheck_float64_and_no_gradient_to_the_teacher():
    s, t = _pair((2, 3, 4), dtype=np.float64)
    mask = np.array([[1, 0, 1], [1, 1, 0]])
    xs = tinyml.tensor(s, requires_grad=True)
    xt = tinyml.tensor(t, requires_grad=True)
    assert gradcheck(lambda a: kd_loss(a, xt, 1.7, mask=mask), [xs])
    kd_loss(xs, xt, 2.0).backward()
    assert xt.grad is None


def test_kd_loss_refuses_bad_shapes_masks_and_temperatures():
    s, t = _pair((2, 5))
    with pytest.raises(ValueError, match=r"student logits \(2, 5\) and teacher logits \(2, 4\)"):
        kd_loss(tinyml.tensor(s), tinyml.tensor(t[:, :4]))
    with pytest.raises(ValueError, match=r"mask has shape \(3,\), the tokens \(2,\)"):
        kd_loss(tinyml.tensor(s), tinyml.tensor(t), mask=np.ones(3))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            kd_loss(tinyml.tensor(s), tinyml.tensor(t), bad)


def test_hidden_cosine_and_mse_match_torch_on_selected_tokens():
    s, t = _pair((2, 4, 6), seed=3)
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 0]], dtype=bool)
    for ours, theirs in (
            (hidden_cosine_loss, lambda a, b: TF.cosine_embedding_loss(a, b, torch.ones(len(a)))),
            (hidden_mse_loss, TF.mse_loss)):
        xs = tinyml.tensor(s, requires_grad=True)
        out = ours(xs, tinyml.tensor(t), mask=mask)
        out.backward()
        ts = torch.tensor(s, requires_grad=True)
        keep = torch.as_tensor(mask)
        ref = theirs(ts[keep], torch.tensor(t)[keep])
        ref.backward()
        assert_close(out, ref.detach().numpy(), rtol=1e-5, atol=1e-6, msg=ours.__name__)
        assert_close(xs.grad, ts.grad.numpy(), rtol=1e-4, atol=1e-6, msg=ours.__name__)
        assert ours(xs, tinyml.tensor(t), mask=np.zeros((2, 4))).item() == 0.0


def test_hidden_losses_gradcheck_float64():
    s, t = _pair((3, 5), seed=4, dtype=np.float64)
    xs = tinyml.tensor(s, requires_grad=True)
    for fn in (hidden_cosine_loss, hidden_mse_loss):
        assert gradcheck(lambda a: fn(a, tinyml.tensor(t), mask=np.array([1, 0, 1])), [xs])


def test_hidden_losses_project_the_student_when_widths_differ():
    rng = np.random.default_rng(5)
    s = rng.standard_normal((2, 3, 4)).astype(np.float32)
    t = rng.standard_normal((2, 3, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\) and teacher hidden states \(2, 3, 8\).*projection="):
        hidden_mse_loss(tinyml.tensor(s), tinyml.tensor(t))
    proj = nn.Linear(4, 8)
    out = hidden_mse_loss(tinyml.tensor(s), tinyml.tensor(t), projection=proj)
    out.backward()
    tw = torch.tensor(proj.weight.detach().numpy(), requires_grad=True)
    ref = TF.mse_loss(torch.tensor(s) @ tw.T + torch.tensor(proj.bias.detach().numpy()), torch.tensor(t))
    ref.backward()
    assert_close(out, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert_close(proj.weight.grad, tw.grad.numpy(), rtol=1e-4, atol=1e-6)


def _bert(layers, seed):
    tinyml.manual_seed(seed)
    cfg = BertConfig(vocab_size=23, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertForMaskedLM(cfg).eval()


def test_distilbert_loss_is_5_2_1_of_kd_mlm_cosine_as_the_reference_code():
    teacher, student = _bert(2, 0), _bert(1, 1)
    rng = np.random.default_rng(6)
    ids = rng.integers(1, 22, (2, 10))
    attn = np.ones((2, 10), dtype=np.int64)
    attn[1, 7:] = 0
    inputs, labels = mask_tokens(ids, mask_token_id=22, vocab_size=23, special_ids=(0,),
                                 rng=np.random.default_rng(7))
    labels[0, 0], labels[attn == 0] = ids[0, 0], -100  # at least one label; none on padding
    x, m, y = tinyml.tensor(inputs), tinyml.tensor(attn), tinyml.tensor(labels)
    parts = distilbert_loss(student, teacher, x, m, y)
    h, logits = bert_mlm_outputs(student, x, m)
    assert_close(logits, student(x, m)[0])  # the same forward as the model's own
    th, tl = (torch.tensor(a.detach().numpy()) for a in bert_mlm_outputs(teacher, x, m))
    sh, sl = torch.tensor(h.detach().numpy()), torch.tensor(logits.detach().numpy())
    keep = torch.as_tensor(attn, dtype=torch.bool)
    kd = TF.kl_div(TF.log_softmax(sl[keep] / 2, -1), TF.softmax(tl[keep] / 2, -1), reduction="batchmean") * 4
    mlm = TF.cross_entropy(sl.reshape(-1, 23), torch.tensor(labels).reshape(-1), ignore_index=-100)
    cos = TF.cosine_embedding_loss(sh[keep], th[keep], torch.ones(int(keep.sum())))
    for name, ref in (("kd", kd), ("mlm", mlm), ("cos", cos), ("loss", 5 * kd + 2 * mlm + cos)):
        assert_close(parts[name], ref.numpy(), rtol=1e-4, atol=1e-5, msg=name)
    parts["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.bert.embeddings.word_embeddings.weight.grad is not None


def test_distilbert_loss_without_any_masked_position_is_finite():
    teacher, student = _bert(2, 0), _bert(1, 1)
    ids = tinyml.tensor(np.arange(1, 9).reshape(1, 8))
    parts = distilbert_loss(student, teacher, ids, None, tinyml.tensor(np.full((1, 8), -100)))
    assert parts["mlm"].item() == 0.0 and np.isfinite(parts["loss"].item())


def test_lm_distill_loss_interpolates_nll_and_word_kd():
    tinyml.manual_seed(0)
    cfg = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16)
    teacher, student = GPT(cfg).eval(), GPT(cfg)
    rng = np.random.default_rng(8)
    x, y = tinyml.tensor(rng.integers(0, 13, (2, 8))), rng.integers(0, 13, (2, 8))
    y[0, :3] = -100  # prompt positions: neither NLL nor KD
    y = tinyml.tensor(y)
    logits, nll = student(x, y)
    kd = kd_loss(logits, teacher(x)[0], 2.0, mask=y != -100)
    assert_close(lm_distill_loss(student, (x, y), teacher, 2.0, alpha=0.0), nll.detach().numpy())
    assert_close(lm_distill_loss(student, (x, y), teacher, 2.0, alpha=1.0), kd.detach().numpy())
    assert_close(lm_distill_loss(student, (x, y), teacher, 2.0, alpha=0.3),
                 (0.7 * nll + 0.3 * kd).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["gpt", "llama"])
def test_causal_lm_outputs_are_the_forward_with_every_layers_hidden_states(arch):
    from tinyml.models import Llama, LlamaConfig
    from tinyml.train.distill import student_from_teacher

    tinyml.manual_seed(9)
    if arch == "gpt":
        teacher = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=4, n_head=2, n_embd=16)).eval()
    else:
        teacher = Llama(LlamaConfig(vocab_size=13, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                                    max_position_embeddings=8)).eval()
    x = tinyml.tensor(np.random.default_rng(10).integers(0, 13, (2, 8)))
    with tinyml.no_grad():
        hidden, logits = causal_lm_outputs(teacher, x)
        assert len(hidden) == 5 and tuple(hidden[0].shape) == (2, 8, 16)
        assert_close(logits, teacher(x)[0])
        # a student that inherited layers 0 and 2 computes the teacher's input to layer 2 after its layer 0
        s_hidden, _ = causal_lm_outputs(student_from_teacher(teacher, 2).eval(), x)
        assert_close(s_hidden[0], hidden[0])
        assert hidden_mse_loss(s_hidden[1], hidden[1]).item() < 1e-10
    with pytest.raises(TypeError, match="takes a GPT or Llama"):
        causal_lm_outputs(nn.Linear(2, 2), x)
