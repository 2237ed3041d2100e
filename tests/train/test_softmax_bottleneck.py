"""The output-head diagnostic (train/softmax_bottleneck.py): singular values as numpy's and torch's SVD
give them, the effective rank's two limits (flat spectrum: r; one direction: 1), the head of tied and
untied models, and the plot."""
import numpy as np
import pytest
import torch
from tinyml.models import GPT, GPTConfig, Llama, LlamaConfig
from tinyml.train.softmax_bottleneck import effective_rank, head_spectrum, output_head, plot_head_spectra

import tinyml


def test_effective_rank_limits_and_formula():
    assert effective_rank([2.0, 2.0, 2.0, 2.0]) == pytest.approx(4.0)
    assert effective_rank([5.0, 0.0, 0.0]) == pytest.approx(1.0)
    p = np.array([3.0, 1.0]) / 4
    assert effective_rank([3.0, 1.0]) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert effective_rank([0.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="finite non-negative singular values"):
        effective_rank([1.0, -1.0])


def test_head_spectrum_of_tied_and_untied_models(tmp_path):
    tinyml.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, n_embd=16))
    assert output_head(gpt) is gpt.transformer.wte.weight
    llama = Llama(LlamaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2))
    assert output_head(llama) is llama.lm_head.weight
    rep = head_spectrum(gpt)
    w = gpt.transformer.wte.weight.detach().numpy()
    want = torch.linalg.svdvals(torch.tensor(w, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(rep["singular_values"], want, rtol=1e-10)
    assert rep["shape"] == [40, 16] and rep["max_rank"] == 16 and 1 < rep["effective_rank"] <= 16
    # a rank-2 head: its effective rank is at most 2
    low = np.outer(np.arange(1, 41), np.ones(16)) + np.outer(np.ones(40), np.arange(16))
    assert head_spectrum(low)["effective_rank"] <= 2.0
    path = plot_head_spectra({"gpt": rep, "rank 2": head_spectrum(low)}, str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").stat().st_size > 0 and path.endswith("s.png")
    with pytest.raises(ValueError, match=r"expects a \(vocab, hidden\) matrix, got shape \(3,\)"):
        head_spectrum(np.ones(3))
