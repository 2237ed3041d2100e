"""The generic training loop: AdamW, warmup + cosine, gradient clipping, gradient accumulation,
periodic evaluation with early stopping, metrics, checkpoints and exact resume, for any model and
any loss. It knows nothing of what is being trained: the task is the batches and `loss_fn`.

    trainer = Trainer(model, train_batches, val_batches, TrainConfig(max_steps=2000), out_dir="run")
    trainer.fit()                   # Ctrl-C saves run/checkpoint.safetensors before returning
    Trainer(...).fit(resume=True)   # continues bit-exactly from run/checkpoint.safetensors
    Trainer(..., loss_fn=my_loss)   # my_loss(model, batch) -> a one-element tensor

The task seam: `loss_fn(model, batch)` gets each batch with its arrays already tensors on the
device and returns the loss to minimize; training and evaluation both use it. The default,
`model_loss` (train/batches.py), calls the model on the batch and takes the loss it returns.

Resume: the config must optimize as the checkpoint's did (RESUME_MUST_MATCH, checked by
train/checkpoint.py's check_resumable; a difference is refused, naming both values). max_steps
may change, down to the checkpoint's step: the schedule's position comes from the checkpoint and
its length from this config, so a longer run stretches the cosine decay to its new end.
metrics.jsonl keeps the records up to the resumed step (a fresh fit empties it); temp files of
writers killed mid-write are removed when a fit starts.

Batches: `train_batches` is a sampler with next_batch() (and state_dict/load_state_dict, which
exact resume needs), or any iterable of batches (re-iterated when exhausted): train/batches.py.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field

import tinyml
import tinyml.random
from tinyml.device import as_device
from tinyml.optim.param_groups import param_groups

from .batches import BatchSource, batch_tokens, model_loss, to_device
from .checkpoint import check_resumable, load_checkpoint, remove_stale_temp_files, save_checkpoint
from .progress import MetricsLog, ProgressBar, plot_loss, require_matplotlib
from .schedule import WarmupCosine

CHECKPOINT = "checkpoint.safetensors"  # the file name in out_dir


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
    compile: bool = False  # loss+backward+clipping replayed by tinyml.compile (grad_accum 1; docs/compile.md)


def make_optimizer(model, lr: float, weight_decay: float, betas=(0.9, 0.99)):
    """AdamW with weight decay on matrices only (not on biases, norm gains or 1-d parameters), except
    where a module's `optim_hints` say otherwise for its own parameters (the SSMs' A and dt: no decay,
    a capped learning rate; tinyml/optim/param_groups.py). The schedule scales every group's rate
    by the same factor, so a capped group keeps its ratio to the others."""
    groups = param_groups(model, lr, weight_decay)
    return tinyml.optim.AdamW(groups, lr=lr, betas=tuple(betas))


@dataclass
class _Fit:
    """What one fit() call tracks beside the Trainer's own state."""
    bar: ProgressBar
    start_step: int
    last_checkpoint: int  # the step of the newest checkpoint on disk from this fit (-1: none yet)
    boundary: tuple  # (sampler, RNG) states after the last finished step: what a checkpoint taken now holds
    # `time` is looked up when a run starts, not at import, so a test may swap the clock
    t0: float = field(default_factory=lambda: time.perf_counter())
    tokens: int = 0
    stopped: str = "max_steps"  # or early_stop, interrupted


class Trainer:
    """Trains `model` on `train_batches` with `loss_fn(model, batch)` (default: the loss the model
    returns), evaluating on `val_batches`; `out_dir` (optional) receives checkpoint.safetensors,
    metrics.jsonl and loss.png. `extra_state` is saved in checkpoints and must match on resume."""

    def __init__(self, model, train_batches, val_batches=None, config: TrainConfig | None = None,
                 out_dir: str | None = None, device=None, extra_state: dict | None = None, loss_fn=None):
        self.model = model
        self.config = config or TrainConfig()
        cfg = self.config
        if cfg.grad_accum < 1 or cfg.max_steps < 0:
            raise ValueError(f"grad_accum must be >= 1 and max_steps >= 0, "
                             f"got {cfg.grad_accum} and {cfg.max_steps}")
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"loss_fn must be a function (model, batch) -> loss, "
                            f"got {type(loss_fn).__name__}")
        self.loss_fn = loss_fn or model_loss
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
        self._stop_requested = False

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
        check_resumable(state, asdict(self.config), self.extra_state, path)
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

    # ---- the loss ------------------------------------------------------------------------------
    def _loss(self, batch):
        """loss_fn on the batch moved to the device (under bf16 autocast when mixed_precision is
        on for cuda); refuses a result that is not a one-element tensor."""
        batch = to_device(batch, self.device)
        autocast = self.config.mixed_precision and self.device.type == "cuda" and hasattr(tinyml, "autocast")
        with tinyml.autocast("cuda", dtype=tinyml.bfloat16) if autocast else contextlib.nullcontext():
            loss = self.loss_fn(self.model, batch)
        if not isinstance(loss, tinyml.Tensor) or loss.numel() != 1:
            got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, tinyml.Tensor) else repr(loss)
            raise TypeError(f"the loss must be a one-element tensor, got {got} "
                            f"(from {getattr(self.loss_fn, '__name__', self.loss_fn)})")
        return loss

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

    def train_step(self) -> tuple[float, float, int]:
        """One optimizer step over grad_accum micro-batches: (mean loss, grad norm, tokens)."""
        cfg = self.config
        if cfg.compile and cfg.grad_accum == 1:
            return self._compiled_train_step()
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

    def _compiled_train_step(self) -> tuple[float, float, int]:
        """train_step (grad_accum 1) with loss, backward and clipping through tinyml.compile."""
        if getattr(self, "_gradient_step", None) is None:
            def gradient_step(batch):
                loss = self._loss(batch)
                loss.backward()
                clip = self.config.grad_clip
                params = [p for p in self.model.parameters() if p.grad is not None]
                return loss, (tinyml.nn.utils.clip_grad_norm_(params, clip) if clip else None)
            self._gradient_step = tinyml.compile(gradient_step)
        batch = self.train_src.next()
        loss, norm = self._gradient_step(to_device(batch, self.device))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return float(loss.item()), float("nan") if norm is None else float(norm), batch_tokens(batch)

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict:
        """Train to max_steps (or an early stop). The first Ctrl-C finishes the step under way,
        saves a checkpoint and returns; a second one interrupts at once (the checkpoint then
        holds the state before the unfinished step). Returns the summary of the run."""
        run = self._begin(resume)
        with self._first_ctrl_c_stops():
            try:
                while self.step < self.config.max_steps and run.stopped == "max_steps":
                    loss = self._advance(run)
                    self._maybe_evaluate(run, loss)
                    self._maybe_checkpoint(run)
                    self._maybe_stop_early(run)
            except KeyboardInterrupt:
                self._on_interrupt(run)
        return self._finish(run)

    def request_stop(self) -> None:
        """Stop after the step under way (what the first Ctrl-C does)."""
        self._stop_requested = True

    def _begin(self, resume: bool) -> _Fit:
        if self.out_dir:
            remove_stale_temp_files(self.out_dir)
        if resume:
            self.load_checkpoint()
        else:  # a fresh run in a folder whose last run died before its first checkpoint
            self.metrics.truncate_after(self.step)
        self.model.train()
        self._stop_requested = False
        cfg = self.config
        return _Fit(bar=ProgressBar(cfg.max_steps, enabled=cfg.progress, every=max(cfg.log_interval, 1) * 5),
                    start_step=self.step, last_checkpoint=self.step if resume else -1,
                    boundary=(self.train_src.state_dict(), tinyml.random.get_rng_state()))

    def _advance(self, run: _Fit) -> float:
        """One optimizer step, timed and logged; returns its loss. A Ctrl-C inside the step
        rewinds it (see _rewind_partial_step); a non-finite loss ends the run."""
        if self._stop_requested:
            raise KeyboardInterrupt
        lr = self.scheduler.get_last_lr()[0]
        started = time.perf_counter()
        try:
            loss, norm, tokens = self.train_step()
        except KeyboardInterrupt:
            self._rewind_partial_step(*run.boundary)
            raise
        self.train_seconds += time.perf_counter() - started
        self.step += 1
        run.boundary = (self.train_src.state_dict(), tinyml.random.get_rng_state())
        self.losses.append(loss)
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {self.step}; lower the learning "
                                     "rate or enable gradient clipping")
        run.tokens += tokens
        self._log_step(run, loss, lr, norm)
        return loss

    def _log_step(self, run: _Fit, loss: float, lr: float, norm: float) -> None:
        cfg = self.config
        rate = run.tokens / max(self.train_seconds, 1e-9)  # training throughput, evaluations aside
        eta = (time.perf_counter() - run.t0) / (self.step - run.start_step) * (cfg.max_steps - self.step)
        run.bar.update(self.step, loss, rate, eta)
        if self.step % cfg.log_interval == 0 or self.step == cfg.max_steps:
            self.metrics.write({"step": self.step, "loss": loss, "lr": lr, "grad_norm": norm,
                                "tokens_per_s": round(rate, 1)})

    def _maybe_evaluate(self, run: _Fit, loss: float) -> None:
        """At every eval_interval steps and at the last step: validation loss, logged and plotted."""
        cfg = self.config
        due = cfg.eval_interval and (self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps)
        if not due or self.val_batches is None:
            return
        bar, t = run.bar, time.perf_counter()
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

    def _maybe_checkpoint(self, run: _Fit) -> None:
        """Every checkpoint_interval steps (default: eval_interval)."""
        every = self.config.checkpoint_interval or self.config.eval_interval
        if self.out_dir and every and self.step % every == 0:
            self.save_checkpoint()
            run.last_checkpoint = self.step

    def _maybe_stop_early(self, run: _Fit) -> None:
        patience = self.config.early_stop_patience
        if patience and self.evals_since_best >= patience:
            run.stopped = "early_stop"
            run.bar.message(f"early stop at step {self.step}: no improvement in "
                            f"{self.evals_since_best} evaluations (best val loss {self.best_val:.4f})")

    def _on_interrupt(self, run: _Fit) -> None:
        """Checkpoint the state at the last step boundary, so a resume redoes no half step."""
        self.interrupted, run.stopped = True, "interrupted"
        run.bar.close()
        if self.out_dir:
            self.save_checkpoint(sampler_state=run.boundary[0], rng_state=run.boundary[1])
            run.last_checkpoint = self.step
            run.bar.message(f"interrupted: checkpoint of step {self.step} saved to {self.checkpoint_path}")

    def _rewind_partial_step(self, sampler_state, rng_state) -> None:
        # Gradients of a half-done step are dropped; the checkpoint will hold the sampler and RNG
        # as they were before it, so the resumed run redoes the step exactly.
        self.optimizer.zero_grad(set_to_none=True)
        self.train_src.load_state_dict(sampler_state)
        tinyml.random.set_rng_state(rng_state)

    def _finish(self, run: _Fit) -> dict:
        """The last checkpoint (unless this step has one), loss.png, and the summary."""
        run.bar.close()
        if self.out_dir and run.last_checkpoint != self.step:
            self.save_checkpoint()
        self._plot()
        elapsed, steps = time.perf_counter() - run.t0, len(self.losses)
        vals = [r["val_loss"] for r in self.metrics.records if "val_loss" in r]
        return {"step": self.step, "stopped": run.stopped, "seconds": elapsed, "tokens": run.tokens,
                "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
                # rates over training time only: evaluations, checkpoints and plots are not steps
                "ms_per_step": 1000 * self.train_seconds / steps if steps else None,
                "tokens_per_s": run.tokens / max(self.train_seconds, 1e-9),
                "final_loss": self.losses[-1] if self.losses else None,
                "val_loss": vals[-1] if vals else None, "best_val_loss": self.best_val}

    def _plot(self) -> None:
        if self.out_dir:
            plot_loss(self.metrics.records, os.path.join(self.out_dir, "loss.png"))

    @contextlib.contextmanager
    def _first_ctrl_c_stops(self):
        """While it is open, the first SIGINT only requests a stop; a second raises
        KeyboardInterrupt. Python delivers signals to the main thread only: elsewhere, no change."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop_requested:  # second Ctrl-C: stop now
                raise KeyboardInterrupt
            self._stop_requested = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:  # None: a handler not installed from Python; the default is the nearest
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
