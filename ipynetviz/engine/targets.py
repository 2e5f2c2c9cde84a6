"""What a method explains or optimises: a class score or a unit of a layer.

``Class(k)`` is the class score before softmax (the logit). ``Unit(layer, c)`` is the **mean** of feature
map ``c`` over all positions (``reduce="max"`` takes the maximum instead); ``Unit(layer, c, y, x)`` is one
neuron. Every target evaluates to one score per sample, so methods run on batches and the gradient of the
summed score is each sample's own gradient (samples do not interact in eval mode).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .errors import TargetError

# ``Class(3) + Unit("conv3", 5)`` or ``0.5 * Class(3)`` builds an optimisation objective. Objectives live above
# the engine (ipynetviz.methods.optimize); the package wires a loader in here (see ipynetviz/__init__.py), so
# the engine never imports a method.
_objective_loader: Callable[[], Callable] | None = None


def set_objective_loader(loader: Callable[[], Callable] | None) -> None:
    """Register ``loader() -> objective`` (a function turning a target into an Objective) for target arithmetic."""
    global _objective_loader
    _objective_loader = loader


class _Composable:
    """Arithmetic on targets: ``+``, ``-``, scalar ``*`` and ``/`` give an optimisation Objective."""

    __slots__ = ()

    def _objective(self):
        if _objective_loader is None:
            raise TargetError("arithmetic on targets builds an optimisation objective; "
                              "use ipynetviz.methods.optimize.objective(target) to start one")
        return _objective_loader()(self)

    def __add__(self, other):
        return self._objective() + other

    def __radd__(self, other):
        return other + self._objective()

    def __sub__(self, other):
        return self._objective() - other

    def __rsub__(self, other):
        return other - self._objective()

    def __mul__(self, k):
        return self._objective() * k

    def __rmul__(self, k):
        return k * self._objective()

    def __truediv__(self, k):
        return self._objective() / k

    def __neg__(self):
        return -self._objective()


@dataclass(frozen=True)
class Class(_Composable):
    """A class score before softmax; ``index`` may be one int or one per sample."""

    index: int | tuple[int, ...]

    def __init__(self, index):
        if isinstance(index, (list, tuple)) or (isinstance(index, torch.Tensor) and index.ndim):
            index = tuple(int(i) for i in index)
        else:
            index = int(index)
        object.__setattr__(self, "index", index)


@dataclass(frozen=True)
class Unit(_Composable):
    """A feature map (mean over positions, or max with ``reduce="max"``) or one neuron at (y, x)."""

    layer: str
    channel: int
    y: int | None = None
    x: int | None = None
    reduce: str = "mean"

    def __post_init__(self):
        if (self.y is None) != (self.x is None):
            raise TargetError("give both y and x for a single neuron, or neither for a whole feature map")
        if self.reduce not in ("mean", "max"):
            raise TargetError(f"reduce must be 'mean' or 'max', got {self.reduce!r}")


@dataclass(frozen=True)
class TargetSpec:
    """A resolved target: the layer to capture (None for logits) and how to score each sample."""

    layer: str | None
    score: Callable[[torch.Tensor, dict], torch.Tensor]  # (logits, captured) -> (N,)
    description: str


def as_target(target) -> Class | Unit:
    if isinstance(target, (Class, Unit)):
        return target
    if isinstance(target, bool):
        raise TargetError(f"target must be a class index or Unit, got {target!r}")
    if isinstance(target, (int, list, tuple)) or (isinstance(target, torch.Tensor)):
        return Class(target)
    raise TargetError(f"target must be an int, ipynetviz.Class(k) or ipynetviz.Unit(layer, channel[, y, x]); "
                      f"got {type(target).__name__}")


def class_indices(target: Class, n: int, num_classes: int | None) -> torch.Tensor:
    idx = target.index
    if isinstance(idx, tuple):
        if len(idx) != n:
            raise TargetError(f"{len(idx)} class indices for {n} images; give one per image or a single int")
        t = torch.tensor(idx, dtype=torch.long)
    else:
        t = torch.full((n,), idx, dtype=torch.long)
    if num_classes is not None and ((t < 0) | (t >= num_classes)).any():
        bad = int(t[(t < 0) | (t >= num_classes)][0])
        raise TargetError(f"class index {bad} is out of range: the model has {num_classes} classes (0..{num_classes - 1})")
    return t


def resolve(target, n: int, num_classes: int | None, layer_shape: Callable[[str], tuple | None]) -> TargetSpec:
    """Validate ``target`` for ``n`` samples and return how to score it."""
    target = as_target(target)
    if isinstance(target, Class):
        idx = class_indices(target, n, num_classes)

        def score(logits, captured, idx=idx):
            if logits.ndim != 2:
                logits = logits.reshape(logits.shape[0], -1)
            return logits.gather(1, idx.to(logits.device).view(-1, 1)).squeeze(1)
        return TargetSpec(None, score, f"class {target.index}")

    shape = layer_shape(target.layer)  # raises LayerNotFoundError
    if shape is not None:
        channels = shape[0]
        if not 0 <= target.channel < channels:
            raise TargetError(f"layer {target.layer!r} has {channels} channels (0..{channels - 1}); "
                              f"channel {target.channel} does not exist")
        if target.y is not None:
            if len(shape) < 3:
                raise TargetError(f"layer {target.layer!r} has no spatial map (output {tuple(shape)}); "
                                  f"use Unit({target.layer!r}, {target.channel}) without y, x")
            h, w = shape[-2], shape[-1]
            if not (0 <= target.y < h and 0 <= target.x < w):
                raise TargetError(f"position ({target.y}, {target.x}) is outside layer {target.layer!r}'s "
                                  f"{h}x{w} map")

    def score(logits, captured, t=target):
        a = captured[t.layer]
        if t.channel >= a.shape[1]:
            raise TargetError(f"layer {t.layer!r} has {a.shape[1]} channels; channel {t.channel} does not exist")
        a = a[:, t.channel]
        if t.y is not None:
            return a[:, t.y, t.x]
        a = a.reshape(a.shape[0], -1)
        return a.mean(1) if t.reduce == "mean" else a.amax(1)
    where = "" if target.y is None else f" at ({target.y}, {target.x})"
    return TargetSpec(target.layer, score, f"{target.layer}[{target.channel}]{where}")


def describe(target: Class | Unit | int | Sequence[int]) -> str:
    t = as_target(target)
    return f"class {t.index}" if isinstance(t, Class) else f"unit {t.layer}[{t.channel}]"
