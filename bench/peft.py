"""Parameter-efficient fine-tuning on the CPU: every tinyml.models.peft method against full
fine-tuning, and tinyml's LoRA step against peft's on PyTorch.

    python bench/peft.py                                  # small preset, 2 threads
    python bench/peft.py --config baby --pretrain-steps 300 --steps 100 --batch 8
    python bench/peft.py --steps 50 --base small.safetensors --methods full,lora --skip-peer
    python bench/peft.py --skip-methods --peer-steps 8 --peer-rounds 3     # part 2 alone

Part 1 (tinyml, one process): a GPT of the preset is pretrained on the bundled Shakespeare for
--pretrain-steps (or read from --from, a `tinyml train` run), then adapted to the bundled English
dialogues (tinyml/data/corpus/NOTICE.chatterbot) for --steps AdamW steps by each method from the
same start (lst-fisher: LST with the side network pruned by Fisher information over 4 training
batches), AdamW at --lr-full for full fine-tuning and --lr (10x, as peft users train LoRA) for the
others, --lr-for METHOD=LR for one method's own. --base keeps the pretrained weights in a file, so
that runs of a few methods each (--methods, --json to collect their rows) adapt the same model.
For each: trainable parameters; memory of a training step = parameters + gradients + optimizer
state + what the step allocates at its peak (activations kept for backward and temporaries;
tinyml.memory.track, host bytes), with the saved activations alone (without the parameters some
nodes keep) beside it; validation loss before (the same batches for every method) and after the same steps;
median step time. --breakdown prints, for full fine-tuning and LoRA, where the step's memory goes:
parameters, gradients, optimizer state, and the saved activations by the op that keeps them.
Part 2: one LoRA step (r=8 on c_attn, c_proj, c_fc; forward + loss + backward + AdamW on the
adapter) of the same GPT in tinyml and in transformers + peft, each in a worker process of its own
(torch and tinyml load the same libgomp; see bench/gpt_cpu.py), same weights and batches; the ratio
is peft's time / tinyml's (> 1: tinyml faster). Both workers run with OMP_WAIT_POLICY=PASSIVE.
--peer-rounds repeats the pair, alternating which goes first, and prints each round's load average
and process CPU time per step beside the wall times.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

PRESETS = {"baby": dict(n_layer=4, n_head=4, n_embd=128, block_size=64),
           "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256)}


def methods(rank: int):
    from tinyml.models import peft

    return {"full": None,
            "lora": peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear"),
            "rslora": peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear",
                                      use_rslora=True),
            "lora-xs": peft.LoraXSConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear"),
            "seqbn": peft.SeqBnConfig(), "double-seqbn": peft.DoubleSeqBnConfig(),
            "seqbn-inv": peft.SeqBnInvConfig(), "lst": peft.LSTConfig(reduction_factor=8),
            "lst-fisher": peft.LSTConfig(reduction_factor=8, init="fisher")}


def learning_rates(args) -> dict:
    """{method: AdamW lr}: --lr-full for full fine-tuning, --lr for every adapter method (peft users
    train LoRA at about 10x the full fine-tuning lr), then the --lr-for NAME=LR overrides."""
    lrs = {name: args.lr_full if name == "full" else args.lr for name in methods(args.rank)}
    for item in args.lr_for:
        name, _, value = item.partition("=")
        if name not in lrs:
            raise SystemExit(f"--lr-for {item}: unknown method {name!r}; methods: {', '.join(lrs)}")
        try:
            lrs[name] = float(value)
        except ValueError:
            raise SystemExit(f"--lr-for {item}: {value!r} is not a number") from None
    return lrs


def _data(block: int, batch: int):
    import lzma

    import tinyml.data as data

    corpus = os.path.join(os.path.dirname(data.__file__), "corpus")
    with lzma.open(os.path.join(corpus, "chatterbot_english.txt.xz"), "rt", encoding="utf-8") as f:
        dialogues = f.read()
    tok = data.CharTokenizer.from_text(data.shakespeare())
    train, val = (np.array(tok.encode(t)) for t in data.split_text(dialogues, 0.1))

    def samplers():  # the same batches for every method
        return {"train": data.RandomWindowSampler(train, block, batch, seed=0),
                "val": data.RandomWindowSampler(val, block, batch, seed=1)}

    shakespeare = np.array(tok.encode(data.shakespeare()))
    return tok, data.RandomWindowSampler(shakespeare, block, batch, seed=7), samplers


def _tensors(batch):
    import tinyml

    return [tinyml.tensor(np.asarray(a), dtype=tinyml.int64) for a in batch]


def _owner(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def saved_activations(loss, model) -> dict:
    """{op name: bytes} the graph behind `loss` keeps for backward, each buffer counted once (views,
    and outputs kept by value, share their owner's), parameters left out."""
    from tinyml.memory import _saved_entries, _walk

    params = {id(_owner(p._data)) for p in model.parameters()}
    seen, by_op = set(params), {}
    for node in _walk(loss):
        for e in _saved_entries(node):
            if e is None:
                continue
            arr = _owner(e[0]._data)
            if id(arr) not in seen:
                seen.add(id(arr))
                by_op[node.fn.__name__] = by_op.get(node.fn.__name__, 0) + arr.nbytes
    return by_op


def _val_loss(model, sampler, iters: int) -> float:
    import tinyml

    model.eval()
    with tinyml.no_grad():
        losses = [model(*_tensors(sampler.next_batch()))[1].item() for _ in range(iters)]
    model.train()
    return float(np.mean(losses))


def part1(args) -> list[dict]:
    from tinyml.models import GPT, GPTConfig, peft
    from tinyml.train.lm import load_run

    import tinyml

    tinyml.set_num_threads(args.threads)
    tinyml.manual_seed(0)
    p = PRESETS[args.config]
    tok, pretrain, new_samplers = _data(p["block_size"], args.batch)
    if args.source:
        base, _ = load_run(args.source)
    elif args.base and os.path.exists(args.base):  # pretrained by an earlier run of this script
        base = GPT(GPTConfig(vocab_size=tok.vocab_size, **p))
        base.load_state_dict(tinyml.load(args.base))
        print(f"pretrained weights read from {args.base}")
    else:
        base = GPT(GPTConfig(vocab_size=tok.vocab_size, **p))
        opt = tinyml.optim.AdamW(base.parameters(), lr=1e-3)
        for _ in range(args.pretrain_steps):
            _, loss = base(*_tensors(pretrain.next_batch()))
            opt.zero_grad()
            loss.backward()
            opt.step()
        if args.base:
            tinyml.save(base.state_dict(), args.base)
    start = {k: v.detach().numpy().copy() for k, v in base.state_dict().items()}
    val_before = _val_loss(base, new_samplers()["val"], args.eval_iters)  # the same batches as every "after"
    rows = []
    chosen = set(args.methods.split(",")) if args.methods else set(methods(args.rank))
    chosen = chosen - {"full"} if args.no_full else chosen | {"full"}
    lrs = learning_rates(args)
    for name, config in methods(args.rank).items():
        if name not in chosen:
            continue
        tinyml.manual_seed(1)
        model = GPT(base.config)
        model.load_state_dict({k: tinyml.tensor(v) for k, v in start.items()})
        if getattr(config, "init", None) == "fisher":  # scored on 4 batches of the new text's training part
            scoring = new_samplers()["train"]
            config.fisher_batches = [tuple(_tensors(scoring.next_batch())) for _ in range(4)]
        if config is not None:
            model = peft.get_peft_model(model, config)
        model.train()
        params = [q for q in model.parameters() if q.requires_grad]
        opt = tinyml.optim.AdamW(params, lr=lrs[name], weight_decay=0.0)
        samplers = new_samplers()
        times, peak, saved = [], 0, {}
        for step in range(args.steps):
            batch = _tensors(samplers["train"].next_batch())
            t0 = time.perf_counter()
            if step == 1:
                with tinyml.memory.track() as m:
                    _, loss = model(*batch)
                    saved = saved_activations(loss, model)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                peak = m.peak_host_bytes
            else:
                _, loss = model(*batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
            times.append(time.perf_counter() - t0)
        param_bytes = sum(q.numel() * 4 for q in model.parameters())
        state_bytes = sum(t.numel() * 4 for s in opt.state.values() for t in s.values()
                          if hasattr(t, "numel") and getattr(t, "ndim", 0) > 0)
        rows.append(dict(method=name, lr=lrs[name], trainable=sum(q.numel() for q in params),
                         memory=param_bytes + state_bytes + peak, saved=sum(saved.values()), by_op=saved,
                         params=param_bytes, grads=sum(q.numel() * 4 for q in params), state=state_bytes,
                         peak=peak,
                         ms=1e3 * statistics.median(times[2:] or times),
                         val=_val_loss(model, new_samplers()["val"], args.eval_iters), val_before=val_before))
        print(f"{name}: lr {lrs[name]:g}, val loss {val_before:.4f} -> {rows[-1]['val']:.4f}, "
              f"{rows[-1]['ms']:.0f} ms/step", flush=True)
    return rows


# ---- part 2: LoRA step, tinyml vs peft on PyTorch --------------------------------------------------
def _batches(cfg: dict, vocab: int, n: int):
    rng = np.random.default_rng(0)
    shape = (cfg["batch"], cfg["block_size"])
    return [(rng.integers(0, vocab, shape), rng.integers(0, vocab, shape)) for _ in range(n)]


def tinyml_worker(cfg: dict, steps: int, threads: int, folder: str) -> dict:
    from tinyml.models import GPT, GPTConfig, peft, save_pretrained

    import tinyml

    tinyml.set_num_threads(threads)
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=cfg["vocab"], block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"]))
    save_pretrained(model, folder)
    model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj",
                                                                                          "c_fc"])).train()
    opt = tinyml.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-3, weight_decay=0.0)
    times, cpu = [], []  # wall and process CPU seconds (all threads) per step
    for x, y in _batches(cfg, cfg["vocab"], steps):
        x, y = tinyml.tensor(x, dtype=tinyml.int64), tinyml.tensor(y, dtype=tinyml.int64)
        t0, c0 = time.perf_counter(), time.process_time()
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"ms": 1e3 * statistics.median(times[2:]), "best": 1e3 * min(times[2:]),
            "cpu_ms": 1e3 * statistics.median(cpu[2:])}


def torch_worker(cfg: dict, steps: int, threads: int, folder: str) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))  # this file is bench/peft.py: skip it, find the package
    sys.path[:] = [q for q in sys.path if os.path.abspath(q or os.curdir) != here]
    sys.modules.pop("peft", None)
    import peft
    import torch
    import transformers

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa")
    model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj",
                                                                                           "c_fc"])).train()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-3, weight_decay=0.0)
    times, cpu = [], []  # wall and process CPU seconds (all threads) per step
    for x, y in _batches(cfg, cfg["vocab"], steps):
        x, y = torch.tensor(x), torch.tensor(y)
        t0, c0 = time.perf_counter(), time.process_time()
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"ms": 1e3 * statistics.median(times[2:]), "best": 1e3 * min(times[2:]),
            "cpu_ms": 1e3 * statistics.median(cpu[2:])}


def run_worker(framework: str, cfg: dict, steps: int, threads: int, folder: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--worker-config",
           json.dumps(cfg), "--steps", str(steps), "--threads", str(threads), "--folder", folder]
    # passive OpenMP waiting for both (tinyml's libgomp loads with it; DESIGN.md): with torch's default
    # spin-waiting, a loaded machine turned its 45 ms baby step into 2-10 s
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{framework} worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict], steps: int) -> None:
    """One line per method; the "x full" columns when full fine-tuning is among the rows."""
    full = next((r for r in rows if r["method"] == "full"), None)

    def ratio(r, key):
        return f"{r[key] / full[key]:>8.3f}" if full else f"{'-':>8}"

    print(f"\nvalidation loss of the pretrained model on the dialogues: {rows[0]['val_before']:.4f}; "
          f"{steps} steps of each method:")
    print(f"{'method':<13}{'lr':>8}{'trainable':>12}{'step memory':>13}{'x full':>8}{'saved act.':>12}"
          f"{'ms/step':>9}{'val loss':>10}{'x full':>8}")
    for r in rows:
        print(f"{r['method']:<13}{r['lr']:>8g}{r['trainable']:>12,}{r['memory'] / 2**20:>10.1f}MiB"
              f"{ratio(r, 'memory')}{r['saved'] / 2**20:>9.1f}MiB{r['ms']:>9.1f}{r['val']:>10.4f}"
              f"{ratio(r, 'val')}")


def print_breakdown(rows: list[dict]) -> None:
    mib = 2 ** 20
    print("\nstep memory (MiB): parameters + optimizer state + peak of the step (gradients, saved "
          "activations and temporaries)")
    for r in rows:
        print(f"{r['method']:<6} parameters {r['params'] / mib:.2f}  gradients {r['grads'] / mib:.2f}  "
              f"optimizer state {r['state'] / mib:.2f}  step peak {r['peak'] / mib:.2f}  total "
              f"{r['memory'] / mib:.2f}")
        for op, n in sorted(r["by_op"].items(), key=lambda kv: -kv[1]):
            print(f"         saved by {op:<24}{n / mib:9.2f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=list(PRESETS), default="small")
    ap.add_argument("--from", dest="source", help="a `tinyml train` run to adapt (default: pretrain here)")
    ap.add_argument("--pretrain-steps", type=int, default=200)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--eval-iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-steps", type=int, default=12)
    ap.add_argument("--peer-rounds", type=int, default=1, help="tinyml/torch worker pairs, order alternating")
    ap.add_argument("--skip-methods", action="store_true", help="part 2 only")
    ap.add_argument("--methods", help="comma-separated subset of part 1's methods (full is always run)")
    ap.add_argument("--no-full", action="store_true", help="leave full fine-tuning out")
    ap.add_argument("--lr-full", type=float, default=3e-4, help="AdamW lr of full fine-tuning")
    ap.add_argument("--lr", type=float, default=3e-3, help="AdamW lr of every adapter method")
    ap.add_argument("--lr-for", action="append", default=[], metavar="METHOD=LR",
                    help="one method's own lr (repeatable), e.g. --lr-for lora=1e-3")
    ap.add_argument("--base", help="safetensors file of the pretrained GPT: read if it exists, else written "
                    "after pretraining, so that several runs adapt the same weights")
    ap.add_argument("--json", help="append one JSON line per method to this file")
    ap.add_argument("--skip-peer", action="store_true", help="part 1 only")
    ap.add_argument("--breakdown", action="store_true", help="where full's and LoRA's step memory goes")
    ap.add_argument("--worker", choices=["tinyml", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-config", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    known = list(methods(args.rank))
    unknown = [m for m in (args.methods or "").split(",") if m and m not in known]
    if unknown:
        ap.error(f"--methods {args.methods}: unknown {', '.join(map(repr, unknown))}; methods: "
                 f"{', '.join(known)}")
    learning_rates(args)  # a bad --lr-for fails here, before any pretraining
    if args.worker:
        fn = tinyml_worker if args.worker == "tinyml" else torch_worker
        print(json.dumps(fn(json.loads(args.worker_config), args.steps, args.threads, args.folder)))
        return
    p = PRESETS[args.config]
    print(f"preset {args.config} ({p}), batch {args.batch}, {args.threads} threads")
    if not args.skip_methods:
        rows = part1(args)
        if args.json:
            run = {k: getattr(args, k) for k in ("config", "steps", "batch", "pretrain_steps")}
            with open(args.json, "a") as f:
                f.writelines(json.dumps(dict(r, **run)) + "\n" for r in rows)
        print_table(rows, args.steps)
        if args.breakdown:
            print_breakdown([r for r in rows if r["method"] in ("full", "lora")])
    if args.skip_peer:
        return
    part2(args, dict(p, batch=args.batch, vocab=65))


def part2(args, cfg: dict) -> None:
    """--peer-rounds rounds of one tinyml and one torch worker, the order alternating (the tinyml
    worker of round 0 writes the weights both load): per round the median step times and their
    ratio, the load average beside them; then the median of the rounds' ratios and best-of. The
    process CPU time per step (all its threads) is printed beside: on a shared machine it moves
    less with the load than the wall time does."""
    print(f"\nLoRA step (r=8, c_attn/c_proj/c_fc), {args.peer_steps} steps per worker (median of all but "
          "the first 2), ms:")
    ratios, cpu_ratios, best = [], [], {"tinyml": float("inf"), "torch": float("inf")}
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.peer_rounds):
            res = {}
            for framework in ("tinyml", "torch") if i % 2 == 0 else ("torch", "tinyml"):
                res[framework] = run_worker(framework, cfg, args.peer_steps, args.threads, folder)
                best[framework] = min(best[framework], res[framework]["best"])
            ratios.append(res["torch"]["ms"] / res["tinyml"]["ms"])
            mine, peer = res["tinyml"], res["torch"]
            cpu_ratios.append(peer["cpu_ms"] / mine["cpu_ms"])
            print(f"round {i}: tinyml {mine['ms']:.1f} (best {mine['best']:.1f}, CPU {mine['cpu_ms']:.0f}), "
                  f"peft on PyTorch {peer['ms']:.1f} (best {peer['best']:.1f}, CPU {peer['cpu_ms']:.0f}), "
                  f"ratio {ratios[-1]:.2f}, of CPU time {cpu_ratios[-1]:.2f}; load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    print(f"ratio (peft time / tinyml time): median of rounds {statistics.median(ratios):.2f}, best-of "
          f"{best['torch'] / best['tinyml']:.2f} (tinyml best {best['tinyml']:.1f} ms, peft best "
          f"{best['torch']:.1f} ms); of CPU seconds per step (all threads), median of rounds "
          f"{statistics.median(cpu_ratios):.2f}")


if __name__ == "__main__":
    main()
