"""The Hugging Face-style surface PyTorch users reach for: `Model.from_pretrained(folder)`,
`model.generate(input_ids, ...)` returning a tensor, and outputs with `.logits` and `.loss` that
still unpack as a pair."""
import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig, Llama, MambaConfig, MambaLM, generate

import tinyml

CFG = dict(vocab_size=20, n_layer=2, n_head=2, n_embd=16, block_size=32)


def _gpt():
    tinyml.manual_seed(0)
    return GPT(GPTConfig(**CFG))


def test_outputs_have_logits_and_loss_and_unpack_as_a_pair():
    model = _gpt()
    idx = tinyml.randint(0, 20, (2, 5))
    out = model(idx, idx)
    logits, loss = out
    assert out.logits is logits and out.loss is loss and tuple(logits.shape) == (2, 5, 20)
    assert model(idx).loss is None
    tinyml.manual_seed(0)
    mamba = MambaLM(MambaConfig(vocab_size=20, d_model=16, n_layer=1, d_state=4))
    assert mamba(idx, idx).loss is not None and tuple(mamba(idx).logits.shape) == (2, 5, 20)


def test_generate_method_returns_a_tensor_equal_to_the_generate_function():
    model = _gpt()
    prompt = [[1, 2, 3], [4, 5, 6]]
    out = model.generate(tinyml.tensor(prompt), max_new_tokens=6)
    assert isinstance(out, tinyml.Tensor) and out.dtype == tinyml.int64 and tuple(out.shape) == (2, 9)
    assert out.numpy().tolist() == generate(model, prompt, 6, temperature=0)  # greedy by default
    tinyml.manual_seed(3)
    a = model.generate(prompt, max_new_tokens=5, do_sample=True, temperature=0.9, top_k=5)
    tinyml.manual_seed(3)
    b = model.generate(prompt, max_new_tokens=5, do_sample=True, temperature=0.9, top_k=5)
    assert np.array_equal(a.numpy(), b.numpy())


def test_generate_pads_rows_that_stop_at_eos_with_eos():
    model = _gpt()
    first = int(model.generate([[1, 2, 3]], max_new_tokens=1).numpy()[0, -1])  # the greedy next token
    out = model.generate([[1, 2, 3], [7, 8, 9]], max_new_tokens=4, eos_token_id=first).numpy()
    rows = generate(model, [[1, 2, 3], [7, 8, 9]], 4, temperature=0, stop_tokens=[first])
    assert out.shape == (2, max(len(r) for r in rows)) and len(rows[0]) == 4  # row 0 stopped at once
    for row, expected in zip(out.tolist(), rows):
        assert row[:len(expected)] == expected and all(t == first for t in row[len(expected):])


def test_from_pretrained_classmethod_loads_its_own_architecture(tmp_path):
    model = _gpt()
    model.save_pretrained(str(tmp_path / "gpt"))
    back = GPT.from_pretrained(str(tmp_path / "gpt"))
    idx = tinyml.randint(0, 20, (1, 4))
    with tinyml.no_grad():
        np.testing.assert_allclose(back(idx).logits.numpy(), model(idx).logits.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="Llama.from_pretrained.*holds a GPT"):
        Llama.from_pretrained(str(tmp_path / "gpt"))
