"""Freeze training (Raghu et al. 2017, Sec. 4.1): stop training lower layers one after another, bottom-up.

Lower layers converge first (see :func:`~ipynetviz.methods.dynamics.learning_dynamics`), so training them to the
end spends backward computation on layers that no longer change much. ``freeze_training`` trains one network
with a bottom-up freezing schedule and, beside it, the same network unfrozen (same seed: same initial weights
and data order), through the one training loop; the schedule is a hook that calls ``run.freeze(layer)``.

What is counted: with the bottom ``k`` weight layers frozen, autograd computes no weight gradient for them and no
input gradient for them or for layer ``k + 1`` (its input needs none). Each is as many multiply-adds as the
layer's forward pass, so per image the backward costs ``sum_{j>k} F_j + sum_{j>k+1} F_j`` against
``sum_j F_j + sum_{j>1} F_j`` unfrozen (``F_j``: forward multiply-adds of conv / linear layer ``j``; the cheap
element-wise ReLU / pooling gradients are left out). The forward pass is unchanged. Times are measured wall
clock of both runs (the similarity probe of ``schedule="similarity"`` included).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ...engine.checks import check_positive_int, check_range
from ...engine.control import check_cancel
from ...engine.errors import InputError, SettingError
from ..correspondence import StreamingMoments, UndefinedSimilarityError
from ..training import evaluate, train
from .learning import METHODS, default_layers, probe_tensor, similarity_from_moments

__all__ = ["FreezeResult", "freeze_training", "forward_macs", "backward_macs"]


@dataclass(frozen=True, eq=False)
class FreezeResult:
    """A bottom-up frozen run beside the same run unfrozen.

    Attributes:
        layers: the weight layers frozen in order, bottom first.
        frozen_at: ``{layer: step}`` at which each layer was frozen (absent: never frozen).
        total_steps: optimisation steps of each run.
        backward_macs, backward_macs_unfrozen: multiply-adds of all backward passes of each run (counted).
        forward_macs: multiply-adds of one forward pass per image (the same for both runs).
        images: training images seen by the frozen run (forward passes).
        time_s, time_unfrozen_s: measured training time of each run (seconds).
        accuracy, accuracy_unfrozen: final test accuracy of each run (NaN without a test set).
        similarity: ``schedule="similarity"`` only: ``[(step, layer, value), ...]`` measured.
        run, run_unfrozen: the two training runs (histories, checkpoints, models).
        complete: False when cancelled (a missing run is None).
    """

    layers: tuple[str, ...]
    frozen_at: dict
    total_steps: int
    backward_macs: int
    backward_macs_unfrozen: int
    forward_macs: int
    time_s: float
    time_unfrozen_s: float
    accuracy: float
    accuracy_unfrozen: float
    images: int = 0
    similarity: tuple = ()
    run: Any = None
    run_unfrozen: Any = None
    complete: bool = True
    notes: tuple[str, ...] = field(default=())

    @property
    def backward_saved(self) -> float:
        """The fraction of backward multiply-adds saved by freezing."""
        return 1.0 - self.backward_macs / max(1, self.backward_macs_unfrozen)

    @property
    def training_saved(self) -> float:
        """The fraction of forward + backward multiply-adds saved (the forward pass is not reduced)."""
        fwd = self.forward_macs * self.images
        return 1.0 - (fwd + self.backward_macs) / max(1, fwd + self.backward_macs_unfrozen)

    def summary(self) -> dict:
        """The figures a person would quote."""
        return {"frozen_at": dict(self.frozen_at), "total_steps": self.total_steps,
                "backward_saved": self.backward_saved, "training_saved": self.training_saved,
                "time_s": self.time_s, "time_unfrozen_s": self.time_unfrozen_s,
                "time_saved": 1.0 - self.time_s / self.time_unfrozen_s if self.time_unfrozen_s else float("nan"),
                "accuracy": self.accuracy, "accuracy_unfrozen": self.accuracy_unfrozen}

    def to_numpy(self) -> np.ndarray:
        """(backward multiply-adds frozen, unfrozen, accuracy frozen, unfrozen)."""
        return np.array([self.backward_macs, self.backward_macs_unfrozen, self.accuracy, self.accuracy_unfrozen],
                        dtype=float)


def weight_layers(model: nn.Module) -> list[str]:
    """Conv and linear layers in the order they are registered (bottom first for the teaching nets)."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def forward_macs(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Multiply-adds per image of every conv / linear layer's forward pass, measured on ``example`` (1+ images).

    Example:
        >>> forward_macs(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)), torch.zeros(1, 1, 4, 4))
        {'0': 72, '2': 24}
    """
    macs: dict[str, int] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            def conv(mod, inp, out, name=name):
                k = mod.in_channels // mod.groups * int(np.prod(mod.kernel_size))
                macs[name] = int(out[0].numel()) * k
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: macs.__setitem__(name, int(out[0].numel()) * mod.in_features)))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return macs


def _backward_per_image(flops: Sequence[int], k: int) -> int:
    """Backward multiply-adds per image with the bottom ``k`` weight layers frozen (module docstring)."""
    return int(sum(flops[k:]) + sum(flops[k + 1:]))


def backward_macs(flops: Sequence[int], frozen: int) -> int:
    """Per image: weight and input gradients of the trainable layers above the ``frozen`` bottom ones.

    Example:
        >>> backward_macs([10, 20, 30], 0), backward_macs([10, 20, 30], 1), backward_macs([10, 20, 30], 2)
        (110, 80, 30)
    """
    return _backward_per_image(list(flops), int(frozen))


class _FreezeHook:
    """The schedule as a training-loop hook: freezes ``layers`` bottom-up and counts backward multiply-adds."""

    def __init__(self, layers, flops_all, order, fractions=None, probe=None, measured=None, interval=None,
                 threshold=None, method="cka"):
        self.layers, self.flops, self.order = list(layers), list(flops_all), list(order)
        self.fractions, self.probe, self.measured = fractions, probe, measured
        self.interval, self.threshold, self.method = interval, threshold, method
        self.frozen_at: dict[str, int] = {}
        self.macs = self.images = 0
        self.similarity: list = []
        self._previous: dict[str, torch.Tensor] = {}

    def _k(self) -> int:
        """How many of all weight layers, bottom up, are frozen now."""
        k = 0
        for name in self.order:
            if name not in self.frozen_at:
                break
            k += 1
        return k

    def after_backward(self, run, step):
        self.images += len(run.inputs)
        self.macs += backward_macs(self.flops, self._k()) * len(run.inputs)

    def _freeze(self, run, name, step):
        run.freeze(name)
        self.frozen_at[name] = step

    def after_step(self, run, step):
        todo = [n for n in self.layers if n not in self.frozen_at]
        if not todo:
            return
        if self.fractions is not None:
            for name, f in zip(self.layers, self.fractions):
                if name not in self.frozen_at and step >= round(f * run.total_steps):
                    self._freeze(run, name, step)
            return
        if step % self.interval:
            return
        acts = self._activations(run, [self.measured[n] for n in todo])
        name = todo[0]  # bottom-up: only the lowest trainable layer may be frozen next
        prev = self._previous.get(name)
        if prev is not None:
            acc = StreamingMoments().update(prev, acts[self.measured[name]])
            try:
                value = similarity_from_moments(acc, self.method)
            except UndefinedSimilarityError:
                value = float("nan")
            self.similarity.append((step, name, float(value)))
            if value >= self.threshold:
                self._freeze(run, name, step)
        self._previous = {n: acts[self.measured[n]] for n in todo}

    @torch.no_grad()
    def _activations(self, run, names):
        modules = dict(run.model.named_modules())
        out = {}
        hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.detach()))
                 for n in names]
        was = run.model.training
        run.model.eval()
        try:
            run.model(self.probe)
        finally:
            run.model.train(was)
            for h in hooks:
                h.remove()
        return out


def freeze_training(model="digits-cnn", data=None, *, layers: Sequence[str] | None = None,
                    schedule="fractions", fractions: Sequence[float] | None = None, threshold: float = 0.99,
                    interval: int | None = None, probe=None, method: str = "cka", compare: bool = True,
                    seed: int = 0, cancel=None, progress=False, callback: Callable | None = None,
                    callback_every: int = 10, **train_kwargs) -> FreezeResult:
    """Train with lower layers frozen bottom-up on a schedule, beside the same network unfrozen.

    Args:
        model, data: as for :func:`~ipynetviz.methods.training.train` (a zoo name, a factory, a module).
        layers: the weight layers to freeze, bottom first (default: every conv layer; the classifier trains on).
        schedule: ``"fractions"``: layer ``i`` is frozen after ``fractions[i]`` of training; ``"similarity"``:
            every ``interval`` steps the lowest trainable layer's output on ``probe`` is compared (``method``)
            with its output one interval ago and frozen once the similarity reaches ``threshold``.
        fractions: non-decreasing fractions in [0, 1], one per layer (default: evenly from 0.2 to 0.65 of
            training, roughly where the paper freezes).
        threshold, interval, probe, method: the similarity schedule (default interval: a tenth of training;
            probe: the first 200 training images; method: "cka", "svcca" or "pwcca").
        compare: also train the unfrozen run (same seed) and measure it.
        seed: initial weights and data order of both runs.
        cancel, progress, callback, callback_every: passed to both training runs.
        **train_kwargs: anything else ``train`` takes (epochs, lr, optimizer, batch_size, n_train, test, ...).

    Returns:
        A :class:`FreezeResult`: layers' freezing steps, backward multiply-adds saved, times, accuracies.

    Raises:
        SettingError: a bad schedule (wrong count, decreasing, outside [0, 1]), or ``frozen=`` among the kwargs.

    Example:
        >>> import torch
        >>> x, y = torch.randn(64, 1, 6, 6), torch.arange(64) % 2
        >>> net = lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))
        >>> r = freeze_training(net, (x, y), fractions=[0.5], epochs=2, batch_size=16, device="cpu",
        ...                     background=False)
        >>> r.frozen_at, round(r.backward_saved, 3)
        ({'0': 4}, 0.423)
    """
    check_cancel(cancel)
    if "frozen" in train_kwargs:
        raise SettingError("freeze_training freezes layers itself; pass layers=[...] and a schedule, not frozen=")
    if schedule not in ("fractions", "similarity"):
        raise SettingError(f"schedule must be 'fractions' or 'similarity', got {schedule!r}")
    if method not in METHODS:
        raise SettingError(f"method must be one of {list(METHODS)}, got {method!r}")
    threshold = check_range(threshold, "threshold", 0.0, 1.0)
    train_kwargs.setdefault("background", False)
    background = train_kwargs.pop("background")
    if background:
        raise SettingError("freeze_training runs its two trainings one after the other; call it from a thread "
                           "(a widget does) and pass cancel= to stop it, not background=True")
    user_hooks = list(train_kwargs.pop("hooks", ()))
    common = dict(seed=seed, cancel=cancel, progress=progress, callback=callback, callback_every=callback_every,
                  background=False, **train_kwargs)

    hook_box: dict = {}

    class _Setup:
        """Builds the schedule from the run's model once it exists (names, multiply-adds, probe)."""

        def on_start(self, run):
            hook_box["hook"] = _build_hook(run, layers, schedule, fractions, threshold, interval, probe, method)

        def after_backward(self, run, step):
            hook_box["hook"].after_backward(run, step)

        def after_step(self, run, step):
            hook_box["hook"].after_step(run, step)

    notes = []
    frozen_run = train(model, data, hooks=[_Setup(), *user_hooks], **common)
    hook = hook_box["hook"]
    acc = _accuracy(frozen_run)
    unfrozen, acc_u, macs_u, time_u = None, float("nan"), 0, float("nan")
    if compare and frozen_run.complete:
        counter = _FreezeHook([], hook.flops, hook.order, fractions=[])  # counts; freezes nothing
        unfrozen = train(model, data, hooks=[counter, *user_hooks], **common)
        acc_u, time_u, macs_u = _accuracy(unfrozen), unfrozen.elapsed, counter.macs
    if not compare:  # the same steps unfrozen, counted
        macs_u = backward_macs(hook.flops, 0) * hook.images
    for r in (frozen_run, unfrozen):
        if r is not None and r.error:
            notes.append(r.error)
    complete = frozen_run.complete and (not compare or (unfrozen is not None and unfrozen.complete))
    return FreezeResult(layers=tuple(hook.layers), frozen_at=dict(hook.frozen_at),
                          total_steps=frozen_run.total_steps, backward_macs=hook.macs, backward_macs_unfrozen=macs_u,
                          forward_macs=int(sum(hook.flops)), time_s=frozen_run.elapsed, time_unfrozen_s=time_u,
                          accuracy=acc, accuracy_unfrozen=acc_u, images=hook.images, similarity=tuple(hook.similarity), run=frozen_run,
                          run_unfrozen=unfrozen, complete=complete, notes=tuple(notes))


def _accuracy(run) -> float:
    if run.test is None:
        return float("nan")
    return evaluate(run.model, *run.test, transform=run.transform)[1]


def _build_hook(run, layers, schedule, fractions, threshold, interval, probe, method) -> _FreezeHook:
    model = run.model
    order = weight_layers(model)
    if layers is None:
        layers = [n for n in order if isinstance(dict(model.named_modules())[n], nn.Conv2d)]
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise SettingError("no layers to freeze; pass layers=['conv1', 'conv2', ...]")
    for name in layers:
        if name not in order:
            raise SettingError(f"{name!r} is not a conv or linear layer of the model; freeze one of {order}")
    if layers != order[:len(layers)]:
        raise SettingError(f"freeze training freezes bottom-up: layers must be the first weight layers in order, "
                           f"{order[:len(layers)]}, got {layers}")
    if len(layers) >= len(order):
        raise SettingError(f"freezing all {len(order)} weight layers leaves nothing to train; pass at most "
                           f"{len(order) - 1} layers")
    example = run.x[:1]
    example = run.transform(example) if run.transform is not None else example.float()
    per_layer = forward_macs(model, example)
    flops = [per_layer.get(n, 0) for n in order]
    if schedule == "fractions":
        if fractions is None:
            fractions = np.linspace(0.2, 0.65, len(layers)).round(3).tolist()
        fractions = [check_range(f, "freeze fraction", 0.0, 1.0) for f in fractions]
        if len(fractions) != len(layers):
            raise SettingError(f"{len(fractions)} fractions for {len(layers)} layers; pass one fraction per layer")
        if any(b < a for a, b in zip(fractions, fractions[1:])):
            raise SettingError(f"fractions {fractions} decrease; freeze training goes bottom-up, so pass them "
                               "in non-decreasing order")
        return _FreezeHook(layers, flops, order, fractions=fractions)
    interval = max(1, run.total_steps // 10) if interval is None else check_positive_int(interval, "interval")
    if probe is None:
        x = run.x[:200]
        probe_x = run.transform(x) if run.transform is not None else x.float()
    else:
        probe_x = probe_tensor(probe, run.transform).to(run.device)
    if len(probe_x) < 2:
        raise InputError("the similarity probe needs at least 2 images; pass probe=images (a few hundred)")
    measured = dict(zip(order, default_layers(model)))
    return _FreezeHook(layers, flops, order, probe=probe_x, measured=measured, interval=interval,
                       threshold=threshold, method=method)
