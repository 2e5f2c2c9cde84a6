"""What a method explains or optimises: a class score or a unit of a layer.

``Class(k)`` is the class score before softmax (the logit). ``Unit(layer, c)`` is the **mean** of feature
map ``c`` over all positions (``reduce="max"`` takes the maximum instead); ``Unit(layer, c, y, x)`` is one
neuron. Every target evaluates to one score per sample, so methods run on batches and the gradient of the
summed score is each sample's own gradient (samples do not interact in eval mode).
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
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


def _is_int_like(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    if isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim == 0:
        return not (v.dtype == torch.bool if isinstance(v, torch.Tensor) else v.dtype == np.bool_) and (
            not v.is_floating_point() if isinstance(v, torch.Tensor) else np.issubdtype(v.dtype, np.integer))
    return False


def _class_index(v):
    """One class: an int-like or a class name (resolved later against the model's class names)."""
    if isinstance(v, str):
        return v
    if _is_int_like(v):
        return int(v)
    raise TargetError(f"a class must be an integer index or a class name, got {v!r} ({type(v).__name__}); "
                      "e.g. Class(3) or Class('star')")


@dataclass(frozen=True)
class Class(_Composable):
    """A class score before softmax: one index or name for all images, or one per image.

    ``index`` may be an int (NumPy integers too), a class name (``Class("star")``, looked up in the
    inspector's ``class_names``), or a sequence / 1-D integer array with one class per image.
    """

    index: int | str | tuple

    def __init__(self, index):
        if isinstance(index, (np.ndarray, torch.Tensor)) and index.ndim == 1:
            index = tuple(_class_index(i) for i in index.tolist())
        elif isinstance(index, (list, tuple, range)):
            index = tuple(_class_index(i) for i in index)
        elif isinstance(index, (np.ndarray, torch.Tensor)) and index.ndim > 1:
            raise TargetError(f"class indices must be one per image (a 1-D array), got shape {tuple(index.shape)}")
        else:
            index = _class_index(index)
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
        if not isinstance(self.layer, str):
            raise TargetError(f"Unit's layer must be a layer name (a str), got {self.layer!r}; see insp.layers")
        for name in ("channel", "y", "x"):
            v = getattr(self, name)
            if v is None and name != "channel":
                continue
            if not _is_int_like(v):
                raise TargetError(f"Unit's {name} must be an integer, got {v!r} ({type(v).__name__}); "
                                  f"e.g. Unit({self.layer!r}, 3)")
            object.__setattr__(self, name, int(v))
        if (self.y is None) != (self.x is None):
            raise TargetError("give both y and x for a single neuron, or neither for a whole feature map")
        if self.reduce not in ("mean", "max"):
            raise TargetError(f"reduce must be 'mean' or 'max', got {self.reduce!r}")


@dataclass(frozen=True, eq=False)
class TargetSpec:
    """A target resolved once for a batch: what every method keeps and passes down (as Captum formats its target).

    Attributes:
        target: the resolved target: a :class:`Unit`, or a :class:`Class` holding one index per row.
        layer: the layer to capture (None for class scores, which read the logits).
        classes: (N,) int64 class per row for class targets, else None.
        description: a short text for captions ("class 3 (star)", "unit conv3[5]").
        predicted: whether the classes were the model's own predictions (``target=None``).
    """

    target: "Class | Unit"
    layer: str | None
    classes: torch.Tensor | None
    description: str
    predicted: bool = False
    n: int = 0

    @property
    def is_unit(self) -> bool:
        return isinstance(self.target, Unit)

    def rows(self, sl: slice) -> "TargetSpec":
        """The same target for a slice of the rows (a batch of a longer run)."""
        if self.classes is None:
            return dataclasses.replace(self, n=len(range(*sl.indices(self.n))))
        classes = self.classes[sl]
        return dataclasses.replace(self, classes=classes, target=Class(tuple(classes.tolist())), n=len(classes))

    def row(self, i: int) -> "TargetSpec":
        return self.rows(slice(i, i + 1))

    def key(self) -> tuple:
        """A hashable identity for result caches."""
        if self.classes is None:
            return ("unit", self.target)
        return ("class", tuple(self.classes.tolist()))

    def score(self, logits: torch.Tensor | None, captured: dict) -> torch.Tensor:
        """(N,) scores from the model's output and the captured layers."""
        if self.classes is not None:
            if logits.ndim != 2:
                logits = logits.reshape(logits.shape[0], -1)
            idx = self.classes.to(logits.device)
            if len(idx) != logits.shape[0]:
                idx = idx[:1].expand(logits.shape[0]) if len(idx) == 1 else idx
            return logits.gather(1, idx.view(-1, 1)).squeeze(1)
        t = self.target
        a = captured[t.layer]
        if t.channel >= a.shape[1]:
            raise TargetError(f"layer {t.layer!r} has {a.shape[1]} channels; channel {t.channel} does not exist")
        a = a[:, t.channel]
        if t.y is not None:
            return a[:, t.y, t.x]
        a = a.reshape(a.shape[0], -1)
        return a.mean(1) if t.reduce == "mean" else a.amax(1)


def as_target(target) -> Class | Unit:
    """A :class:`Class` or :class:`Unit` from what users hold: ints, NumPy ints, int arrays, names, targets."""
    if isinstance(target, (Class, Unit)):
        return target
    if isinstance(target, TargetSpec):
        return target.target
    if isinstance(target, (bool, np.bool_)) or target is None:
        raise TargetError(f"target must be a class index or Unit, got {target!r}")
    if isinstance(target, (int, np.integer, list, tuple, range, np.ndarray, torch.Tensor)):
        return Class(target)
    if isinstance(target, str):  # a bare name could be a layer or a class: say which
        raise TargetError(f"target {target!r} is a string: write Class({target!r}) for a class name or "
                          f"Unit({target!r}, channel) for a unit")
    raise TargetError(f"target must be an int, an array of one class per image, ipynetviz.Class(k or name) "
                      f"or ipynetviz.Unit(layer, channel[, y, x]); got {type(target).__name__}")


def _name_to_index(name: str, class_names: Sequence[str] | None) -> int:
    if not class_names:
        raise TargetError(f"class {name!r} given by name, but the inspector has no class_names; pass an index, "
                          "or Inspector(..., class_names=[...])")
    names = list(class_names)
    if name in names:
        return names.index(name)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = ("; did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
    raise TargetError(f"no class named {name!r}{hint} (insp.class_names lists all {len(names)})")


def class_indices(target: Class, n: int, num_classes: int | None,
                  class_names: Sequence[str] | None = None) -> torch.Tensor:
    """(n,) int64 class per row of a :class:`Class` target, validated against the model."""
    idx = target.index
    to_int = (lambda v: _name_to_index(v, class_names) if isinstance(v, str) else v)
    if isinstance(idx, tuple):
        if len(idx) != n:
            raise TargetError(f"{len(idx)} class indices for {n} images; give one per image or a single int")
        t = torch.tensor([to_int(i) for i in idx], dtype=torch.long)
    else:
        t = torch.full((n,), to_int(idx), dtype=torch.long)
    if num_classes is not None and ((t < 0) | (t >= num_classes)).any():
        bad = int(t[(t < 0) | (t >= num_classes)][0])
        raise TargetError(f"class index {bad} is out of range: the model has {num_classes} classes (0..{num_classes - 1})")
    return t


def _class_text(classes: torch.Tensor, class_names: Sequence[str] | None) -> str:
    values = classes.tolist()
    if values and all(v == values[0] for v in values):
        k = values[0]
        name = f" ({class_names[k]})" if class_names and 0 <= k < len(class_names) else ""
        return f"class {k}{name}"
    return "class " + ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")


def resolve(target, n: int, num_classes: int | None, layer_shape: Callable[[str], tuple | None],
            class_names: Sequence[str] | None = None, predicted: bool = False) -> TargetSpec:
    """Validate ``target`` for ``n`` samples once and return the spec that methods keep and pass down."""
    if isinstance(target, TargetSpec):
        if target.n != n:
            raise TargetError(f"a target resolved for {target.n} images was given {n}")
        return target
    target = as_target(target)
    if isinstance(target, Class):
        idx = class_indices(target, n, num_classes, class_names)
        return TargetSpec(Class(tuple(idx.tolist())) if isinstance(target.index, tuple) or n != 1 else
                          Class(int(idx[0])), None, idx, _class_text(idx, class_names), predicted, n)

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
    where = "" if target.y is None else f" at ({target.y}, {target.x})"
    return TargetSpec(target, target.layer, None, f"unit {target.layer}[{target.channel}]{where}", False, n)


def describe(target: Class | Unit | int | Sequence[int]) -> str:
    if isinstance(target, TargetSpec):
        return target.description
    t = as_target(target)
    return f"class {t.index}" if isinstance(t, Class) else f"unit {t.layer}[{t.channel}]"
