"""One training loop for every model: AdamW, warmup + cosine, gradient clipping, gradient
accumulation, periodic evaluation with early stopping, metrics, checkpoints and exact resume.

    trainer = Trainer(model, train_batches, val_batches, TrainConfig(max_steps=2000), out_dir="run")
    trainer.fit()                   # Ctrl-C saves run/checkpoint.safetensors before returning
    Trainer(...).fit(resume=True)   # continues bit-exactly from run/checkpoint.safetensors

Resume: the config must optimize as the checkpoint's did (RESUME_MUST_MATCH; a difference is
refused, naming both values). max_steps may change, down to the checkpoint's step: the schedule's
position comes from the checkpoint and its length from this config, so a longer run stretches the
cosine decay to its new end. metrics.jsonl keeps the records up to the resumed step (a fresh fit
empties it); temp files of writers killed mid-write are removed when a fit starts.

Batches: `train_batches` is a sampler with next_batch() (tinyml.data.RandomWindowSampler), or
any iterable of batches (re-iterated when exhausted). A batch that is a tuple is passed as
model(*batch), a dict as model(**batch); numpy arrays become tensors on the device. The model
returns a loss, a (logits, loss) pair, or an object with .loss.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import tinyml
import tinyml.random
from tinyml.device import as_device

from .batches import BatchSource, batch_tokens, loss_of, to_device
from .checkpoint import load_checkpoint, remove_stale_temp_files, save_checkpoint
from .progress import MetricsLog, ProgressBar, plot_loss, require_matplotlib
from .schedule import WarmupCosine

CHECKPOINT = "checkpoint.safetensors"
# what a resumed run must share with its checkpoint to continue the same optimization
RESUME_MUST_MATCH = ("lr", "min_lr", "warmup_steps", "weight_decay", "betas", "grad_clip", "grad_accum")


@dataclass
class TrainConfig:
    max_steps: int = 2000
    lr: float = 1e-3
    min_lr: float | None = None  # None: lr / 10
    warmup_steps: int = 100
    decay_steps: int | None = None  # None: max_steps
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.99)
    grad_clip: float | None = 1.0
    grad_accum: int = 1
    eval_interval: int = 250
    eval_iters: int = 20
    early_stop_patience: int | None = None  # evaluations without improvement before stopping
    log_interval: int = 10
    checkpoint_interval: int | None = None  # None: at every evaluation and at the end
    mixed_precision: bool = False  # bf16 autocast on cuda, where tinyml has autocast
    progress: bool = True


def make_optimizer(model, lr: float, weight_decay: float, betas=(0.9, 0.99)):
    """AdamW with weight decay on matrices only (not on biases, norm gains or 1-d parameters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return tinyml.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=tuple(betas))


class Trainer:
    def __init__(self, model, train_batches, val_batches=None, config: TrainConfig | None = None,
                 out_dir: str | None = None, device=None, extra_state: dict | None = None):
        self.model = model
        self.config = config or TrainConfig()
        cfg = self.config
        if cfg.grad_accum < 1 or cfg.max_steps < 0:
            raise ValueError(f"grad_accum must be >= 1 and max_steps >= 0, "
                             f"got {cfg.grad_accum} and {cfg.max_steps}")
        # as_device: "cpu" must map to the CPU singleton (parts of the core compare devices with `is`)
        self.device = as_device(device) if device is not None else next(iter(model.parameters())).device
        self.train_src = BatchSource(train_batches)
        self.val_batches = val_batches
        self.out_dir = out_dir
        if out_dir:
            require_matplotlib()  # loss.png is drawn at each evaluation
            os.makedirs(out_dir, exist_ok=True)
        self.extra_state = extra_state or {}  # e.g. the model config, checked on resume
        self.optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
        self.scheduler = WarmupCosine(self.optimizer, cfg.lr, cfg.warmup_steps,
                                      cfg.decay_steps or cfg.max_steps, cfg.min_lr)
        self.step = 0
        self.best_val = math.inf
        self.evals_since_best = 0
        self.losses: list[float] = []  # per optimizer step, this process
        self.train_seconds = self.eval_seconds = 0.0  # this process; ms/step counts training only
        self.metrics = MetricsLog(os.path.join(out_dir, "metrics.jsonl") if out_dir else None)
        self.interrupted = False

    # ---- checkpoints ---------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> str | None:
        return os.path.join(self.out_dir, CHECKPOINT) if self.out_dir else None

    def state_dict(self, sampler_state=None, rng_state=None) -> dict:
        return {"step": self.step, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "sampler": sampler_state if sampler_state is not None else self.train_src.state_dict(),
                "rng": rng_state if rng_state is not None else tinyml.random.get_rng_state(),
                "best_val": self.best_val, "evals_since_best": self.evals_since_best,
                "train_config": asdict(self.config), "extra": self.extra_state}

    def save_checkpoint(self, path: str | None = None, **kw) -> str:
        path = path or self.checkpoint_path
        if path is None:
            raise ValueError("save_checkpoint: no path and no out_dir")
        save_checkpoint(path, self.state_dict(**kw))
        return path

    def load_checkpoint(self, path: str | None = None) -> None:
        path = path or self.checkpoint_path
        state = load_checkpoint(path, device=self.device)
        if state.get("extra", {}) != self.extra_state:
            mine, theirs = self.extra_state, state.get("extra", {})
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"checkpoint {path} comes from another configuration "
                             f"(differs in: {', '.join(diff)})")
        self._check_resumable(state, path)
        try:
            self.model.load_state_dict(state["model"], strict=True)
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"checkpoint {path} does not fit this model: {str(e).splitlines()[0]}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        # the schedule's position from the checkpoint, its shape from this config: a larger
        # max_steps (decay_steps) stretches the cosine from where the run stopped
        position = state["scheduler"]["last_step"]
        self.scheduler.load_state_dict({**self.scheduler.state_dict(), "last_step": position})
        self.train_src.load_state_dict(state["sampler"])
        tinyml.random.set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.best_val = float(state["best_val"])
        self.evals_since_best = int(state["evals_since_best"])
        self.metrics.truncate_after(self.step)

    def _check_resumable(self, state: dict, path: str) -> None:
        saved, cfg, step = state.get("train_config") or {}, asdict(self.config), int(state["step"])
        if cfg["max_steps"] < step:
            raise ValueError(f"max_steps {cfg['max_steps']} is below the step of checkpoint {path} ({step}): "
                             "a resumed run can only go on")
        def as_saved(k):  # tinyml.save keeps tuples, but compare betas as tuples whatever wrote the file
            v = saved.get(k, cfg[k])
            return tuple(v) if isinstance(v, list) else v

        differ = [k for k in RESUME_MUST_MATCH if as_saved(k) != cfg[k]]
        if differ:
            was = ", ".join(f"{k}={saved[k]!r}" for k in differ)
            now = ", ".join(f"{k}={cfg[k]!r}" for k in differ)
            raise ValueError(f"checkpoint {path} was trained with {was}; this config has {now}")

    # ---- evaluation ----------------------------------------------------------------------------
    def evaluate(self, on_batch=None) -> float | None:
        """Mean loss over `eval_iters` validation batches, the same batches at every evaluation
        (a sampler is rewound to its state at the first call), without touching training RNG.
        `on_batch(i, n)` is called after each batch (progress)."""
        if self.val_batches is None:
            return None
        src = BatchSource(self.val_batches)
        if not hasattr(self, "_val_start"):
            self._val_start = src.state_dict()
        src.load_state_dict(self._val_start)
        rng = tinyml.random.get_rng_state()
        was_training = self.model.training
        self.model.eval()
        total = 0.0
        try:
            with tinyml.no_grad():
                for i in range(self.config.eval_iters):
                    total += float(self._loss(src.next()).item())
                    if on_batch is not None:
                        on_batch(i + 1, self.config.eval_iters)
        finally:
            self.model.train(was_training)
            tinyml.random.set_rng_state(rng)
        return total / self.config.eval_iters

    def _loss(self, batch):
        batch = to_device(batch, self.device)
        if self.config.mixed_precision and self.device.type == "cuda" and hasattr(tinyml, "autocast"):
            with tinyml.autocast("cuda", dtype=tinyml.bfloat16):
                out = self.model(**batch) if isinstance(batch, dict) else self.model(*batch)
        else:
            out = self.model(**batch) if isinstance(batch, dict) else self.model(*batch)
        return loss_of(out)

    # ---- the loop ------------------------------------------------------------------------------
    def train_step(self) -> tuple[float, float, int]:
        """One optimizer step over grad_accum micro-batches: (mean loss, grad norm, tokens)."""
        cfg = self.config
        total, tokens = 0.0, 0
        for _ in range(cfg.grad_accum):
            batch = self.train_src.next()
            tokens += batch_tokens(batch)
            loss = self._loss(batch)
            # each micro-batch loss is a mean; dividing by grad_accum makes the summed gradient
            # that of the mean over all micro-batches, as one big batch would give
            (loss / cfg.grad_accum).backward()
            total += float(loss.item())
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = float("nan")
        if cfg.grad_clip:
            norm = float(tinyml.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total / cfg.grad_accum, norm, tokens

    def fit(self, resume: bool = False) -> dict:
        """Train to max_steps (or an early stop). The first Ctrl-C finishes the step under way,
        saves a checkpoint and returns; a second one interrupts at once (the checkpoint then
        holds the state before the unfinished step)."""
        cfg = self.config
        if self.out_dir:
            remove_stale_temp_files(self.out_dir)
        if resume:
            self.load_checkpoint()
        else:  # a fresh run in a folder whose last run died before its first checkpoint
            self.metrics.truncate_after(self.step)
        self.model.train()
        bar = ProgressBar(cfg.max_steps, enabled=cfg.progress, every=max(cfg.log_interval, 1) * 5)
        t0, tokens_seen, start_step, stopped = time.perf_counter(), 0, self.step, "max_steps"
        last_ckpt_step = self.step if resume else -1
        # the states a checkpoint must hold if we stop now: always those at a step boundary
        sampler_state, rng_state = self.train_src.state_dict(), tinyml.random.get_rng_state()
        self._stop_requested = False
        previous_handler = self._catch_sigint()
        try:
            while self.step < cfg.max_steps:
                if self._stop_requested:
                    raise KeyboardInterrupt
                lr = self.scheduler.get_last_lr()[0]
                t_step = time.perf_counter()
                try:
                    loss, norm, tokens = self.train_step()
                except KeyboardInterrupt:
                    self._rewind_partial_step(sampler_state, rng_state)
                    raise
                self.train_seconds += time.perf_counter() - t_step
                self.step += 1
                sampler_state, rng_state = self.train_src.state_dict(), tinyml.random.get_rng_state()
                self.losses.append(loss)
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss} at step {self.step}; lower the learning "
                                             "rate or enable gradient clipping")
                tokens_seen += tokens
                rate = tokens_seen / max(self.train_seconds, 1e-9)  # training throughput, evaluations aside
                eta = (time.perf_counter() - t0) / (self.step - start_step) * (cfg.max_steps - self.step)
                bar.update(self.step, loss, rate, eta)
                if self.step % cfg.log_interval == 0 or self.step == cfg.max_steps:
                    self.metrics.write({"step": self.step, "loss": loss, "lr": lr, "grad_norm": norm,
                                        "tokens_per_s": round(rate, 1)})
                due = cfg.eval_interval and (self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps)
                if due and self.val_batches is not None:
                    self._evaluate_and_log(loss, bar)
                ckpt_every = cfg.checkpoint_interval or cfg.eval_interval
                if self.out_dir and ckpt_every and self.step % ckpt_every == 0:
                    self.save_checkpoint()
                    last_ckpt_step = self.step
                if cfg.early_stop_patience and self.evals_since_best >= cfg.early_stop_patience:
                    stopped = "early_stop"
                    bar.message(f"early stop at step {self.step}: no improvement in "
                                f"{self.evals_since_best} evaluations (best val loss {self.best_val:.4f})")
                    break
        except KeyboardInterrupt:
            self.interrupted, stopped = True, "interrupted"
            bar.close()
            if self.out_dir:
                self.save_checkpoint(sampler_state=sampler_state, rng_state=rng_state)
                bar.message(f"interrupted: checkpoint of step {self.step} saved to {self.checkpoint_path}")
            self._plot()
            return self._summary(stopped, t0, tokens_seen)
        finally:
            self._restore_sigint(previous_handler)
        bar.close()
        if self.out_dir and last_ckpt_step != self.step:
            self.save_checkpoint()
        self._plot()
        return self._summary(stopped, t0, tokens_seen)

    def _evaluate_and_log(self, loss: float, bar: ProgressBar) -> None:
        t = time.perf_counter()
        val = self.evaluate(on_batch=lambda i, n: bar.status(f"step {self.step}: evaluating, batch {i}/{n}"))
        seconds = time.perf_counter() - t
        self.eval_seconds += seconds
        self.metrics.write({"step": self.step, "val_loss": val, "train_loss": loss})
        bar.message(f"step {self.step}: train loss {loss:.4f}, val loss {val:.4f} "
                    f"({seconds:.1f}s evaluation)")
        if val < self.best_val - 1e-4:
            self.best_val, self.evals_since_best = val, 0
        else:
            self.evals_since_best += 1
        self._plot()

    def request_stop(self) -> None:
        """Stop after the step under way (what the first Ctrl-C does)."""
        self._stop_requested = True

    def _catch_sigint(self):
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self._stop_requested:  # second Ctrl-C: stop now
                raise KeyboardInterrupt
            self._stop_requested = True

        signal.signal(signal.SIGINT, handler)
        return previous

    @staticmethod
    def _restore_sigint(previous) -> None:
        if previous is not None:
            import signal

            signal.signal(signal.SIGINT, previous)

    def _rewind_partial_step(self, sampler_state, rng_state) -> None:
        # Gradients of a half-done step are dropped; the checkpoint will hold the sampler and RNG
        # as they were before it, so the resumed run redoes the step exactly.
        self.optimizer.zero_grad(set_to_none=True)
        self.train_src.load_state_dict(sampler_state)
        tinyml.random.set_rng_state(rng_state)

    def _plot(self) -> None:
        if self.out_dir:
            plot_loss(self.metrics.records, os.path.join(self.out_dir, "loss.png"))

    def _summary(self, stopped: str, t0: float, tokens: int) -> dict:
        elapsed = time.perf_counter() - t0
        vals = [r["val_loss"] for r in self.metrics.records if "val_loss" in r]
        steps = len(self.losses)
        return {"step": self.step, "stopped": stopped, "seconds": elapsed, "tokens": tokens,
                "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
                # rates over training time only: evaluations, checkpoints and plots are not steps
                "ms_per_step": 1000 * self.train_seconds / steps if steps else None,
                "tokens_per_s": tokens / max(self.train_seconds, 1e-9),
                "final_loss": self.losses[-1] if self.losses else None,
                "val_loss": vals[-1] if vals else None, "best_val_loss": self.best_val}
