"""Measurements taken while a run trains: test/train loss and accuracy, per-layer norms, update ratios, histograms.

Both are hooks of the one loop (see :mod:`ipynetviz.methods.training.loop`); they write into ``run.history``.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from ...engine.checks import check_positive_int


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, transform=None, loss_fn=None,
             batch_size: int = 500) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` (in eval mode, restored after) on ``(x, y)``.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 2, bias=False); _ = m.weight.data.copy_(torch.eye(2))
        >>> round(evaluate(m, torch.tensor([[1., 0.], [0., 1.], [1., 0.]]), torch.tensor([0, 1, 1]))[1], 4)
        0.6667
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            yb = y[start:start + batch_size]
            out = model(transform(xb) if transform is not None else xb)
            total_loss += float(loss_fn(out, yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    n = max(1, len(x))
    return total_loss / n, correct / n


class Evaluator:
    """Test (and train-subset) loss and accuracy every ``every`` steps, at the start and at the end.

    Args:
        test: ``(x, y)`` tensors on the run's device, or None.
        train: ``(x, y)`` a fixed subset of the training set with the labels trained on (for the
            randomization test: how well the corrupted labels are fit), or None.
        every: steps between evaluations (None: once per epoch).
        transform: the run's input transform (no augmentation).
        budget: for live views: evaluate only when the time trained since the last evaluation is at least
            ``1 / budget`` times what that evaluation cost (so it takes at most this share of the time), and
            not at step 0; None: exactly every ``every`` steps (reproducible evaluation points).
    """

    def __init__(self, test=None, train=None, every: int | None = None, transform=None, loss_fn=None,
                 batch_size: int = 500, budget: float | None = None):
        self.test, self.train = test, train
        self.every = None if every is None else check_positive_int(every, "eval_every")
        self.transform, self.loss_fn, self.batch_size = transform, loss_fn, batch_size
        self.budget = budget
        self._cost, self._last = 0.0, time.perf_counter()

    def due(self, run, step: int) -> bool:
        if step == run.total_steps:
            return True
        every = self.every or run.steps_per_epoch
        if self.budget is None:
            return step == 0 or step % every == 0
        if step == 0:
            self._last = time.perf_counter()
            return False
        return step % every == 0 and (time.perf_counter() - self._last) * self.budget >= self._cost

    def __call__(self, run) -> None:
        t0 = time.perf_counter()
        self._evaluate(run)
        self._last = time.perf_counter()
        self._cost = self._last - t0

    def _evaluate(self, run) -> None:
        row = {"step": run.step, "epoch": run.epoch}
        for name, split in (("test", self.test), ("train", self.train)):
            if split is not None:
                loss, acc = evaluate(run.model, split[0], split[1], self.transform, self.loss_fn, self.batch_size)
                row[f"{name}_loss"], row[f"{name}_accuracy"] = loss, acc
        run.history.add_eval(row)


def weight_layers(model: nn.Module) -> dict[str, nn.Parameter]:
    """Module name -> its ``weight`` parameter, for every module that has a trainable weight of 2+ dims."""
    return {name: m.weight for name, m in model.named_modules()
            if isinstance(getattr(m, "weight", None), nn.Parameter) and m.weight.ndim >= 2}


class LayerRecorder:
    """Per layer, every ``every`` steps: weight norm, gradient norm, update-to-weight ratio, histograms.

    The update ratio is ``||w_after - w_before|| / ||w_before||`` of that step (Karpathy's rule of thumb:
    about 1e-3 for a healthy learning rate). Histograms share symmetric edges per layer and record.

    Args:
        every: steps between records.
        bins: histogram bins (0: no histograms).
        layers: module names to record (None: every layer with a weight).
    """

    def __init__(self, every: int = 10, bins: int = 30, layers=None):
        self.every = check_positive_int(every, "record_every")
        self.bins = int(bins)
        self.layers = layers
        self._before: dict[str, torch.Tensor] = {}
        self._grad: dict[str, float] = {}
        self._grad_hist: dict[str, torch.Tensor] = {}

    def _params(self, run) -> dict[str, nn.Parameter]:
        params = weight_layers(run.model)
        return params if self.layers is None else {n: params[n] for n in self.layers}

    def on_start(self, run) -> None:
        self._initial(run)

    def after_backward(self, run, step: int) -> None:
        if step % self.every and step != 1:
            return
        self._before, self._grad, self._grad_hist = {}, {}, {}
        for name, p in self._params(run).items():
            self._before[name] = p.detach().clone()
            g = p.grad
            self._grad[name] = float(g.norm()) if g is not None else 0.0
            if self.bins and g is not None:
                lim = float(g.abs().max()) or 1e-12
                self._grad_hist[name] = (torch.histc(g.detach().float(), self.bins, -lim, lim).cpu(), lim)

    @torch.no_grad()
    def after_step(self, run, step: int) -> None:
        if not self._before:
            return
        row = {"step": step}
        hist = {"step": step}
        for name, p in self._params(run).items():
            before = self._before.get(name)
            if before is None:
                continue
            w_norm = float(p.norm())
            ratio = float((p - before).norm()) / max(float(before.norm()), 1e-12)
            row[name] = {"weight_norm": w_norm, "grad_norm": self._grad.get(name, 0.0), "update_ratio": ratio}
            if self.bins:
                hist[name] = self._hist(p, name)
        run.history.add_layers(row)
        if self.bins:
            run.history.add_histograms(hist)
        self._before = {}

    def _hist(self, p: torch.Tensor, name: str) -> dict:
        lim = float(p.abs().max()) or 1e-12
        out = {"weight": torch.histc(p.detach().float(), self.bins, -lim, lim).cpu().numpy(), "weight_limit": lim}
        if name in self._grad_hist:
            counts, glim = self._grad_hist[name]
            out["grad"], out["grad_limit"] = counts.numpy(), glim
        return out

    @torch.no_grad()
    def _initial(self, run) -> None:
        """The record at step 0: norms and histograms of the initial weights (no gradient yet)."""
        row, hist = {"step": run.step}, {"step": run.step}
        for name, p in self._params(run).items():
            row[name] = {"weight_norm": float(p.norm()), "grad_norm": 0.0, "update_ratio": 0.0}
            if self.bins:
                hist[name] = self._hist(p, name)
        run.history.add_layers(row)
        if self.bins:
            run.history.add_histograms(hist)


__all__ = ["evaluate", "Evaluator", "LayerRecorder", "weight_layers"]
