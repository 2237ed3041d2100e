"""Student initialisation by layer inheritance (Sanh et al. 2019, DistilBERT section 3): the student
is the teacher with fewer layers, and starts from the teacher's embeddings, one teacher layer out
of two (0, 2, 4, ...), the final norm and the output head.

    student = student_from_teacher(teacher, n_layer=2)        # GPT, Llama or BertForMaskedLM
    cfg = student_config(teacher.config, n_layer=2)           # the config alone
    init_from_teacher(student, teacher, layers=[0, 3])        # any student of the teacher's width

Inheritance copies weights, so the student must have the teacher's width, heads and vocabulary;
a mismatch is refused naming both shapes. Different vocabularies rule out logit KD as well (the
two distributions are over different tokens); distil them at the sequence level instead, which
needs only the teacher's text (sequence.py: generate_text, then train the student on it with its
own tokenizer, e.g. `tinyml train --data teacher.txt`).
"""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
from tinyml.models import GPT, BertForMaskedLM, Llama

# where each architecture numbers its layers in the state dict, and the config field counting them
LAYER_KEYS = {
    GPT: (r"transformer\.h\.(\d+)\.", "transformer.h.{}.", "n_layer"),
    Llama: (r"model\.layers\.(\d+)\.", "model.layers.{}.", "num_hidden_layers"),
    BertForMaskedLM: (r"bert\.encoder\.layer\.(\d+)\.", "bert.encoder.layer.{}.", "num_hidden_layers"),
}


def _architecture(model) -> tuple:
    for cls, spec in LAYER_KEYS.items():
        if isinstance(model, cls):
            return spec
    raise TypeError(f"layer inheritance supports {', '.join(c.__name__ for c in LAYER_KEYS)}; "
                    f"got {type(model).__name__}")


def vocab_size_of(model) -> int:
    return int(model.config.vocab_size)


def check_same_vocabulary(teacher_vocab: int, student_vocab: int) -> None:
    """Refuse two vocabularies of different sizes, naming both and the way around it."""
    if teacher_vocab != student_vocab:
        raise ValueError(f"the teacher's vocabulary has {teacher_vocab} tokens and the student's "
                         f"{student_vocab}: logit KD and layer inheritance need one vocabulary. Distil at "
                         "the sequence level instead, which needs only text: generate text with the teacher "
                         "and train the student on it with its own tokenizer")


def inherited_layers(n_teacher: int, n_student: int) -> list[int]:
    """The teacher layers a student of n_student layers starts from: every other one (0, 2, 4, ...)
    while that fits, else n_student evenly spaced from the first to the last."""
    if not 1 <= n_student <= n_teacher:
        raise ValueError(f"a student inherits from the teacher's {n_teacher} layers, so it needs 1 to "
                         f"{n_teacher} layers, got {n_student}")
    if 2 * (n_student - 1) < n_teacher:
        return list(range(0, 2 * n_student, 2))
    return [int(i) for i in np.linspace(0, n_teacher - 1, n_student).round()]


def student_config(teacher_config, n_layer: int):
    """The teacher's config with n_layer layers (GPTConfig.n_layer, num_hidden_layers otherwise)."""
    field = "n_layer" if hasattr(teacher_config, "n_layer") else "num_hidden_layers"
    if not hasattr(teacher_config, field):
        raise TypeError(f"{type(teacher_config).__name__} has no n_layer or num_hidden_layers field")
    if isinstance(n_layer, bool) or not isinstance(n_layer, int) or n_layer < 1:
        raise ValueError(f"n_layer must be an integer >= 1, got {n_layer!r}")
    return replace(teacher_config, **{field: n_layer})


def init_from_teacher(student, teacher, layers: list[int] | None = None):
    """Copy into `student` the teacher's weights: everything outside the layer stack as is, and
    student layer j from teacher layer layers[j] (default: inherited_layers). Returns the student."""
    pattern, template, field = _architecture(teacher)
    if type(student) is not type(teacher):
        raise TypeError(f"the student ({type(student).__name__}) must be the teacher's architecture "
                        f"({type(teacher).__name__}) to inherit its layers")
    check_same_vocabulary(vocab_size_of(teacher), vocab_size_of(student))
    n_teacher, n_student = getattr(teacher.config, field), getattr(student.config, field)
    if layers is None:
        layers = inherited_layers(n_teacher, n_student)
    layers = [int(i) for i in layers]
    if len(layers) != n_student or not all(0 <= i < n_teacher for i in layers):
        raise ValueError(f"layers {layers}: need {n_student} indices (one per student layer), each in "
                         f"0..{n_teacher - 1} (the teacher's layers)")
    source = teacher.state_dict()
    regex = re.compile(pattern)
    state = {}
    for name, value in student.state_dict().items():
        m = regex.match(name)
        src = name if m is None else template.format(layers[int(m.group(1))]) + name[m.end():]
        if src not in source:
            raise ValueError(f"the teacher has no {src!r} for the student's {name!r}: their configs differ "
                             "in more than the number of layers")
        w = source[src]
        if tuple(w.shape) != tuple(value.shape):
            raise ValueError(f"{name}: the student's shape {tuple(value.shape)} differs from the teacher's "
                             f"{src} {tuple(w.shape)}; inheritance needs the teacher's width and heads")
        state[name] = w
    student.load_state_dict(state, strict=True)  # copies in place: no storage shared with the teacher
    return student


def student_from_teacher(teacher, n_layer: int, layers: list[int] | None = None):
    """A new model of the teacher's class with n_layer layers, initialised by inheritance."""
    _architecture(teacher)
    student = type(teacher)(student_config(teacher.config, n_layer))
    return init_from_teacher(student, teacher, layers).to(next(iter(teacher.parameters())).device)
