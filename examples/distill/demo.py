"""Distillation on the bundled Shakespeare, end to end on a CPU (see README.md beside this file).

    python examples/distill/demo.py --out runs/distill-demo            # 48 min measured on 2 loaded cores
    python examples/distill/demo.py --out /tmp/quick --scale 0.1        # a smoke run, about 2 minutes

GPT: a teacher six layers deep (the baby preset with 6 layers instead of 4), trained through
train/lm.py exactly as `tinyml train` trains (its run folder is a `tinyml train` folder), is
distilled into the baby size with `tinyml distill`, and each student is compared with the same
baby GPT trained from scratch (`tinyml train`) for the same steps on the same batches; validation
loss is each student's own next-token loss on the same held-out windows.
BERT: a 4-layer masked-LM teacher trained on the corpus, DistilBERT into 2 layers (teacher layers
0 and 2), against the same 2-layer BERT trained from scratch on MLM for the same steps.
Prints a table of final validation losses and writes it to OUT/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace

from tinyml.train.distill.mlm import train_mlm_teacher
from tinyml.train.lm import train_lm
from tinyml.train.presets import PRESETS
from tinyml.train.runs import plan_run


def final_val(folder: str) -> float:
    records = [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"))]
    return [r["val_loss"] for r in records if "val_loss" in r][-1]


def _finished(folder: str, steps: int) -> bool:
    path = os.path.join(folder, "metrics.jsonl")
    return os.path.exists(path) and any(json.loads(line).get("step") == steps and "val_loss" in line
                                        for line in open(path))


def tinyml_cli(*args: str) -> float:
    """Run a `tinyml` command (its progress lines go to the terminal); the seconds it took."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tinyml.train.cli", *args], check=True)
    return time.perf_counter() - t


def train_gpt_teacher(out: str, steps: int) -> float:
    """The baby preset six layers deep, trained by train/lm.py (what `tinyml train` runs)."""
    ns = argparse.Namespace(out=out, resume=False, config="baby", steps=steps, batch_size=None, lr=None,
                            eval_interval=None, eval_iters=None, data=None, tokenizer=None, vocab_size=None,
                            seed=None)
    plan = plan_run(ns)
    plan = replace(plan, preset=replace(PRESETS["baby"], n_layer=6), preset_name="baby-6-layers")
    t = time.perf_counter()
    train_lm(plan, "cpu")
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/distill-demo")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every step count (0.1: a smoke run)")
    args = p.parse_args()
    steps = {k: max(int(v * args.scale), 10) for k, v in
             {"teacher": 2000, "student": 400, "bert_teacher": 500, "bert_student": 250}.items()}
    out = args.out
    os.makedirs(out, exist_ok=True)
    teacher, seconds = os.path.join(out, "gpt-teacher"), {}
    if _finished(teacher, steps["teacher"]):  # a rerun keeps the teacher it already trained
        print(f"reusing the teacher in {teacher}")
    else:
        seconds["gpt-teacher"] = train_gpt_teacher(teacher, steps["teacher"])
    common = ["--steps", str(steps["student"]), "--device", "cpu", "--sample-tokens", "0"]
    distill = ["distill", "--teacher", teacher, "--student", "baby", *common]
    runs = {
        "scratch": ["train", "--config", "baby", *common],
        "logit KD, random init": [*distill, "--method", "logit", "--init", "random"],
        "logit KD, inherited layers": [*distill, "--method", "logit"],
        "inherited layers, no KD (alpha 0)": [*distill, "--method", "logit", "--alpha", "0"],
        "sequence KD, random init": [*distill, "--method", "sequence", "--init", "random"],
    }
    folders = {}
    for name, cmd in runs.items():
        folders[name] = os.path.join(out, f"gpt-{len(folders)}-" + name.split(",")[0].replace(" ", "-"))
        seconds[name] = tinyml_cli(*cmd, "--out", folders[name])
    bert_teacher, bert_scratch, bert_student = (os.path.join(out, n) for n in ("bert-teacher", "bert-scratch",
                                                                                "bert-distilbert"))
    t = time.perf_counter()
    train_mlm_teacher(bert_teacher, n_layer=4, steps=steps["bert_teacher"])
    seconds["bert-teacher"] = time.perf_counter() - t
    t = time.perf_counter()
    train_mlm_teacher(bert_scratch, n_layer=2, steps=steps["bert_student"])
    seconds["bert scratch"] = time.perf_counter() - t
    seconds["bert distilbert"] = tinyml_cli("distill", "--teacher", bert_teacher, "--student", "layers=2",
                                            "--method", "distilbert", "--steps", str(steps["bert_student"]),
                                            "--device", "cpu", "--out", bert_student)
    results = {"steps": steps, "seconds": {k: round(v, 1) for k, v in seconds.items()},
               "gpt_val_loss": {"teacher (6 layers)": final_val(teacher),
                                **{name: final_val(f) for name, f in folders.items()}},
               "bert_val_mlm_loss": {"teacher (4 layers)": final_val(bert_teacher),
                                     "2 layers from scratch": final_val(bert_scratch),
                                     "2 layers, DistilBERT": final_val(bert_student)}}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nsteps: {steps}")
    for table in ("gpt_val_loss", "bert_val_mlm_loss"):
        print(f"\n{table}")
        for name, v in results[table].items():
            print(f"  {name:<36} {v:.4f}")
    print(f"\nseconds: {results['seconds']}")


if __name__ == "__main__":
    main()
