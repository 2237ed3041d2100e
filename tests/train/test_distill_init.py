"""Students by layer inheritance: which teacher layers, exact copies for GPT, Llama and BERT (a
full-depth student computes the teacher's logits), and the errors for vocabularies and widths."""
import numpy as np
import pytest
from tinyml.models import GPT, BertConfig, BertForMaskedLM, GPTConfig, Llama, LlamaConfig
from tinyml.train.distill import (
    check_same_vocabulary,
    inherited_layers,
    init_from_teacher,
    student_config,
    student_from_teacher,
)

import tinyml
from tinyml.testing import assert_close


def test_inherited_layers_every_other_then_evenly_spaced():
    assert inherited_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert inherited_layers(4, 2) == [0, 2]
    assert inherited_layers(5, 3) == [0, 2, 4]
    assert inherited_layers(4, 3) == [0, 2, 3]  # every other does not fit: first to last
    assert inherited_layers(4, 4) == [0, 1, 2, 3]
    assert inherited_layers(3, 1) == [0]
    for bad in (0, 5):
        with pytest.raises(ValueError, match="needs 1 to 4 layers, got"):
            inherited_layers(4, bad)


TEACHERS = {
    "gpt": (lambda n: GPT(GPTConfig(vocab_size=17, block_size=8, n_layer=n, n_head=2, n_embd=16)),
            "transformer.h.{}."),
    "llama": (lambda n: Llama(LlamaConfig(vocab_size=17, hidden_size=16, num_hidden_layers=n,
                                          num_attention_heads=2, num_key_value_heads=1,
                                          max_position_embeddings=8)), "model.layers.{}."),
    "bert": (lambda n: BertForMaskedLM(BertConfig(vocab_size=17, hidden_size=16, num_hidden_layers=n,
                                                  num_attention_heads=2, intermediate_size=32,
                                                  max_position_embeddings=8)), "bert.encoder.layer.{}."),
}


@pytest.mark.parametrize("arch", list(TEACHERS))
def test_student_inherits_every_other_layer_and_everything_outside_the_stack(arch):
    make, prefix = TEACHERS[arch]
    tinyml.manual_seed(0)
    teacher = make(4).eval()
    student = student_from_teacher(teacher, 2)
    assert type(student) is type(teacher)
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for name, w in s_state.items():
        src = name
        for j, i in enumerate([0, 2]):
            if name.startswith(prefix.format(j)):
                src = prefix.format(i) + name[len(prefix.format(j)):]
        assert np.array_equal(w.numpy(), t_state[src].numpy()), (name, src)
    assert len(s_state) < len(t_state)
    # copies, not views: training the student leaves the teacher as it was
    for w in s_state.values():
        w.detach().numpy()[...] = 7.0  # the student's storage, in place
    assert all(not np.any(w.numpy() == 7.0) for w in teacher.state_dict().values())


@pytest.mark.parametrize("arch", list(TEACHERS))
def test_a_full_depth_student_computes_the_teachers_logits(arch):
    make, _ = TEACHERS[arch]
    tinyml.manual_seed(1)
    teacher = make(3).eval()
    student = student_from_teacher(teacher, 3).eval()
    ids = tinyml.tensor(np.random.default_rng(0).integers(0, 17, (2, 8)))
    with tinyml.no_grad():
        assert_close(student(ids)[0], teacher(ids)[0])


def test_explicit_layers_and_student_config():
    tinyml.manual_seed(2)
    make, _ = TEACHERS["gpt"]
    teacher = make(4)
    cfg = student_config(teacher.config, 2)
    assert cfg.n_layer == 2 and cfg.n_embd == teacher.config.n_embd and teacher.config.n_layer == 4
    assert student_config(LlamaConfig(num_hidden_layers=4), 1).num_hidden_layers == 1
    student = init_from_teacher(GPT(cfg), teacher, layers=[3, 1])
    assert np.array_equal(student.transformer.h[0].mlp.c_fc.weight.detach().numpy(),
                          teacher.transformer.h[3].mlp.c_fc.weight.detach().numpy())
    with pytest.raises(ValueError, match=r"layers \[0, 4\]: need 2 indices .* each in 0..3"):
        init_from_teacher(GPT(cfg), teacher, layers=[0, 4])
    with pytest.raises(ValueError, match="n_layer must be an integer >= 1"):
        student_config(teacher.config, 0)


def test_mismatched_vocabularies_and_widths_are_refused_by_name():
    make, _ = TEACHERS["gpt"]
    teacher = make(2)
    other_vocab = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="has 17 tokens and the student's 20.*sequence level"):
        init_from_teacher(other_vocab, teacher)
    with pytest.raises(ValueError, match="17 tokens and the student's 30"):
        check_same_vocabulary(17, 30)
    narrow = GPT(GPTConfig(vocab_size=17, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(ValueError, match=r"transformer.wte.weight: the student's shape \(17, 8\) "
                                         r"differs from the teacher's transformer.wte.weight \(17, 16\)"):
        init_from_teacher(narrow, teacher)
    with pytest.raises(TypeError, match="must be the teacher's architecture"):
        init_from_teacher(TEACHERS["llama"][0](1), teacher)
