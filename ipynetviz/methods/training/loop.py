"""The one training loop of the project: a :class:`Run` with pause/stop, progress, history and checkpoints.

The zoo's trainer, the Training lab, the compression lab and the dynamics lab all train through
:func:`~ipynetviz.methods.training.train`, which builds a ``Run``. A run trains in a background thread
(``background=False`` trains in the caller's thread, for scripts and tests) and is deterministic for a
``seed`` on a given device: the model factory (if given) is called after ``torch.manual_seed(seed)`` and the
data order and augmentation draw from their own generator seeded ``10_000 + seed``.

How other labs plug in (all of it runs in the training thread, between two steps):

* **Hooks**: ``hooks=[obj, ...]`` where ``obj`` has any of ``on_start(run)``, ``after_backward(run, step)``
  (gradients are in ``p.grad``: zero those of pruned weights here), ``after_step(run, step)`` (the optimiser
  stepped: re-apply pruning masks, take measurements, freeze layers with ``run.freeze("conv1")``),
  ``on_epoch_end(run, epoch)``, ``on_end(run)``. ``step`` counts optimisation steps done (1 after the first).
  During a step ``run.inputs``, ``run.targets``, ``run.outputs`` and ``run.loss`` hold the batch.
* **Custom update**: ``param_update(run, step)`` replaces ``optimizer.step()`` (trained quantisation:
  update the shared centroids from ``p.grad``); ``run.optimizer`` and ``run.lr`` are still there.
* **Parameter groups**: ``param_groups=callable(model) -> [{"params": [...], "weight_decay": ..., "lr": ...}]``
  (torch's format; groups without a key get the run's ``lr`` / ``weight_decay``).
* **Frozen layers**: ``frozen=["conv1"]`` at the start, ``run.freeze(...)`` / ``run.unfreeze(...)`` mid-run.
  A frozen parameter gets no gradient, so no optimiser (weight decay and momentum included) touches it.
* **Stages** (DSD: dense, sparse, dense with a lower lr): one run per stage on the same model, one after
  the other (``train(...).wait()``); a model can be trained by only one run at a time.
* **Checkpoints** at fractions of training: ``checkpoints=[0, 0.25, 0.5, 1]``, in memory or under
  ``checkpoint_dir`` (written atomically), at most ``max_checkpoints``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from ipynetviz.methods.training import train
    >>> x, y = torch.randn(64, 4), torch.arange(64) % 2
    >>> run = train(lambda: nn.Linear(4, 2), (x, y), epochs=3, batch_size=16, optimizer="sgd", lr=0.1,
    ...             checkpoints=[0, 1], background=False)
    >>> run.complete, run.step, [c.step for c in run.checkpoints]
    (True, 12, [0, 12])
"""
from __future__ import annotations

import atexit
import math
import threading
import time
import weakref
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ...engine.control import check_cancel, is_cancelled, progress_reporter
from ...engine.errors import IpynetvizError, SettingError
from . import checkpoints as _ckpt
from .history import History

_TRAINING: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()
_TRAINING_LOCK = threading.Lock()
_LIVE_RUNS: "weakref.WeakSet[Run]" = weakref.WeakSet()


@atexit.register
def _stop_all(timeout: float = 10.0) -> None:
    """At interpreter exit, stop every background run and let its thread leave torch's kernels first
    (a daemon thread still inside one when the interpreter tears down can abort the process)."""
    runs = [r for r in list(_LIVE_RUNS) if not r.done]
    for run in runs:
        run.stop()
    for run in runs:
        run._done.wait(timeout / max(1, len(runs)))


class RunBusyError(IpynetvizError):
    """A model that another run is still training."""


class Run:
    """One training run; built by :func:`~ipynetviz.methods.training.train`, not directly.

    Attributes:
        model: the model being trained (on ``device``).
        optimizer, scheduler: the torch objects.
        history: a :class:`~ipynetviz.methods.training.history.History` growing as it trains.
        checkpoints: the :class:`Checkpoint` s taken so far (at most ``max_checkpoints``).
        last_good: the newest checkpoint whose weights were finite (kept for a divergent run).
        step, total_steps, epoch: where it is. ``progress``: ``step / total_steps``.
        state: ``"running"``, ``"paused"``, ``"finished"``, ``"stopped"``, ``"diverged"`` or ``"failed"``.
        complete: True only when every planned step ran.
        error: a message naming the problem and the fix (divergence, a failing hook), else ``""``.
    """

    def __init__(self, *, model, optimizer, scheduler, data, loss, transform, augment, epochs, batch_size,
                 steps, seed, device, hooks, param_update, checkpoint_fractions, checkpoint_dir,
                 max_checkpoints, good_every, cancel, progress, callback, callback_every, evaluator):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.x, self.y = data
        self.loss_fn, self.transform, self.augment = loss, transform, augment
        self.epochs, self.batch_size, self.seed, self.device = epochs, batch_size, seed, device
        self.hooks = list(hooks)
        self.param_update = param_update
        self.generator = torch.Generator().manual_seed(10_000 + seed)
        self.steps_per_epoch = math.ceil(len(self.x) / batch_size)
        self.total_steps = min(epochs * self.steps_per_epoch, steps) if steps else epochs * self.steps_per_epoch
        self._ckpt_steps = sorted({round(f * self.total_steps) for f in checkpoint_fractions})
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.max_checkpoints = max_checkpoints
        self.good_every = good_every
        self.evaluator = evaluator
        self._cancel, self._progress = cancel, progress
        self._callback, self._callback_every = callback, callback_every
        self.history = History()
        self.corrupted = self.dataset = self.test = None  # set by train() for named data / corruptions
        self.checkpoints: list[_ckpt.Checkpoint] = []
        self.last_good: _ckpt.Checkpoint | None = None
        self.step = 0
        self.epoch = 0
        self.state = "running"
        self.error = ""
        self.exception: BaseException | None = None
        self.inputs = self.targets = self.outputs = self.loss = None
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._done = threading.Event()
        self._held = threading.Event()  # set while the loop waits in a pause (between two steps) or is over
        self._thread: threading.Thread | None = None
        self._t_start = self._t_paused = 0.0
        self._paused_total = 0.0
        self._t_end = 0.0
        self._was_eval = not model.training
        self._report = lambda done: None

    # ------------------------------------------------------------------------------------ control
    def pause(self) -> None:
        """Hold training at the next step boundary (``resume()`` continues)."""
        if not self._done.is_set():
            self._resume.clear()

    def resume(self) -> None:
        """Continue a paused run."""
        self._resume.set()

    def stop(self) -> None:
        """Stop at the next step boundary; the partial history and checkpoints stay (``complete`` is False)."""
        self._stop.set()
        self._resume.set()

    def wait(self, timeout: float | None = None) -> "Run":
        """Block until the run ends (or ``timeout`` seconds pass); re-raises an unexpected error of the loop."""
        self._done.wait(timeout)
        if self.exception is not None:
            raise self.exception
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def complete(self) -> bool:
        return self.state == "finished"

    @property
    def progress(self) -> float:
        return self.step / max(1, self.total_steps)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def elapsed(self) -> float:
        """Seconds spent training (pauses excluded)."""
        if not self._t_start:
            return 0.0
        paused = self._paused_total + (time.perf_counter() - self._t_paused if self._t_paused else 0.0)
        end = self._t_end if self._done.is_set() else time.perf_counter()
        return max(0.0, end - self._t_start - paused)

    @property
    def steps_per_second(self) -> float:
        t = self.elapsed
        return self.step / t if t > 0 else 0.0

    # --------------------------------------------------------------------------------- layers
    def _params_of(self, names: Sequence[str]) -> list[nn.Parameter]:
        modules = dict(self.model.named_modules())
        params = []
        for name in names:
            if name not in modules:
                from ...engine.errors import LayerNotFoundError
                raise LayerNotFoundError(name, [n for n in modules if n])
            params += list(modules[name].parameters())
        return params

    def freeze(self, *names: str) -> None:
        """Stop training the named layers (their parameters get no gradient from the next step on)."""
        for p in self._params_of(names):
            p.requires_grad_(False)
            p.grad = None

    def unfreeze(self, *names: str) -> None:
        """Train the named layers again."""
        for p in self._params_of(names):
            p.requires_grad_(True)

    def restore(self, checkpoint: _ckpt.Checkpoint) -> None:
        """Load a checkpoint's weights into the model (only when the run is not training)."""
        if not self._done.is_set() and threading.current_thread() is not self._thread:
            raise RunBusyError("the run is still training; call run.stop() and run.wait() before run.restore()")
        self.model.load_state_dict(checkpoint.load())

    def save(self, path, timeout: float = 60.0) -> _ckpt.Checkpoint:
        """Write the model's weights now to the file ``path`` (a ``state_dict``; ``torch.load`` reads it).

        The file is written to a temporary name beside ``path`` and renamed into place, so a failed write
        leaves no half-written file (and an older file at ``path`` intact). A run still training is held
        between two steps while its weights are copied, then continues.

        Returns:
            A :class:`Checkpoint` of the file (step, epoch, fraction, path).
        """
        if self._done.is_set() or threading.current_thread() is self._thread or self._thread is None:
            state = _ckpt.snapshot(self.model)
        else:
            was_running = self._resume.is_set()
            self.pause()
            try:
                if not self._held.wait(timeout):
                    raise RunBusyError(f"the run did not reach a step boundary within {timeout:g} s; "
                                       "pause it (run.pause()) and try again")
                state = _ckpt.snapshot(self.model)
            finally:
                if was_running:
                    self.resume()
        path = _ckpt.write_atomically(state, Path(path))
        return _ckpt.Checkpoint(self.step, self.epoch, self.progress, path=path)

    def load(self, path) -> _ckpt.Checkpoint:
        """Load weights saved by :meth:`save` (or any ``state_dict`` file of this model) into the model.

        Only while the run is paused or over (a running run is asked to pause first).

        Raises:
            RunBusyError: the run is training.
            SettingError: no such file, or it holds weights of another model (the message names the keys).
        """
        if not (self._done.is_set() or self._held.is_set() or threading.current_thread() is self._thread):
            raise RunBusyError("the run is training; pause it (run.pause()) or stop it before loading weights")
        path = Path(path)
        if not path.is_file():
            raise SettingError(f"no weights file {str(path)!r}; save one first (run.save(path)) or check the path")
        checkpoint = _ckpt.Checkpoint(self.step, self.epoch, self.progress, path=path)
        state = checkpoint.load()
        own = self.model.state_dict()
        if not isinstance(state, dict) or set(state) != set(own) or any(
                tuple(state[k].shape) != tuple(own[k].shape) for k in own):
            missing = sorted(set(own) - set(state)) if isinstance(state, dict) else sorted(own)
            raise SettingError(f"{str(path)!r} holds weights of another model (missing {missing[:3]}, or other "
                               f"shapes); load a file saved from this model ({type(self.model).__name__})")
        self.model.load_state_dict(state)
        return checkpoint

    # ------------------------------------------------------------------------------------ loop
    def _start(self, background: bool) -> "Run":
        if background:
            _LIVE_RUNS.add(self)
            self._thread = threading.Thread(target=self._main, name="ipynetviz-train", daemon=True)
            self._thread.start()
        else:
            self._main()
            if self.exception is not None:
                raise self.exception
        return self

    def _main(self) -> None:
        self._t_start = time.perf_counter()
        try:
            with progress_reporter(self._progress, self.total_steps, desc="training", unit="step") as report:
                self._report = report
                self._loop()
        except BaseException as err:  # a failing hook or model: say so, keep what was recorded
            self.exception = err
            self.error = f"training failed at step {self.step}: {type(err).__name__}: {err}"
            self.state = "failed"
            try:  # let views show the failure (a view's own error must not hide the first one)
                self._call("on_end")
            except Exception:
                pass
        finally:
            self._t_end = time.perf_counter()
            if self._was_eval:
                self.model.eval()
            with _TRAINING_LOCK:
                _TRAINING.discard(self.model)
            self._held.set()
            self._done.set()

    def _checkpoint(self) -> None:
        if len(self.checkpoints) >= self.max_checkpoints:
            return
        self.checkpoints.append(_ckpt.take(self.model, self.step, self.epoch, self.total_steps,
                                           self.checkpoint_dir))

    def _keep_good(self) -> None:
        state = _ckpt.snapshot(self.model)
        if _ckpt.all_finite(state):
            self.last_good = _ckpt.Checkpoint(self.step, self.epoch, self.progress, state=state)

    def _should_stop(self) -> bool:
        if not self._resume.is_set():
            self._t_paused = time.perf_counter()
            self.state = "paused"
            self._held.set()
            self._resume.wait()
            self._held.clear()
            self._paused_total += time.perf_counter() - self._t_paused
            self._t_paused = 0.0
            self.state = "running"
        return self._stop.is_set() or is_cancelled(self._cancel)

    def _call(self, name: str, *args) -> None:
        for hook in self.hooks:
            fn = getattr(hook, name, None)
            if fn is not None:
                fn(self, *args)

    def _loop(self) -> None:
        model, x, y, gen = self.model, self.x, self.y, self.generator
        model.train()
        self._keep_good()
        if 0 in self._ckpt_steps:
            self._checkpoint()
        self._call("on_start")
        if self.evaluator is not None and self.evaluator.due(self, 0):
            self.evaluator(self)
        stopped = False
        for epoch in range(self.epochs):
            self.epoch = epoch
            perm = torch.randperm(len(x), generator=gen).to(x.device)
            for start in range(0, len(x), self.batch_size):
                if self.step >= self.total_steps:
                    break
                if self._should_stop():
                    stopped = True
                    break
                idx = perm[start:start + self.batch_size]
                xb = x[idx]
                if self.augment is not None:
                    xb = self.augment(xb, gen)
                if self.transform is not None:
                    xb = self.transform(xb)
                self.inputs, self.targets = xb, y[idx]
                self.outputs = model(xb)
                self.loss = self.loss_fn(self.outputs, self.targets)
                loss_value = float(self.loss.detach())
                if not math.isfinite(loss_value):
                    self._diverged(loss_value)
                    return
                self.optimizer.zero_grad(set_to_none=True)
                self.loss.backward()
                self._call("after_backward", self.step + 1)
                if self.param_update is not None:
                    self.param_update(self, self.step + 1)
                else:
                    self.optimizer.step()
                lr = self.lr
                if self.scheduler is not None:
                    self.scheduler.step()
                self.step += 1
                acc = _accuracy(self.outputs, self.targets)
                self.history.add_step(step=self.step, epoch=epoch, loss=loss_value, accuracy=acc, lr=lr)
                if self.good_every and self.step % self.good_every == 0:
                    self._keep_good()
                if self.step in self._ckpt_steps:
                    self._checkpoint()
                self._call("after_step", self.step)
                if self.evaluator is not None and self.evaluator.due(self, self.step):
                    self.evaluator(self)
                self._report(self.step)
                if self._callback is not None and self.step % self._callback_every == 0:
                    self._callback(self)
            if stopped:
                break
            self._call("on_epoch_end", epoch)
            if self.step >= self.total_steps:
                break
        self.inputs = self.targets = self.outputs = self.loss = None
        self.state = "stopped" if stopped else "finished"
        self._call("on_end")
        if self._callback is not None:  # a last call with the final state, as every long method does
            self._callback(self)

    def _diverged(self, value: float) -> None:
        self.inputs = self.targets = self.outputs = self.loss = None
        good = self.last_good
        self.state = "diverged"
        where = f"step {good.step}" if good is not None else "the start"
        if good is not None:
            self.model.load_state_dict(good.state)
        self.error = (f"the loss became {value} at step {self.step + 1} (lr {self.lr:g}); training stopped and the "
                      f"model holds the last good weights, from {where} (run.last_good). Lower the learning rate "
                      f"(e.g. lr={self.optimizer.defaults.get('lr', self.lr) / 10:g}) or add a warm-up.")
        self._call("on_end")
        if self._callback is not None:
            self._callback(self)

    def to_dict(self) -> dict:
        """The recorded per-step series and evaluations as arrays keyed by name (``history.to_dict()``)."""
        return self.history.to_dict()

    def __repr__(self) -> str:
        return (f"<Run {self.state} step {self.step}/{self.total_steps} "
                f"({self.steps_per_second:.1f} steps/s){' ' + self.error if self.error else ''}>")


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    if outputs.ndim != 2 or targets.ndim != 1 or targets.is_floating_point():
        return float("nan")
    return float((outputs.detach().argmax(1) == targets).float().mean())


def claim(model: nn.Module) -> None:
    """Mark ``model`` as being trained, or raise :class:`RunBusyError` if a run already trains it."""
    with _TRAINING_LOCK:
        if model in _TRAINING:
            raise RunBusyError("this model is already being trained by another run; call run.stop() and "
                               "run.wait() on that run first, or train a copy (copy.deepcopy(model))")
        _TRAINING.add(model)


def release(model: nn.Module) -> None:
    with _TRAINING_LOCK:
        _TRAINING.discard(model)


__all__ = ["Run", "RunBusyError", "claim", "release", "check_cancel", "SettingError"]
