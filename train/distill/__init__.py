"""tinyml.train.distill: knowledge distillation on the generic Trainer.

    losses.py    kd_loss (T^2-scaled KL of softened distributions over real tokens), hidden_cosine_loss,
                 hidden_mse_loss (with a projection when widths differ), distilbert_loss (5/2/1, T=2),
                 causal_lm_outputs / bert_mlm_outputs (the hidden states those losses compare),
                 lm_distill_loss (word-level KD for a causal LM, a Trainer loss_fn)
    init.py      students by layer inheritance (teacher layers 0, 2, 4, ...) for GPT, Llama and BERT
    sequence.py  sequence-level KD: teacher generations (greedy or sampled, KV cache) as training data
    seqinter.py  Seq-Inter (Kim & Rush 2016): of the teacher's candidates, the one closest to the real
                 text by sentence BLEU
    resume.py    `tinyml distill --resume`: the recorded plan, continued bit-exactly from the checkpoint
    mlm.py       BERT's masked batches (15%, 80/10/10), a BERT teacher trained on a text, BERT run folders
    run.py       the job behind `tinyml distill` (train/commands/distill.py): teacher run in, student run out
"""
from .init import (
    check_same_vocabulary,
    inherited_layers,
    init_from_teacher,
    student_config,
    student_from_teacher,
)
from .losses import (
    bert_mlm_outputs,
    causal_lm_outputs,
    distilbert_loss,
    hidden_cosine_loss,
    hidden_mse_loss,
    kd_loss,
    lm_distill_loss,
)

__all__ = ["check_same_vocabulary", "inherited_layers", "init_from_teacher", "student_config",
           "student_from_teacher", "bert_mlm_outputs", "causal_lm_outputs", "distilbert_loss",
           "hidden_cosine_loss", "hidden_mse_loss", "kd_loss", "lm_distill_loss"]
