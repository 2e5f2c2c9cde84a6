"""How each torch op moves a receptive field: the tracer behind :func:`receptive_field.receptive_fields`.

A traced tensor's geometry is a :class:`Geo`: per spatial axis an affine :class:`Axis` (size, stride, offset in
input pixels, exact fractions) plus a :class:`Node` of the dependency graph. An op is a :class:`Step` per axis:
unit ``i`` of its output reads units ``a*i + b .. a*i + c`` of its input (the summary), while ``gap`` and ``index``
give the exact set of units the graph follows (dilation holes, uneven adaptive bins, reflect padding, resampling).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from .hooks import first_tensor

__all__ = ["Axis", "Step", "Node", "Geo", "Tracer", "ReceptiveFieldWarning", "first_tensor", "spans"]

IndexMap = Callable[[np.ndarray, int], np.ndarray]  # (units, parent size) -> parent units, unclipped


class ReceptiveFieldWarning(UserWarning):
    """An op without an exact receptive-field rule changed the spatial size; later fields are conservative."""


@dataclass(frozen=True)
class Axis:
    """Unit ``i`` sees input pixels ``[offset + i*stride, offset + i*stride + size)`` along one axis."""

    size: int | Fraction
    stride: int | Fraction
    offset: int | Fraction

    def then(self, step: Step) -> Axis:
        return Axis(self.size + self.stride * (step.c - step.b), self.stride * step.a,
                    self.offset + self.stride * step.b)

    def envelope(self, n: int) -> Axis:
        """All ``n`` units' fields together, shared by every unit."""
        return Axis(self.size + self.stride * max(n - 1, 0), 0, self.offset)


@dataclass(frozen=True)
class Step:
    """Unit ``i`` of an op's output reads input units ``a*i + b, a*i + b + gap, ..., a*i + c``.

    ``a, b, c`` give the affine summary; ``gap`` (the dilation) and ``index`` (a function ``(units, n) -> parent
    units`` for uneven bins, reflect padding, resampling) give the exact set the graph follows.
    """

    a: int | Fraction
    b: int | Fraction
    c: int | Fraction
    exact: bool = True
    index: IndexMap | None = None
    gap: int = 1

    def index_map(self) -> IndexMap:
        if self.index is not None:
            return self.index
        a, b, c = self.a, self.b, self.c
        if all(isinstance(v, int) for v in (a, b, c)):
            taps = np.arange(b, c + 1, self.gap, dtype=np.int64)
            if a == 0:  # every unit reads the same taps (broadcast, global pooling)
                return lambda units, n: taps if len(units) else taps[:0]
            return lambda units, n: (a * units[:, None] + taps).ravel()
        return lambda units, n: spans([math.ceil(a * u + b) for u in units.tolist()],
                                      [math.floor(a * u + c) for u in units.tolist()])


def spans(lo, hi) -> np.ndarray:
    """All integers of the ranges ``lo[i] .. hi[i]`` (inclusive), concatenated."""
    pieces = [np.arange(a, b + 1, dtype=np.int64) for a, b in zip(np.asarray(lo).tolist(), np.asarray(hi).tolist())
              if b >= a]
    return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)


def _num(v) -> int | Fraction:
    """Exact rational, kept as an int when whole: int arithmetic is far faster than Fraction's."""
    v = Fraction(v)
    return int(v) if v.denominator == 1 else v


def _step(a, b, c, exact=True, index=None, gap=1) -> Step:
    return Step(_num(a), _num(b), _num(c), exact, index, gap)


IDENTITY = _step(1, 0, 0)
BROADCAST = _step(0, 0, 0)


def _whole(n: int, exact: bool = True) -> Step:
    return _step(0, 0, n - 1, exact)


def _all_units(units: np.ndarray, n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


class Node:
    """One traced map: ``shape`` is (h, w); ``parents`` are (node, index_map_h, index_map_w); none for the input."""

    __slots__ = ("index", "shape", "parents")

    def __init__(self, index: int, shape: tuple[int, int], parents: tuple):
        self.index, self.shape, self.parents = index, shape, parents


@dataclass(frozen=True)
class Geo:
    """A traced tensor's geometry; ``node is None`` for tensors without spatial axes (flattened, pooled away)."""

    node: Node | None
    h: Axis | None = None
    w: Axis | None = None
    dims: tuple[int, int] = (-2, -1)  # tensor dims holding (H, W), counted from the end
    exact: bool = True


FLAT = Geo(None)


def _union(axes: list[Axis], n: int) -> tuple[Axis, bool]:
    """Smallest affine family holding every axis' box at every unit 0..n-1; exact when it equals their union."""
    if len(axes) == 1:
        return axes[0], True
    last = max(n - 1, 0)
    lows = [(a.offset, a.offset + last * a.stride) for a in axes]
    highs = [(a.offset + a.size, a.offset + last * a.stride + a.size) for a in axes]
    lo0, lo1 = min(lo[0] for lo in lows), min(lo[1] for lo in lows)
    hi0, hi1 = max(hi[0] for hi in highs), max(hi[1] for hi in highs)
    if last == 0:  # one unit: its box is the union, any stride describes it
        return Axis(hi0 - lo0, next(a.stride for a, lo in zip(axes, lows) if lo[0] == lo0), lo0), True
    # min of affine boxes is concave and max convex: the chords bound them, and are them iff one line is extreme
    exact = (lo0, lo1) in lows and (hi0, hi1) in highs and hi0 - lo0 == hi1 - lo1
    return Axis(max(hi0 - lo0, hi1 - lo1), _num(Fraction(lo1 - lo0) / last), lo0), exact


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class Tracer(TorchFunctionMode):
    """Follows the receptive-field geometry of every tensor computed from ``x`` while active."""

    def __init__(self, x: torch.Tensor, global_context: bool = True):
        super().__init__()
        self.global_context = global_context
        self.nodes: list[Node] = []
        self._geos: dict[int, tuple[torch.Tensor, Geo]] = {}  # id -> (tensor kept alive so ids stay unique, geo)
        self.input_size = tuple(int(s) for s in x.shape[-2:])
        self.input_ndim = x.ndim
        self.approximated: set[str] = set()
        self.input_node = self._node(self.input_size, ())
        pixel = Axis(1, 1, 0)
        self._geos[id(x)] = (x, Geo(self.input_node, pixel, pixel))

    def geo(self, t: torch.Tensor) -> Geo | None:
        entry = self._geos.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else None

    def release(self) -> None:
        self._geos.clear()

    def _node(self, shape, parents) -> Node:
        node = Node(len(self.nodes), tuple(int(s) for s in shape), parents)
        self.nodes.append(node)
        return node

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [(t, g) for t in _tensors((args, kwargs)) if (g := self.geo(t)) is not None]
        if inputs:
            outs = list(_tensors(out))
            if outs:
                self._record(func, args, kwargs, inputs, outs)
        return out

    def _record(self, func, args, kwargs, inputs, outs) -> None:
        from . import _rf_rules  # the per-op rules; imported here to keep this module about the mechanism
        name = getattr(func, "__name__", "")
        t, g = inputs[0]
        primary = args[0] if args else kwargs.get("input")
        rule = _rf_rules.RULES.get(name)
        steps, failed = None, name in _rf_rules.ARBITRARY
        if rule is not None and primary is t and g.node is not None:
            try:
                steps = rule(func, args, kwargs, t, g, outs[0])
            except (_rf_rules.Unsupported, TypeError, ValueError, IndexError, AttributeError):
                failed = True  # a spatial op this rule cannot follow (odd arguments, odd layout)
        for out in outs:
            if failed:
                geo = self._fallback(name, [g for _, g in inputs if g.node is not None], out)
            elif steps is not None and out.ndim >= 2:
                sh, sw, dims = steps
                shape = (out.shape[dims[0]], out.shape[dims[1]])
                geo = self._join([self._edge(g, sh, sw)], shape, dims)
            else:
                geo = self._generic(name, args, kwargs, inputs, out, _rf_rules)
            self._geos[id(out)] = (out, geo)

    def _fallback(self, name: str, geos: list[Geo], out: torch.Tensor) -> Geo:
        """No rule: every output unit may read every input unit (about the whole input); warned, inexact."""
        if out.ndim != self.input_ndim or not geos:
            return FLAT
        self.approximated.add(name or "?")
        edges = [(g.node, _all_units, _all_units, g.h.envelope(g.node.shape[0]), g.w.envelope(g.node.shape[1]),
                  False) for g in geos]
        return self._join(edges, out.shape[-2:], (-2, -1))

    def _edge(self, g: Geo, sh: Step, sw: Step) -> tuple:
        return (g.node, sh.index_map(), sw.index_map(), g.h.then(sh), g.w.then(sw), g.exact and sh.exact and sw.exact)

    def _whole_input_edge(self) -> tuple:
        h, w = self.input_size
        return self.input_node, _all_units, _all_units, Axis(h, 0, 0), Axis(w, 0, 0), False

    def _join(self, edges: list, shape, dims) -> Geo:
        h, exact_h = _union([e[3] for e in edges], int(shape[0]))
        w, exact_w = _union([e[4] for e in edges], int(shape[1]))
        node = self._node(shape, tuple((e[0], e[1], e[2]) for e in edges))
        return Geo(node, h, w, dims, exact_h and exact_w and all(e[5] for e in edges))

    def _generic(self, name, args, kwargs, inputs, out, rules) -> Geo:
        """Elementwise, channel-wise and reshaping ops: unite inputs whose (H, W) the output keeps."""
        matched, unmatched, flat = [], [], False
        for t, g in inputs:
            if g.node is None:
                flat = True
                continue
            steps = rules.match(g, t, out) or (rules.collapse(g, t, out) if name in rules.REDUCTIONS else None)
            (unmatched if steps is None else matched).append((t, g, steps))
        if not matched and not unmatched:  # only flat inputs: a map rebuilt from them sees the whole input
            return self._join([self._whole_input_edge()], out.shape[-2:], (-2, -1)) \
                if out.ndim == self.input_ndim else FLAT
        if unmatched:  # flatten, view(N, C, -1), global pooling: FLAT; a map of another size: the fallback
            return self._fallback(name, [g for _, g, _ in matched + unmatched], out)
        if not self.global_context:  # keep the local path: drop broadcast 1x1 maps and flat values (SE gates)
            local = [m for m in matched if BROADCAST not in m[2]]
            matched, flat = (local, False) if local else (matched, flat)
        t0, g0, (s0h, s0w) = matched[0]
        dims = g0.dims
        if len(matched) == 1 and not flat and s0h is IDENTITY and s0w is IDENTITY and not rules.is_mixing(name):
            return g0  # elementwise on one map (ReLU, BatchNorm, + a constant): nothing changes
        edges = []
        for t, g, (sh, sw) in matched:
            sh, sw = rules.mixing(name, args, kwargs, t, g, sh, sw)
            edges.append(self._edge(g, sh, sw))
        if flat:
            edges.append(self._whole_input_edge())
        return self._join(edges, (out.shape[dims[0]], out.shape[dims[1]]), dims)
