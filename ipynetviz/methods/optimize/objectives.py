"""Objectives to maximise, and differentiable penalties, that compose by arithmetic.

An :class:`Objective` is a weighted sum of terms. Terms are the engine's targets (``Class(k)``: the logit of
class k; ``Unit(layer, c)``: the mean of feature map c), :class:`LayerNorm` (Yosinski et al.'s "layer
maximisation": the size of a whole layer's code) and the penalties :class:`L2` and :class:`TV`. Engine
targets take part as they are: ``Class(3) - 1e-4 * L2()``, ``0.5 * Class(3) + Unit("conv3", 5)`` and
``sum(Unit("conv3", c) for c in range(4))`` are all Objectives.

Every term scores each sample of a batch separately, so a list of objectives is optimised as one batch:
sample i follows objective i.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ipynetviz.engine import targets as _targets
from ipynetviz.engine.errors import SettingError, TargetError


@dataclass
class Context:
    """What a term sees at one step: model input ``x``, ``pixels`` in [0, 1], ``logits``, captured layers."""

    x: torch.Tensor
    pixels: torch.Tensor
    logits: torch.Tensor | None
    captured: dict

    def sample(self, i: int) -> "Context":
        sl = slice(i, i + 1)
        return Context(self.x[sl], self.pixels[sl], None if self.logits is None else self.logits[sl],
                       {k: v[sl] for k, v in self.captured.items()})


class Objective:
    """A weighted sum of terms, maximised by the optimisers; supports ``+``, ``-``, scalar ``*`` and ``/``.

    Example:
        >>> from ipynetviz.engine import Class
        >>> obj = Class(3) - 1e-4 * L2()
        >>> obj
        Objective(class 3 - 0.0001*L2)
    """

    def __init__(self, terms: Sequence[tuple[float, "Term"]] = ()):
        self._terms = tuple((float(w), t) for w, t in terms)

    @property
    def terms(self) -> tuple[tuple[float, "Term"], ...]:
        return self._terms

    def __add__(self, other):
        other = objective(other)
        return Objective(self.terms + other.terms)

    def __radd__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # sum([...]) starts from 0
            return self
        return objective(other) + self

    def __sub__(self, other):
        return self + (-objective(other))

    def __rsub__(self, other):
        return objective(other) + (-self)

    def __neg__(self):
        return Objective([(-w, t) for w, t in self.terms])

    def __mul__(self, k):
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            return NotImplemented
        if not math.isfinite(k):
            raise SettingError(f"an objective's weight must be finite, got {k}")
        return Objective([(w * k, t) for w, t in self.terms])

    __rmul__ = __mul__

    def __truediv__(self, k):
        return self * (1.0 / k)

    def describe(self) -> str:
        parts = []
        for i, (w, t) in enumerate(self.terms):
            sign = "-" if w < 0 else ("+" if i else "")
            weight = "" if abs(w) == 1 else f"{abs(w):g}*"
            parts.append(f"{sign}{'' if not parts else ' '}{weight}{t.describe()}")
        return " ".join(parts) if parts else "0"

    def __repr__(self) -> str:
        return f"Objective({self.describe()})"

    def bind(self, insp, n: int) -> "BoundObjective":
        """Validate every term for ``n`` samples against the inspector and return the scorer."""
        if not self.terms:
            raise SettingError("the objective is empty; give a target such as Class(3) or Unit('conv3', 5)")
        bound = [(w, t.bind(insp, n)) for w, t in self.terms]
        layers = tuple(dict.fromkeys(l for _, b in bound for l in b.layers))

        def score(ctx: Context) -> torch.Tensor:  # runs every step: no multiply by 1, no 0 + ...
            total = None
            for w, b in bound:
                s = b.score(ctx)
                s = s if w == 1.0 else s * w
                total = s if total is None else total + s
            return total
        return BoundObjective(score, layers, any(b.needs_logits for _, b in bound), self.describe())


class Term(Objective):
    """One scored quantity; an Objective with itself as its only term (weight 1)."""

    def __init__(self):
        super().__init__()

    @property
    def terms(self):
        return ((1.0, self),)

    def describe(self) -> str:  # pragma: no cover - every term overrides
        return type(self).__name__

    def bind(self, insp, n: int) -> "BoundTerm":
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class BoundTerm:
    """A validated term: the layers it needs, whether it needs the logits, and ``score(ctx) -> (N,)``."""

    score: Callable[[Context], torch.Tensor]
    layers: tuple[str, ...] = ()
    needs_logits: bool = False


@dataclass(frozen=True)
class BoundObjective(BoundTerm):
    description: str = ""


class TargetTerm(Term):
    """An engine target (``Class`` / ``Unit``) as a term: the class logit or the unit's mean activation."""

    def __init__(self, target):
        super().__init__()
        self.target = _targets.as_target(target)

    def describe(self) -> str:
        t = self.target
        if isinstance(t, _targets.Class):
            return f"class {t.index}"
        where = "" if t.y is None else f"@({t.y},{t.x})"
        return f"{t.layer}[{t.channel}]{where}"

    def bind(self, insp, n: int) -> BoundTerm:
        spec = _targets.resolve(self.target, n, insp.num_classes, insp.layer_shape)

        def score(ctx: Context) -> torch.Tensor:
            return spec.score(ctx.logits, ctx.captured)
        return BoundTerm(score, (spec.layer,) if spec.layer else (), spec.layer is None)


class LogProb(Term):
    """The log softmax probability of a class: its logit minus the log-sum-exp of all logits.

    ``Class(k)`` (the logit, Simonyan et al.'s choice) shows what adds evidence for k, even if it adds more
    for a similar class (a crescent's picture may score higher as a ring); ``LogProb(k)`` also pushes the
    other classes down, so the picture is classified as k.

    Args:
        index: a class index, or one per sample.
    """

    def __init__(self, index):
        super().__init__()
        self.target = _targets.Class(index)

    def describe(self) -> str:
        return f"log p(class {self.target.index})"

    def bind(self, insp, n: int) -> BoundTerm:
        idx = _targets.class_indices(self.target, n, insp.num_classes)

        def score(ctx: Context) -> torch.Tensor:
            logp = ctx.logits.reshape(ctx.logits.shape[0], -1).log_softmax(1)
            return logp.gather(1, idx.to(logp.device).view(-1, 1)).squeeze(1)
        return BoundTerm(score, (), True)


class LayerNorm(Term):
    """A whole layer's code size: the root mean square of its activations (Yosinski's layer maximisation).

    RMS is the L2 norm divided by the square root of the layer's size, so values compare across layers.

    Args:
        layer: a name from ``insp.layers``.
        channels: optional channels to restrict to (e.g. the units of one group).
    """

    def __init__(self, layer: str, channels: Sequence[int] | None = None):
        super().__init__()
        self.layer = layer
        self.channels = None if channels is None else tuple(int(c) for c in channels)

    def describe(self) -> str:
        return f"norm({self.layer})"

    def bind(self, insp, n: int) -> BoundTerm:
        shape = insp.layer_shape(self.layer)  # raises LayerNotFoundError
        if self.channels is not None and shape is not None:
            bad = [c for c in self.channels if not 0 <= c < shape[0]]
            if bad:
                raise TargetError(f"layer {self.layer!r} has {shape[0]} channels; channels {bad} do not exist")
        idx = self.channels

        def score(ctx: Context) -> torch.Tensor:
            a = ctx.captured[self.layer]
            if idx is not None:
                a = a[:, list(idx)]
            return a.reshape(a.shape[0], -1).pow(2).mean(1).add(1e-12).sqrt()
        return BoundTerm(score, (self.layer,), False)


class L2(Term):
    """Squared L2 norm of the model input, ``sum x**2`` (distance from the mean image; Simonyan et al. 2014).

    Subtract it as a penalty: ``Class(3) - 1e-4 * L2()``, or pass ``regularizers=[1e-4 * L2()]``.

    Args:
        weight: multiplies the term (``L2(1e-4)`` is ``1e-4 * L2()``).
    """

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = float(weight)

    @property
    def terms(self):
        return ((self.weight, self),)

    def describe(self) -> str:
        return "L2"

    def bind(self, insp, n: int) -> BoundTerm:
        return BoundTerm(lambda ctx: ctx.x.pow(2).reshape(ctx.x.shape[0], -1).sum(1))


def tv_penalty(pixels: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Mahendran & Vedaldi's total variation ``sum ((dx^2 + dy^2) ** (beta / 2))`` per sample, on pixels."""
    dx = pixels[..., :-1, 1:] - pixels[..., :-1, :-1]
    dy = pixels[..., 1:, :-1] - pixels[..., :-1, :-1]
    sq = dx.pow(2) + dy.pow(2)
    v = sq if beta == 2.0 else (sq + 1e-8).pow(beta / 2.0)
    return v.reshape(v.shape[0], -1).sum(1)


class TV(Term):
    """Total variation of the picture in pixel units (Mahendran & Vedaldi 2015), a smoothness penalty.

    Args:
        weight: multiplies the term (``TV(0.5)`` is ``0.5 * TV()``).
        beta: exponent; 2 (the default) penalises squared gradients, 1 gives the classic edge-keeping TV.
    """

    def __init__(self, weight: float = 1.0, beta: float = 2.0):
        super().__init__()
        self.weight = float(weight)
        self.beta = float(beta)
        if not self.beta > 0:
            raise SettingError(f"TV beta must be > 0, got {beta}")

    @property
    def terms(self):
        return ((self.weight, self),)

    def describe(self) -> str:
        return "TV" if self.beta == 2.0 else f"TV(beta={self.beta:g})"

    def bind(self, insp, n: int) -> BoundTerm:
        return BoundTerm(lambda ctx: tv_penalty(ctx.pixels, self.beta))


def objective(value: Any) -> Objective:
    """Any objective-like value as an :class:`Objective`: an Objective, ``Class``/``Unit``, or a class index.

    Example:
        >>> from ipynetviz.engine import Class, Unit
        >>> objective(Class(1)) + Unit("conv3", 2)
        Objective(class 1 + conv3[2])
    """
    if isinstance(value, Objective):
        return value
    try:
        return TargetTerm(value)
    except TargetError:
        raise TargetError(f"cannot optimise {value!r}: give Class(k), Unit(layer, c), LayerNorm(layer) "
                          "or a sum of them") from None


@dataclass(frozen=True)
class BatchObjective:
    """One objective per sample, bound: ``score(ctx)`` gives sample i objective i's value."""

    scorers: tuple[BoundObjective, ...]
    layers: tuple[str, ...]
    needs_logits: bool
    n: int
    descriptions: tuple[str, ...] = field(default=())

    def score(self, ctx: Context) -> torch.Tensor:
        if len(self.scorers) == 1:
            return self.scorers[0].score(ctx)
        return torch.cat([s.score(ctx.sample(i)).reshape(1) for i, s in enumerate(self.scorers)])


class _UnitBatch(Term):
    """Unit ``channels[i]`` of one layer for sample i (mean over positions), weighted: n units as one term."""

    def __init__(self, layer: str, channels: tuple, reduce: str, weights: tuple):
        super().__init__()
        self.layer, self.channels, self.reduce, self.weights = layer, channels, reduce, weights

    def describe(self) -> str:
        return f"{self.layer}[{list(self.channels)}]"

    def bind(self, insp, n: int) -> BoundTerm:
        for c in sorted(set(self.channels)):  # validate each unit as the engine would
            _targets.resolve(_targets.Unit(self.layer, c, reduce=self.reduce), 1, insp.num_classes,
                             insp.layer_shape)
        cached: dict = {}

        def score(ctx: Context) -> torch.Tensor:
            a = ctx.captured[self.layer]
            if a.device not in cached:
                cached[a.device] = (torch.arange(n, device=a.device), torch.tensor(self.channels, device=a.device),
                                    torch.tensor(self.weights, dtype=a.dtype, device=a.device))
            rows, chans, w = cached[a.device]
            a = a[rows, chans].reshape(n, -1)
            return (a.mean(1) if self.reduce == "mean" else a.amax(1)) * w
        return BoundTerm(score, (self.layer,), False)


def _fuse(objs: Sequence[Objective]) -> Objective | None:
    """n single-target objectives of one kind as one vectorised term, or None if they differ in kind."""
    terms = [o.terms[0] if len(o.terms) == 1 else (None, None) for o in objs]
    targets = [t.target if isinstance(t, TargetTerm) else None for _, t in terms]
    weights = tuple(w for w, _ in terms)
    if len(objs) < 2 or any(t is None for t in targets):
        return None
    if all(isinstance(t, _targets.Class) and isinstance(t.index, int) for t in targets) and \
            all(w == 1.0 for w in weights):
        return TargetTerm(_targets.Class(tuple(t.index for t in targets)))
    if all(isinstance(t, _targets.Unit) and t.y is None for t in targets):
        layer, reduce = targets[0].layer, targets[0].reduce
        if all(t.layer == layer and t.reduce == reduce for t in targets):
            return _UnitBatch(layer, tuple(t.channel for t in targets), reduce, weights)
    return None


def bind_objectives(insp, objectives: Any, batch: int | None = None,
                    penalties: Sequence[Objective] = ()) -> BatchObjective:
    """Bind one objective (for ``batch`` samples) or a list (one per sample), minus ``penalties``."""
    if isinstance(objectives, (list, tuple)) and not isinstance(objectives, _targets.Class):
        objs = [objective(o) for o in objectives]
        if not objs:
            raise SettingError("the list of objectives is empty; give at least one")
        if batch not in (None, len(objs)):
            raise SettingError(f"batch={batch} but {len(objs)} objectives were given; leave batch out")
        penalty = sum(penalties, Objective())
        n = len(objs)
        fused = _fuse(objs)
        if fused is not None:  # one vectorised term instead of n per-sample scorers
            bound = [(fused - penalty).bind(insp, n)]
            descriptions = tuple(f"{o.describe()}" + (f" - {penalty.describe()}" if penalty.terms else "")
                                 for o in objs)
            return BatchObjective(tuple(bound), bound[0].layers, bound[0].needs_logits, n, descriptions)
        bound = [(o - penalty).bind(insp, 1) for o in objs]
    else:
        obj = objective(objectives) - sum(penalties, Objective())
        n = batch
        if n is None:
            idx = [t.target.index for _, t in obj.terms if isinstance(t, (TargetTerm, LogProb))
                   and isinstance(t.target, _targets.Class) and isinstance(t.target.index, tuple)]
            n = len(idx[0]) if idx else 1
        if isinstance(n, bool) or int(n) < 1:
            raise SettingError(f"batch must be a positive integer, got {batch!r}")
        bound = [obj.bind(insp, int(n))]
    layers = tuple(dict.fromkeys(l for b in bound for l in b.layers))
    n = int(n)
    descriptions = tuple(b.description for b in bound)
    if len(bound) == 1 and n > 1:
        descriptions = descriptions * n
    return BatchObjective(tuple(bound), layers, any(b.needs_logits for b in bound), n, descriptions)
