"""Distillation losses: a student matches a frozen teacher's output distribution (logit KD) or its
hidden states (cosine, MSE), and DistilBERT's sum of both with the masked-LM loss.

    loss = kd_loss(student_logits, teacher_logits, temperature=2.0, mask=attention_mask)
    loss = hidden_cosine_loss(student_h, teacher_h, mask=attention_mask)
    loss = hidden_mse_loss(student_h, teacher_h, projection=nn.Linear(64, 128))  # widths differ
    parts = distilbert_loss(student, teacher, input_ids, attention_mask, labels)  # parts["loss"]
    hidden, logits = causal_lm_outputs(gpt, idx)      # a GPT's or Llama's hidden states, layer by layer

Logits and hidden states are (..., V) and (..., C): every leading position is a token, and `mask`
(the leading shape; nonzero = a real token) selects the tokens that count. Each loss is a mean over
the real tokens, so a fully masked batch gives 0 (not 0/0). The teacher's side is a target: it is
detached, and no gradient reaches the teacher.
"""
from __future__ import annotations

import math

import numpy as np
from tinyml.models import GPT, Llama

import tinyml
import tinyml.nn.functional as F

DISTILBERT_WEIGHTS = (5.0, 2.0, 1.0)  # (KD, masked LM, cosine): Sanh et al. 2019's alpha_ce/mlm/cos
DISTILBERT_TEMPERATURE = 2.0


def _token_mask(mask, shape: tuple, device, where: str):
    """The mask as a bool tensor of the token shape, or None (every token counts)."""
    if mask is None:
        return None
    m = mask if isinstance(mask, tinyml.Tensor) else tinyml.tensor(np.asarray(mask), device=device)
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"{where}: the mask has shape {tuple(m.shape)}, the tokens {tuple(shape)} "
                         "(a mask has the leading shape of the logits or hidden states)")
    return m != 0


def _masked_token_mean(per_token, keep):
    """sum over kept tokens / their count (1 when none are kept, so the result is 0, not NaN)."""
    if keep is None:
        return per_token.sum() / max(per_token.numel(), 1)
    total = tinyml.where(keep, per_token, 0.0).sum()
    return total / keep.sum().to(per_token.dtype).clamp(min=1.0)


def _as_float(x):
    # under bf16 autocast the softmax and its log run in float32, as lm_loss does
    return x.float() if x.dtype in (tinyml.bfloat16, tinyml.float16) else x


def kd_loss(student_logits, teacher_logits, temperature: float = 2.0, mask=None):
    """Hinton et al.'s soft-target loss, per real token:

        T^2 * KL(softmax(t / T) || softmax(s / T)) = T^2 * sum_v q_v (log q_v - log p_v)

    averaged over the real tokens (torch's KLDivLoss 'batchmean' on the selected rows). The T^2
    keeps the gradient's size independent of T (the softened gradients shrink as 1/T^2)."""
    if tuple(student_logits.shape) != tuple(teacher_logits.shape):
        raise ValueError(f"kd_loss: student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ (the same tokens over the same vocabulary)")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"kd_loss: temperature must be a finite number > 0, got {temperature!r}")
    keep = _token_mask(mask, student_logits.shape[:-1], student_logits.device, "kd_loss")
    log_p = F.log_softmax(_as_float(student_logits) / temperature, dim=-1)
    q = F.softmax(_as_float(teacher_logits.detach()) / temperature, dim=-1)
    kl = F.kl_div(log_p, q, reduction="none").sum(-1)  # (...,) one KL per token; q = 0 adds 0
    return _masked_token_mean(kl, keep) * (temperature * temperature)


def _aligned(student_hidden, teacher_hidden, projection, where: str):
    """The student's hidden states in the teacher's width (through `projection` when given)."""
    s = _as_float(student_hidden) if projection is None else projection(_as_float(student_hidden))
    if tuple(s.shape) != tuple(teacher_hidden.shape):
        hint = ("; pass projection=nn.Linear(student width, teacher width) (trained with the student)"
                if projection is None and s.shape[:-1] == teacher_hidden.shape[:-1] else "")
        raise ValueError(f"{where}: student hidden states {tuple(s.shape)} and teacher hidden states "
                         f"{tuple(teacher_hidden.shape)} differ{hint}")
    return s, _as_float(teacher_hidden.detach())


def hidden_cosine_loss(student_hidden, teacher_hidden, mask=None, projection=None):
    """mean over real tokens of 1 - cos(s, t) (DistilBERT's cosine loss on the last hidden states:
    torch's cosine_embedding_loss with target 1 on the selected rows). It aligns directions only."""
    s, t = _aligned(student_hidden, teacher_hidden, projection, "hidden_cosine_loss")
    keep = _token_mask(mask, s.shape[:-1], s.device, "hidden_cosine_loss")
    return _masked_token_mean(1.0 - F.cosine_similarity(s, t, dim=-1), keep)


def hidden_mse_loss(student_hidden, teacher_hidden, mask=None, projection=None):
    """mean over the real tokens' elements of (W s - t)^2 (TinyBERT's hidden-state loss, with W the
    projection when the widths differ): torch's mse_loss on the selected rows."""
    s, t = _aligned(student_hidden, teacher_hidden, projection, "hidden_mse_loss")
    keep = _token_mask(mask, s.shape[:-1], s.device, "hidden_mse_loss")
    d = s - t
    return _masked_token_mean((d * d).mean(-1), keep)


def bert_mlm_outputs(model, input_ids, attention_mask=None):
    """(last hidden states (B, T, C), MLM logits (B, T, V)) of a BertForMaskedLM: its forward,
    keeping the hidden states the cosine loss needs."""
    h = model.bert(input_ids, attention_mask)
    head = model.cls.predictions
    return h, F.linear(head.transform(h), model.bert.embeddings.word_embeddings.weight, head.bias)


def causal_lm_outputs(model, idx):
    """(hidden states, logits (B, T, V)) of a GPT or Llama: its forward without a cache, keeping the
    input of every layer and the final normed output, n_layer + 1 tensors (B, T, C) in order, for
    hidden-state losses between a layer map of student and teacher (TinyBERT's layer mapping)."""
    if isinstance(model, GPT):
        body, blocks, norm = model.transformer, model.transformer.h, model.transformer.ln_f
        pos = tinyml.arange(idx.shape[1], device=idx.device)
        x = body.drop(body.wte(idx) + body.wpe(pos))
        head = body.wte.weight if model.config.tie_word_embeddings else model.lm_head.weight
    elif isinstance(model, Llama):
        body, blocks, norm = model.model, model.model.layers, model.model.norm
        x = body.embed_tokens(idx)
        head = body.embed_tokens.weight if model.config.tie_word_embeddings else model.lm_head.weight
    else:
        raise TypeError(f"causal_lm_outputs takes a GPT or Llama, got {type(model).__name__}")
    hidden = []
    for i, block in enumerate(blocks):
        hidden.append(x)
        x = block(x, None, i)
    x = norm(x)
    hidden.append(x)
    return hidden, F.linear(x, head)


def distilbert_loss(student, teacher, input_ids, attention_mask, labels,
                    temperature: float = DISTILBERT_TEMPERATURE, weights: tuple = DISTILBERT_WEIGHTS,
                    restrict_kd_to_mask: bool = False) -> dict:
    """DistilBERT's triple loss (Sanh et al. 2019) for two BertForMaskedLM of the same width:

        loss = 5 * kd_loss(s, t, T=2) + 2 * cross_entropy(s, labels) + 1 * hidden_cosine_loss(h_s, h_t)

    KD and cosine run over the attended tokens (over the masked positions only with
    restrict_kd_to_mask, as the reference code's flag); the MLM term over the labelled positions
    (labels -100 elsewhere; see `mask_tokens`). Returns {"loss", "kd", "mlm", "cos"}; the teacher
    runs without gradients."""
    w_kd, w_mlm, w_cos = weights
    with tinyml.no_grad():
        t_hidden, t_logits = bert_mlm_outputs(teacher, input_ids, attention_mask)
    s_hidden, s_logits = bert_mlm_outputs(student, input_ids, attention_mask)
    labels = labels if isinstance(labels, tinyml.Tensor) else tinyml.tensor(np.asarray(labels),
                                                                              device=s_logits.device)
    attended = attention_mask
    if attended is None:
        attended = tinyml.ones(*labels.shape, device=labels.device)
    kd_mask = (labels != -100) if restrict_kd_to_mask else attended
    kd = kd_loss(s_logits, t_logits, temperature, mask=kd_mask)
    V = s_logits.shape[-1]
    if bool((labels != -100).any().item()):
        mlm = F.cross_entropy(_as_float(s_logits).reshape(-1, V), labels.reshape(-1), ignore_index=-100)
    else:  # torch gives NaN for an all-ignored batch; no masked position means nothing to predict
        mlm = tinyml.tensor(0.0, device=s_logits.device)
    cos = hidden_cosine_loss(s_hidden, t_hidden, mask=attended)
    return {"loss": w_kd * kd + w_mlm * mlm + w_cos * cos, "kd": kd, "mlm": mlm, "cos": cos}


def lm_distill_loss(student, batch, teacher, temperature: float = 2.0, alpha: float = 0.5):
    """Word-level KD for a causal LM (Kim & Rush 2016, eq. 5), a Trainer loss_fn:

        (1 - alpha) * NLL(student, y) + alpha * kd_loss(student, teacher, T)

    batch = (x, y) token ids (B, T); targets -100 are not real tokens (no NLL, no KD). alpha = 0 is
    plain training on y; on teacher-generated y (sequence.py) it is sequence-level KD, and
    0 < alpha < 1 there is their combination (Seq-KD + Word-KD)."""
    x, y = batch
    logits, hard = student(x, y)
    if alpha == 0:
        return hard
    with tinyml.no_grad():
        t_logits = teacher(x)[0]
    soft = kd_loss(logits, t_logits, temperature, mask=y != -100)
    return hard * (1.0 - alpha) + soft * alpha if alpha != 1 else soft
