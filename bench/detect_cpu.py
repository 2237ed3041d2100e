"""Detector (models/detection/yolo.py) throughput on the CPU: images/s of a training step and of inference,
tinyml against the same network in PyTorch eager (bench/_torch_detect.py).

    python bench/detect_cpu.py                              # tiny and small at 256 and 512, 2 threads
    python bench/detect_cpu.py --size tiny --img 256 --steps 5

Rows per (size, image size):
    train      tinyml: forward + Detector.loss (task-aligned assignment, BCE + CIoU + DFL) + backward + Adam
    train net  both: forward + sum of squared outputs + backward + Adam (the network alone; the ratio)
    infer      tinyml: Detector.predict on the fused (Conv+BN folded) eval model, decode + NMS included
    infer net  both: eval forward under no_grad (the ratio)
Each framework runs in a worker process of its own (they share libgomp, whose wait policy the first one
fixes), one after the other, with the same batches; medians over --steps timed steps after one warm-up.
ratio = torch time / tinyml time (> 1: tinyml faster); cpu-s/img = process CPU seconds per image (all
threads), and cpu ratio = torch's / tinyml's. The machine's 1-minute load average is printed: on a
shared machine the wall-clock figures move with it, the CPU-time ones much less.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = {256: 8, 512: 4}


def data(img: int, batch: int):
    rng = np.random.default_rng(0)
    images = rng.random((batch, 1, img, img), dtype=np.float32) * 0.2
    targets = []
    for i in range(batch):
        xy = rng.uniform(8, img - 16, (5, 2))
        wh = rng.uniform(2, 9, (5, 2))
        targets.append({"boxes": np.concatenate([xy, xy + wh], 1).astype(np.float32),
                        "labels": np.zeros(5, np.int64)})
    return images, targets


class _Timer:
    """Wall and process CPU time of each step (CPU seconds per image stay comparable when the machine is
    shared: wall time then measures the other tenants too)."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.wall.append(time.perf_counter() - self.t)
        self.cpu.append(time.process_time() - self.c)

    def result(self, batch):  # skips the warm-up step
        return [batch / statistics.median(self.wall[1:]), statistics.median(self.cpu[1:]) / batch]


def tinyml_worker(size: str, img: int, steps: int, threads: int) -> dict:
    from tinyml.models.detection.yolo import Detector

    import tinyml
    tinyml.set_num_threads(threads)
    tinyml.manual_seed(0)
    batch = BATCH[img]
    images, targets = data(img, batch)
    m = Detector(size=size)
    opt = tinyml.optim.Adam(m.parameters(), lr=1e-3)
    x = tinyml.tensor(images)
    out = {"params": sum(p.numel() for p in m.parameters())}
    for name, full in (("train", True), ("train net", False)):
        timer = _Timer()
        for _ in range(steps + 1):
            with timer:
                raw = m(x)
                loss = m.loss(raw, targets)[0] if full else sum((r * r).mean() for r in raw)
                opt.zero_grad()
                loss.backward()
                opt.step()
        out[name] = timer.result(batch)
    m.fuse()
    for name in ("infer", "infer net"):
        timer = _Timer()
        for _ in range(steps + 1):
            with timer:
                if name == "infer":
                    m.predict(x)
                else:
                    with tinyml.no_grad():
                        m(x)
        out[name] = timer.result(batch)
    return out


def torch_worker(size: str, img: int, steps: int, threads: int) -> dict:
    import torch
    sys.path.insert(0, HERE)
    from _torch_detect import TorchDetector

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    batch = BATCH[img]
    x = torch.from_numpy(data(img, batch)[0])
    m = TorchDetector(size)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    out = {"params": sum(p.numel() for p in m.parameters())}
    timer = _Timer()
    for _ in range(steps + 1):
        with timer:
            loss = sum((r * r).mean() for r in m(x))
            opt.zero_grad()
            loss.backward()
            opt.step()
    out["train net"] = timer.result(batch)
    m.eval()
    timer = _Timer()
    with torch.no_grad():
        for _ in range(steps + 1):
            with timer:
                m(x)
    out["infer net"] = timer.result(batch)
    return out


def run_worker(framework: str, size: str, img: int, steps: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", framework, "--size", size, "--img", str(img),
           "--steps", str(steps), "--threads", str(threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{framework} worker failed:\n{res.stderr}")
    return json.loads(res.stdout.splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "small"), action="append")
    parser.add_argument("--img", type=int, choices=sorted(BATCH), action="append")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=("tinyml", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        fn = tinyml_worker if args.worker == "tinyml" else torch_worker
        print(json.dumps(fn(args.size[0], args.img[0], args.steps, args.threads)))
        return
    print(f"{'size':6} {'img':>4} {'batch':>5} {'row':10} {'tinyml img/s':>12} {'torch img/s':>11} "
          f"{'ratio':>6} {'tinyml cpu-s/img':>16} {'torch cpu-s/img':>15} {'cpu ratio':>9}  "
          f"params (tinyml / torch)  load")
    for size in args.size or ["tiny", "small"]:
        for img in args.img or [256, 512]:
            ours = run_worker("tinyml", size, img, args.steps, args.threads)
            peer = run_worker("torch", size, img, args.steps, args.threads)
            load = os.getloadavg()[0]
            for row in ("train", "train net", "infer", "infer net"):
                (rate, cpu), p = ours[row], peer.get(row)
                if p:
                    cols = f"{p[0]:11.2f} {rate / p[0]:6.2f} {cpu:16.3f} {p[1]:15.3f} {p[1] / cpu:9.2f}"
                else:
                    cols = f"{'-':>11} {'-':>6} {cpu:16.3f} {'-':>15} {'-':>9}"
                print(f"{size:6} {img:4d} {BATCH[img]:5d} {row:10} {rate:12.2f} {cols}"
                      f"  {ours['params']} / {peer['params']}  {load:.1f}", flush=True)


if __name__ == "__main__":
    main()
