"""GPT's fused residual path (Block.forward_fused: each residual add fused with the layer_norm that
reads its sum) gives the bits of the plain blocks, and steps aside when a hook would notice."""
import numpy as np
from tinyml.models import GPT, GPTConfig

import tinyml


def _train(model, steps=2):
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        x, y = (tinyml.tensor(rng.integers(0, 37, (3, 16))) for _ in range(2))
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _node_names(t) -> list:
    names, stack, seen = [], [t.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or isinstance(node, tinyml.Tensor) or id(node) in seen:  # a leaf ends the walk
            continue
        seen.add(id(node))
        names.append(node.name())
        stack += [edge[0] for edge in getattr(node, "next_edges", ()) if edge is not None]
    return names


def _model():
    tinyml.manual_seed(0)
    return GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=32))


def test_fused_blocks_are_bit_identical_to_plain_blocks():
    fused = _model()
    plain = _model()
    calls = []
    plain.transformer.ln_f.register_forward_hook(lambda m, i, o: calls.append(1))  # forces the plain path
    (l1, s1), (l2, s2) = _train(fused), _train(plain)
    assert calls, "a hook on ln_f must see ln_f called"
    assert l1 == l2
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)


def test_fused_path_runs_the_fused_op_and_hooks_on_blocks_are_honoured():
    model = _model()
    x = tinyml.tensor(np.random.default_rng(1).integers(0, 37, (2, 8)))
    logits, _ = model(x)
    assert _node_names(logits).count("AddLayerNormBackward") == 4  # 2 per block
    seen = []
    model.transformer.h[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    logits2, _ = model(x)
    assert seen == [(2, 8, 32)]
    assert np.array_equal(logits.detach().numpy(), logits2.detach().numpy())
