"""Does tinyml's Mamba train as transformers' does? The same MambaLM weights (through
save_pretrained) trained on the same synthetic batches by tinyml and by transformers'
MambaForCausalLM (its slow path: pure PyTorch), AdamW, losses step by step side by side.

    python examples/ssm/vs_transformers.py --task selective_copy --steps 30

Result on this repository (30 steps, selective copy L = 256, batch 8, lr 1e-3): the two loss
curves agree to 5e-7 at every step, so when the synthetic tasks do not learn, the cause is the
training budget or the hyperparameters, not tinyml's gradients. Each framework runs in a worker
process of its own (both load libgomp; see bench/gpt_cpu.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic import TASKS  # noqa: E402  (the example folder is not a package)

CONFIG = dict(d_model=64, n_layer=2, d_state=16)


def batches(task: str, steps: int, batch: int):
    make, _ = TASKS[task]
    rng = np.random.default_rng(0)
    return [make(rng, batch) for _ in range(steps)]


def tinyml_losses(folder: str, task: str, steps: int, batch: int, lr: float) -> list[float]:
    """Build MambaLM from seed 0, save it to `folder`, train it; the loss of every step."""
    from tinyml.models.ssm import MambaConfig, MambaLM

    import tinyml
    import tinyml.nn.functional as F

    tinyml.manual_seed(0)
    vocab = TASKS[task][1]
    model = MambaLM(MambaConfig(vocab_size=vocab, **CONFIG))
    model.save_pretrained(folder)
    opt = tinyml.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for x, y in batches(task, steps, batch):
        logits, _ = model(tinyml.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, vocab), tinyml.tensor(y.reshape(-1)), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def torch_losses(folder: str, task: str, steps: int, batch: int, lr: float) -> list[float]:
    """transformers' MambaForCausalLM loaded from `folder`, trained on the same batches."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    vocab = TASKS[task][1]
    model = transformers.MambaForCausalLM.from_pretrained(folder)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for x, y in batches(task, steps, batch):
        logits = model(torch.tensor(x)).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), torch.tensor(y.reshape(-1)),
                                                 ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=list(TASKS), default="selective_copy")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", choices=("tinyml", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    run = (args.task, args.steps, args.batch, args.lr)
    if args.worker:
        if args.worker == "tinyml":
            import tinyml

            tinyml.set_num_threads(args.threads)
            print(json.dumps(tinyml_losses(args.folder, *run)))
        else:
            import torch

            torch.set_num_threads(args.threads)
            print(json.dumps(torch_losses(args.folder, *run)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "mamba")
        curves = []
        for worker in ("tinyml", "torch"):
            cmd = [sys.executable, __file__, "--worker", worker, "--folder", folder, "--task", args.task,
                   "--steps", str(args.steps), "--batch", str(args.batch), "--lr", str(args.lr),
                   "--threads", str(args.threads)]
            env = {**os.environ, "OMP_WAIT_POLICY": "passive"}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise RuntimeError(f"{worker} worker failed:\n{out.stderr}")
            curves.append(json.loads(out.stdout.splitlines()[-1]))
    for i, (a, b) in enumerate(zip(*curves)):
        print(f"step {i + 1:4d}  tinyml {a:.5f}  transformers {b:.5f}  |diff| {abs(a - b):.1e}")


if __name__ == "__main__":
    main()
