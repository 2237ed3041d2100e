"""The detection training loop: train/trainer.py's Trainer (AdamW, warmup + cosine, clipping, atomic
checkpoints, exact resume, Ctrl-C) with what detection adds on top.

    EpochSampler     batches of an AugmentedDataset in a fresh permutation each epoch (default_rng([seed,
                     epoch])); its state (epoch, position) goes in the checkpoint, so a resumed run draws the
                     same batches, and augmentation, seeded by (seed, epoch, index), the same pixels
    DetectTrainer    the Trainer with: the loss parts (cls / box / dfl) and images/s in metrics.jsonl;
                     validation = COCO AP50 / AP / AP_small and Pd / Fa on the val set (evaluate.py, with
                     the run's test-time augmentation `tta`) every eval_every epochs ("auto":
                     auto_eval_epochs) and at the last step, not a validation loss; loss.png with the
                     losses and the APs; and
                     a time limit (ultralytics' `time`): after each epoch the run is re-planned to the number
                     of epochs that fits the limit (the cosine decay ends there), and it stops, evaluated and
                     checkpointed, when the limit is reached; with a ModelEMA (ema.py), the average is
                     updated after every step, evaluations score it, and checkpoints keep it ("ema")
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..checkpoint import load_checkpoint
from ..progress import ProgressBar, require_matplotlib
from ..trainer import Trainer
from .data import collate
from .evaluate import evaluate_detector

__all__ = ["EpochSampler", "DetectTrainer", "Targets", "plot_detection", "auto_eval_epochs"]

MAX_VALIDATIONS = 10  # eval_every="auto": at most about this many validations in a run
EVAL_SHARE = 0.1  # ... and validation compute at most about this fraction of the training compute


def auto_eval_epochs(epochs: int, eval_cost: float) -> int:
    """eval_every="auto": validate every max(1, ceil(epochs / MAX_VALIDATIONS), ceil(eval_cost / EVAL_SHARE))
    epochs, where eval_cost is one validation's compute in epochs of training, estimated from the pixels
    each sees: views x val images x img^2 / (3 x train images x crop^2) (a training image costs a forward
    and a backward pass, ~3 forwards; views = 2^len(tta)). With a time limit, `epochs` is the re-planned
    count, so the cadence follows the plan; the last step is always validated."""
    by_count = math.ceil(max(int(epochs), 1) / MAX_VALIDATIONS)
    by_cost = math.ceil(round(float(eval_cost) / EVAL_SHARE, 9))
    return max(1, by_count, by_cost)


class Targets:
    """A batch's list of target dicts, kept as numpy: the Trainer moves arrays, tuples, lists and dicts
    to the device (batches.to_device) and leaves other objects alone; the detector's loss reads numpy."""

    def __init__(self, targets: list[dict]):
        self.targets = targets


class EpochSampler:
    """next_batch() -> (images (B, C, H, W) float32, Targets); epoch e visits the dataset in the order
    default_rng([seed, e]).permutation(n), the last batch of an epoch holding the remainder.

    prefetch: build the next batch on a worker thread while the caller trains on this one (the kernels
    release the GIL, so decoding, cropping and mosaics overlap the step). A batch is a function of (epoch,
    position) alone (the dataset's sample(i, epoch); a dataset without it gets set_epoch + [i] and no
    prefetch), so the batches are the same with or without it, and a restored state drops the one in
    flight. Only the worker touches the dataset while a batch is in flight; close() stops the thread."""

    def __init__(self, dataset, batch_size: int, seed: int = 0, prefetch: bool = False):
        if len(dataset) == 0:
            raise ValueError("EpochSampler: the training set has no images")
        self.dataset, self.batch_size, self.seed = dataset, int(batch_size), int(seed)
        self.n = len(dataset)
        self.epoch, self.position = 0, 0
        self.steps_per_epoch = math.ceil(self.n / self.batch_size)
        self.prefetch = bool(prefetch) and hasattr(dataset, "sample")
        self._worker = None  # a one-thread executor, started by the first prefetch
        self._pending = None  # ((epoch, position), future) of the batch being built ahead

    def _next_position(self) -> tuple[int, int]:
        """(epoch, position) of the batch next_batch returns next."""
        if self.position >= self.n:
            return self.epoch + 1, 0
        return self.epoch, self.position

    def _build(self, epoch: int, position: int):
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        idx = order[position:position + self.batch_size]
        sample = getattr(self.dataset, "sample", None)
        if sample is None:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            samples = [self.dataset[int(i)] for i in idx]
        else:
            samples = [sample(int(i), epoch) for i in idx]
        images, targets = collate(samples)
        return images, Targets(targets)

    def next_batch(self):
        epoch, position = self._next_position()
        if self._pending is not None and self._pending[0] == (epoch, position):
            batch = self._pending[1].result()
            self._pending = None
        else:
            self._drop_pending()  # one for another position finishes first: the dataset is not shared
            batch = self._build(epoch, position)
        self.epoch, self.position = epoch, position + len(batch[0])
        if self.prefetch:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinyml-batches")
            ahead = self._next_position()
            self._pending = (ahead, self._worker.submit(self._build, *ahead))
        return batch

    def _drop_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(Exception):  # its error belongs to a batch nobody will read
                pending[1].result()

    def close(self) -> None:
        """Wait for the batch in flight and stop the worker thread (a later next_batch starts another)."""
        self._drop_pending()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "n": self.n, "batch_size": self.batch_size,
                "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        mine = {"n": self.n, "batch_size": self.batch_size, "seed": self.seed}
        theirs = {k: int(state[k]) for k in mine}
        if theirs != mine:
            raise ValueError(f"the checkpoint's data order was made for {theirs}; this run has {mine}")
        self._drop_pending()
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class _ImagesBar(ProgressBar):
    def line(self, step, loss, rate, eta_s):  # the Trainer passes images/s in the tokens/s slot
        return super().line(step, loss, rate, eta_s).replace(" tok/s", " img/s")


class DetectTrainer(Trainer):
    """Trainer for a detector on an EpochSampler; `val_dataset` (un-augmented, evaluate.py letterboxes it)
    is scored with test-time augmentation `tta` every `eval_every` epochs (an integer, or "auto":
    auto_eval_epochs with `eval_cost`, one validation's compute in epochs of training; None: every
    config.eval_interval steps as given) and at the last step; checkpoints follow the validations;
    `time_limit` in seconds (None: none) of `clock` (wall time by default; time.process_time makes it a
    CPU-time budget, fair on a shared machine)."""

    def __init__(self, model, sampler: EpochSampler, val_dataset, config, out_dir=None, extra_state=None,
                 img: int = 256, time_limit: float | None = None, eval_batch: int = 8,
                 clock=time.perf_counter, ema=None, eval_every: int | str | None = None,
                 eval_cost: float = 0.0, tta: str = ""):
        super().__init__(model, sampler, None, config, out_dir=out_dir, extra_state=extra_state,
                         loss_fn=self._detection_loss)
        self.ema = ema  # a ModelEMA updated after every step; evaluations score its weights
        self.sampler, self.val_dataset, self.img = sampler, val_dataset, int(img)
        self.eval_every, self.eval_cost, self.tta = eval_every, float(eval_cost), tta
        self._plan_validations()
        self.time_limit, self.eval_batch, self.clock = time_limit, eval_batch, clock
        self.train_cpu_seconds = 0.0  # process CPU time (all threads) inside training steps
        self.last_eval: dict | None = None
        self.last_eval_step = -1
        self.loss_parts: dict = {}
        self.best_ap50 = -1.0
        self._pixels = None

    def eval_epochs(self) -> int | None:
        """Epochs between validations now (auto: for the planned epochs), None when set in steps."""
        if self.eval_every is None:
            return None
        if self.eval_every == "auto":
            planned = math.ceil(self.config.max_steps / self.sampler.steps_per_epoch)
            return auto_eval_epochs(planned, self.eval_cost)
        return int(self.eval_every)

    def cadence(self) -> str:
        """The validation cadence in words, for the log."""
        every = self.eval_epochs()
        if every is None:
            return f"every {self.config.eval_interval} steps"
        auto = "auto: " if self.eval_every == "auto" else ""
        return f"{auto}every {every} epoch{'s' if every > 1 else ''} and at the end"

    def _plan_validations(self) -> None:
        every = self.eval_epochs()
        if every is not None:
            self.config.eval_interval = every * self.sampler.steps_per_epoch

    def _detection_loss(self, model, batch):
        """The Trainer's loss_fn: model.loss(model(images), targets); the parts are kept for the log."""
        images, targets = batch
        total, self.loss_parts = model.loss(model(images), targets.targets)
        return total

    def train_step(self):
        cpu = time.process_time()
        loss, norm, tokens = super().train_step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.train_cpu_seconds += time.process_time() - cpu
        images = tokens // self._pixels_per_image()  # Trainer counts the batch's first array's elements
        return loss, norm, images

    def state_dict(self, sampler_state=None, rng_state=None) -> dict:
        state = super().state_dict(sampler_state, rng_state)
        state["tta"] = self.tta  # the run's test-time augmentation: load_detector's info["tta"]
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_checkpoint(self, path: str | None = None) -> None:
        super().load_checkpoint(path)
        if self.ema is not None:  # the Trainer's loader keeps only its own parts: read the file again
            path = path or self.checkpoint_path
            state = load_checkpoint(path)
            if not state.get("ema"):
                raise ValueError(f"checkpoint {path} holds no EMA of the weights, which this run keeps")
            self.ema.load_state_dict(state["ema"])

    def _pixels_per_image(self) -> int:
        if self._pixels is None:
            image = self.sampler.dataset[0][0]
            self._pixels = int(np.prod(image.shape))
        return self._pixels

    def _begin(self, resume: bool):
        run = super()._begin(resume)
        cfg = self.config
        run.bar = _ImagesBar(cfg.max_steps, enabled=cfg.progress, every=max(cfg.log_interval, 1) * 5)
        run.started = self.clock()
        return run

    def _log_step(self, run, loss: float, lr: float, norm: float) -> None:
        cfg = self.config
        rate = run.tokens / max(self.train_seconds, 1e-9)  # images/s of training, evaluations aside
        eta = (time.perf_counter() - run.t0) / (self.step - run.start_step) * (cfg.max_steps - self.step)
        run.bar.update(self.step, loss, rate, eta)
        if self.step % cfg.log_interval == 0 or self.step == cfg.max_steps:
            parts = self.loss_parts
            epoch = round(self.step / self.sampler.steps_per_epoch, 3)
            self.metrics.write({"step": self.step, "epoch": epoch, "loss": loss,
                                **{k: float(v) for k, v in parts.items()}, "lr": lr, "grad_norm": norm,
                                "images_per_s": round(rate, 2)})

    def evaluate_now(self, run=None) -> dict:
        """AP and Pd / Fa on the val set, logged to metrics.jsonl and plotted."""
        t = time.perf_counter()
        bar = run.bar if run is not None else None
        status = (lambda i, n: bar.status(f"step {self.step}: evaluating, image {i}/{n}")) if bar else None
        with self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext():
            m = evaluate_detector(self.model, self.val_dataset, self.img, self.eval_batch, on_batch=status,
                                  tta=self.tta)
        seconds = time.perf_counter() - t
        self.eval_seconds += seconds
        record = {"step": self.step, "epoch": round(self.step / self.sampler.steps_per_epoch, 3),
                  **{f"val_{k}": m[k] for k in ("AP50", "AP", "AP75", "AP_small", "AR100", "Pd", "Fa")},
                  "tta": self.tta or "none", "eval_s": round(seconds, 3)}
        self.metrics.write(record)
        self.last_eval, self.last_eval_step = m, self.step
        self.best_ap50 = max(self.best_ap50, m["AP50"])
        if bar is not None:
            bar.message(f"step {self.step} (epoch {record['epoch']:g}): val AP50 {m['AP50']:.4f}, AP "
                        f"{m['AP']:.4f}, AP_small {m['AP_small']:.4f}, Pd {m['Pd']:.3f}, Fa {m['Fa']:.2e} "
                        f"(tta {self.tta or 'none'}, {seconds:.1f}s evaluation)")
        self._plot()
        return m

    def _maybe_evaluate(self, run, loss: float) -> None:
        cfg = self.config
        due = cfg.eval_interval and (self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps)
        if due and self.val_dataset is not None:
            self.evaluate_now(run)
        if self.time_limit is not None:
            self._keep_to_time_limit(run)

    def _keep_to_time_limit(self, run) -> None:
        """At an epoch's end, stretch or shrink the run to the epochs that fit the limit (at least one more
        than done); at any step, stop once the limit is reached (evaluating first if this step was not)."""
        elapsed = self.clock() - run.started
        spe = self.sampler.steps_per_epoch
        if elapsed >= self.time_limit:
            if self.val_dataset is not None and self.last_eval_step != self.step:
                self.evaluate_now(run)
            run.stopped = "time_limit"
            run.bar.message(f"time limit of {self.time_limit / 60:g} min reached at step {self.step}")
            return
        if self.step % spe == 0 and self.step > run.start_step:
            per_step = elapsed / (self.step - run.start_step)
            fits = self.step + (self.time_limit - elapsed) / per_step  # steps that end at the limit
            epochs = max(self.step // spe + 1, round(fits / spe))
            steps = epochs * spe
            if steps != self.config.max_steps:
                self.config.max_steps = steps
                self.scheduler.decay_steps = max(steps, self.scheduler.warmup_steps + 1)
                run.bar.total = steps
                self._plan_validations()  # eval_every auto follows the plan

    def _finish(self, run):
        summary = super()._finish(run)
        summary.update(stopped=run.stopped, val=self.last_eval, best_ap50=self.best_ap50,
                       epochs=round(self.step / self.sampler.steps_per_epoch, 3),
                       images_per_s=run.tokens / max(self.train_seconds, 1e-9),
                       images=run.tokens, train_cpu_seconds=self.train_cpu_seconds)
        return summary

    def _plot(self) -> None:
        if self.out_dir:
            plot_detection(self.metrics.records, os.path.join(self.out_dir, "loss.png"))


def plot_detection(records: list[dict], path: str) -> bool:
    """Two panels: training loss and its parts against step; validation AP50 / AP / AP_small and Pd."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_AP50" in r]
    if not train and not val:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for key, style in (("loss", "-"), ("cls", "--"), ("box", "--"), ("dfl", "--")):
        points = [(r["step"], r[key]) for r in train if key in r]
        if points:
            left.plot(*zip(*points), style, label=key, linewidth=1)
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    if train:  # the total is the sum of the parts times the batch size: a log axis shows both
        left.set_yscale("log")
    left.grid(alpha=0.3)
    left.legend()
    for key in ("val_AP50", "val_AP", "val_AP_small", "val_Pd"):
        points = [(r["step"], r[key]) for r in val if key in r]
        if points:
            right.plot(*zip(*points), "o-", label=key[4:], linewidth=1.5, markersize=3)
    right.set_xlabel("step")
    right.set_ylabel("validation")
    right.set_ylim(0, 1)
    right.grid(alpha=0.3)
    if val:
        right.legend()
    fig.tight_layout()
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return True
