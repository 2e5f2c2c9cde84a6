"""Exact receptive fields of every layer of an eager PyTorch model, traced in one real forward pass.

``receptive_fields`` runs the model once under a :class:`torch.overrides.TorchFunctionMode`, which sees every torch
call whether it comes from an ``nn`` module, ``torch.nn.functional`` or a tensor method. Every tensor derived from
the input carries its geometry along the two spatial axes: an affine summary (size, stride, offset in input
pixels, the numbers papers quote) and a node of a small dependency graph, from which ``ReceptiveField.box`` gets
the exact box of one unit, borders included. Forward hooks on the submodules name the outputs. The tracing
mechanism lives in ``_rf_trace.py``, the rule for each torch op in ``_rf_rules.py``.

Choices, stated once:

- Spatial axes are the last two dims of the input (NCHW); ``permute``/``transpose`` move them along.
- Elementwise ops (ReLU, BatchNorm, Dropout, ``+``, ``*``, ``torch.cat`` along channels, broadcasting) unite the
  fields of their inputs. Statistics over space (GroupNorm, InstanceNorm, LayerNorm over a map) are ignored, as
  in the usual definition of a receptive field.
- A tensor without spatial axes (after ``flatten``, ``view(N, -1)``, ``Linear``, global pooling without keepdim)
  depends on the whole input but has no position per unit: it gets ``None``. A map rebuilt from such values (a
  ``Linear`` reshaped to a grid) gets the whole input as field, marked ``exact=False``. Global pooling that keeps
  a 1x1 map (``AdaptiveAvgPool2d(1)``, ``mean(keepdim=True)``) gives one unit whose field is the whole union.
- conv2d (int, "same" or "valid" padding; dilation), conv_transpose2d with stride 1, max/avg/lp pooling
  (ceil_mode, dilation), adaptive pooling to a divisor of the input size, ``F.pad`` (zeros, reflect, replicate)
  and slicing are exact. Upsampling (``interpolate``, ``nn.Upsample``), strided transposed convolution and
  adaptive pooling with uneven bins get a conservative field (a superset) and ``exact=False``; their stride and
  offset may then be fractions, given as floats.
- An op this module does not know that changes the spatial size gets the union of its inputs' fields (about the
  whole input), ``exact=False`` and a :class:`ReceptiveFieldWarning` naming the op.
- A module called more than once reports its first call, like the inspector's shapes and captures.
- ``exact`` describes the affine summary. ``box(y, x, clip_to=<traced input size>)`` follows the graph and is exact
  wherever the ops are (also at borders, where the affine box clipped to the image can overshoot).
- Only torch calls are seen: TorchScript modules and custom C++/CUDA extensions are invisible (their outputs get
  no field).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from ._rf_trace import Geo, Node, ReceptiveFieldWarning, Tracer, first_tensor
from .errors import InputError, IpynetvizError, LayerNotFoundError, TargetError

__all__ = ["ReceptiveField", "ReceptiveFieldWarning", "receptive_fields", "measure_receptive_field"]


def _public(v: int | Fraction) -> int | float:
    return int(v) if Fraction(v).denominator == 1 else float(v)


@dataclass(frozen=True)
class _Graph:
    """The traced dependency graph behind one field: exact per-unit boxes, borders included."""

    nodes: list  # list[Node], creation order = topological order; nodes[0] is the input
    node: Node
    input_size: tuple[int, int]

    def box(self, y: int, x: int) -> tuple[int, int, int, int] | None:
        # Walk the graph backwards once, carrying per axis the set of units each node needs (ops are separable);
        # parent units outside a map (padding, rows a floor-mode pool drops, dilation taps past the border)
        # contribute nothing, which is what makes the box exact at borders.
        need = {self.node.index: (np.array([y], dtype=np.int64), np.array([x], dtype=np.int64))}
        for index in range(self.node.index, -1, -1):
            r = need.pop(index, None)
            if r is None:
                continue
            node = self.nodes[index]
            if not node.parents:
                return int(r[0][0]), int(r[1][0]), int(r[0][-1]) + 1, int(r[1][-1]) + 1
            for parent, map_h, map_w in node.parents:
                (n_h, n_w), (h, w) = parent.shape, r
                ph, pw = map_h(h, n_h), map_w(w, n_w)
                ph, pw = ph[(ph >= 0) & (ph < n_h)], pw[(pw >= 0) & (pw < n_w)]
                if len(ph) == 0 or len(pw) == 0:
                    continue
                p = need.get(parent.index)
                need[parent.index] = (np.unique(ph), np.unique(pw)) if p is None else (
                    np.union1d(p[0], ph), np.union1d(p[1], pw))
        return None


@dataclass(frozen=True)
class ReceptiveField:
    """Which input pixels a unit of a layer can see: unit (y, x) starts at ``offset + (y, x) * stride``.

    Args:
        size: (h, w) of one unit's field in input pixels.
        stride: (h, w) step in input pixels between adjacent units (0 when all units share one field).
        offset: input pixel (row, col) where unit (0, 0)'s field starts; negative when it reaches into padding.
        exact: False where an op was approximated; the field is then a superset of the true one.

    Ints for conv/pool chains; after upsampling or uneven adaptive pooling stride and offset may be floats.

    Example:
        >>> rf = ReceptiveField(size=(7, 7), stride=(4, 4), offset=(-3, -3), exact=True)
        >>> rf.box(0, 0), rf.box(0, 0, clip_to=(32, 32)), rf.box(2, 1)
        ((-3, -3, 4, 4), (0, 0, 4, 4), (5, 1, 12, 8))
    """

    size: tuple
    stride: tuple
    offset: tuple
    exact: bool = True
    _graph: _Graph | None = field(default=None, repr=False, compare=False)

    @property
    def output_size(self) -> tuple[int, int] | None:
        """(h, w) of the layer's map in the traced forward pass, when known."""
        return None if self._graph is None else self._graph.node.shape

    def box(self, y: int, x: int, clip_to: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """Input box (top, left, bottom, right), bottom/right exclusive, that unit (y, x) sees.

        Args:
            y, x: the unit's row and column in the layer's map.
            clip_to: (H, W) of the input to clip to. When it is the traced input size, the box is the exact one
                from the traced graph: rows a floor-mode pool drops or padding-only paths are left out.

        Returns:
            (top, left, bottom, right); empty (bottom == top) if the unit sees only padding.
        """
        if self._graph is not None:
            h, w = self._graph.node.shape
            if not (0 <= y < h and 0 <= x < w):
                raise TargetError(f"unit (y={y}, x={x}) is outside this layer's {h}x{w} map; "
                                  f"pick 0 <= y < {h} and 0 <= x < {w}")
            if clip_to is not None and tuple(clip_to) == self._graph.input_size:
                exact_box = self._graph.box(y, x)
                if exact_box is not None:
                    return exact_box
                top, left = (min(max(math.floor(self.offset[i] + u * self.stride[i]), 0), clip_to[i])
                             for i, u in enumerate((y, x)))
                return top, left, top, left  # the unit sees padding only
        top = math.floor(self.offset[0] + y * self.stride[0])
        left = math.floor(self.offset[1] + x * self.stride[1])
        bottom = math.ceil(self.offset[0] + y * self.stride[0] + self.size[0])
        right = math.ceil(self.offset[1] + x * self.stride[1] + self.size[1])
        if clip_to is not None:
            H, W = clip_to
            top, left = min(max(top, 0), H), min(max(left, 0), W)
            bottom, right = max(min(bottom, H), top), max(min(right, W), left)
        return top, left, bottom, right

    def to_numpy(self) -> np.ndarray:
        """[[size_h, size_w], [stride_h, stride_w], [offset_h, offset_w]] as float64."""
        return np.array([self.size, self.stride, self.offset], dtype=np.float64)

    def describe(self) -> str:
        """A short caption: ``"field 7x7 px, stride 4"``, or ``"field 32x32 px, global"`` when every unit sees the same
        field (stride 0: one unit per channel, or a map whose units all share it); ``"(conservative)"`` when not exact.

        Example:
            >>> ReceptiveField(size=(7, 7), stride=(4, 4), offset=(-3, -3)).describe()
            'field 7x7 px, stride 4'
            >>> ReceptiveField(size=(32, 32), stride=(0, 0), offset=(0, 0)).describe()
            'field 32x32 px, global'
        """
        size = f"field {_num(self.size[0])}x{_num(self.size[1])} px"
        if all(s == 0 for s in self.stride):
            step = "global"
        elif self.stride[0] == self.stride[1]:
            step = f"stride {_num(self.stride[0])}"
        else:
            step = f"stride {_num(self.stride[0])}x{_num(self.stride[1])}"
        return f"{size}, {step}" + ("" if self.exact else " (conservative)")

    def center(self, y: int, x: int) -> tuple[float, float]:
        """Input coordinates (row, col) of the centre of unit (y, x)'s field (unclipped)."""
        return (self.offset[0] + y * self.stride[0] + (self.size[0] - 1) / 2,
                self.offset[1] + x * self.stride[1] + (self.size[1] - 1) / 2)


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _field(geo: Geo | None, tracer: Tracer) -> ReceptiveField | None:
    if geo is None or geo.node is None:
        return None
    return ReceptiveField(size=(_public(geo.h.size), _public(geo.w.size)),
                          stride=(_public(geo.h.stride), _public(geo.w.stride)),
                          offset=(_public(geo.h.offset), _public(geo.w.offset)), exact=geo.exact,
                          _graph=_Graph(tracer.nodes, geo.node, tracer.input_size))


def _check_input(example_input) -> torch.Tensor:
    if not isinstance(example_input, torch.Tensor) or example_input.ndim < 3:
        got = type(example_input).__name__ if not isinstance(example_input, torch.Tensor) else \
            f"a tensor of shape {tuple(example_input.shape)}"
        raise InputError(f"example_input must be a tensor (N, C, H, W), got {got}; "
                         f"e.g. torch.zeros(1, 3, 224, 224) on the model's device")
    if example_input.numel() == 0:
        raise InputError(f"example_input is empty (shape {tuple(example_input.shape)}); give at least one image")
    return example_input


class _ModelState:
    """Put every module in eval mode; restore each one's own ``training`` flag afterwards."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.training = [(m, m.training) for m in model.modules()]

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        for m, flag in self.training:
            m.training = flag


def receptive_fields(model: nn.Module, example_input: torch.Tensor, names: list[str] | None = None, *,
                     global_context: bool = True) -> dict[str, ReceptiveField | None]:
    """Receptive field of every named submodule's output, from one traced forward pass.

    The model runs once in eval mode under ``torch.no_grad``; each module's train/eval flag and every
    ``requires_grad`` are as before afterwards, and no hook is left, also when the model raises.

    Args:
        model: an eager ``nn.Module`` taking ``example_input``.
        example_input: a float tensor (N, C, H, W) on the model's device; fields are in its pixels.
        names: dotted module names to report; all submodules by default ("" is the model's own output).
        global_context: follow every dependency, as the gradient does: after a squeeze-and-excitation gate
            (a 1x1 map broadcast back over the map) each unit sees the whole input. False keeps only the local
            path, as receptive-field tables do for MobileNetV3 or EfficientNet.

    Returns:
        name -> :class:`ReceptiveField`, or None for outputs without spatial axes (or not called, or not
        depending on the input).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3))
        >>> rf = receptive_fields(net, torch.zeros(1, 3, 32, 32))
        >>> rf["3"].size, rf["3"].stride, rf["3"].offset
        ((8, 8), (2, 2), (-1, -1))
    """
    x = _check_input(example_input)
    modules = dict(model.named_modules())
    wanted = [n for n in modules if n] if names is None else list(dict.fromkeys(names))
    for name in wanted:
        if name not in modules:  # "" (the whole model) only when asked for by name
            raise LayerNotFoundError(name, [n for n in modules if n])
    tracer = Tracer(x, global_context)
    fields: dict[str, ReceptiveField | None] = {}

    def capture(name):
        def hook(module, inputs, output):
            if name not in fields:
                t = first_tensor(output)
                fields[name] = None if t is None else _field(tracer.geo(t), tracer)
        return hook

    handles = []
    try:
        for name in wanted:
            handles.append(modules[name].register_forward_hook(capture(name)))
        with _ModelState(model), torch.no_grad(), tracer:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        tracer.release()
    if tracer.approximated:
        warnings.warn(f"receptive_fields: no exact rule for {sorted(tracer.approximated)} (an op that resamples "
                      f"or changes the spatial size); fields after it are conservative (exact=False)",
                      ReceptiveFieldWarning, stacklevel=2)
    return {name: fields.get(name) for name in wanted}


class _Captured(Exception):
    """Raised by the measuring hook once the layer's output is in hand: the rest of the model is not needed."""


def measure_receptive_field(model: nn.Module, module_name: str, example_input: torch.Tensor, y, x,
                            channel: int | None = None):
    """Bounding box of the input pixels with nonzero gradient of one unit: the empirical receptive field.

    Independent of the tracer, so tests compare the two. It finds what the gradient reaches, so make every path
    count: positive weights and input (no dead ReLU, no cancelling sums) and average instead of max pooling
    (max pooling sends gradient to one pixel per window, so its measured box is only contained in the field).

    Args:
        model: the model; run in eval mode (modes restored afterwards) up to the module's first call; parameter
            gradients are not touched.
        module_name: dotted name of the module whose output holds the unit.
        example_input: (N, C, H, W) input; sample 0 is used.
        y, x: the unit's position in the module's output map, or two equal-length lists of positions, measured
            in one pass over a batch of copies of sample 0.
        channel: one channel, or None for the sum over all channels.

    Returns:
        (top, left, bottom, right), bottom/right exclusive, in input pixels; for lists, a list of them with None
        for units whose gradient is zero everywhere (a single such unit raises instead).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, stride=2))
        >>> _ = [nn.init.constant_(p, 0.1) for p in net.parameters()]
        >>> measure_receptive_field(net, "1", torch.ones(1, 1, 16, 16), 0, 2)
        (0, 3, 4, 8)
        >>> measure_receptive_field(net, "1", torch.ones(1, 1, 16, 16), [0, 6], [0, 6])
        [(0, 0, 4, 4), (11, 11, 16, 16)]
    """
    x_in = _check_input(example_input)
    modules = dict(model.named_modules())
    if module_name not in modules or not module_name:
        raise LayerNotFoundError(module_name, [n for n in modules if n])
    many = isinstance(y, (list, tuple))
    ys, xs = (list(y), list(x)) if many else ([y], [x])
    if len(ys) != len(xs) or not ys:
        raise TargetError(f"y and x must be two non-empty lists of the same length, got {len(ys)} and {len(xs)}")
    outputs: list = []

    def hook(module, inputs, output):
        outputs.append(first_tensor(output))
        raise _Captured()

    handle = modules[module_name].register_forward_hook(hook)
    # samples are independent in eval mode, so row k of a batch of copies carries unit k's gradient alone
    leaf = x_in[:1].detach().expand(len(ys), *x_in.shape[1:]).clone().requires_grad_(True)
    try:
        with _ModelState(model), torch.enable_grad():
            try:
                model(leaf)
            except _Captured:
                pass
            out = outputs[0] if outputs else None
            if out is None or out.ndim != 4:
                raise IpynetvizError(f"module {module_name!r} gave no (N, C, H, W) output "
                                     f"({'not called' if not outputs else 'not a map'}); pick a conv/pool layer")
            bad = [(a, b) for a, b in zip(ys, xs) if not (0 <= a < out.shape[2] and 0 <= b < out.shape[3])]
            if bad:
                raise TargetError(f"unit (y, x) = {bad[0]} is outside {module_name!r}'s "
                                  f"{out.shape[2]}x{out.shape[3]} map")
            rows = torch.arange(len(ys), device=out.device)
            picked = out[rows, :, ys, xs] if channel is None else out[rows, channel, ys, xs]
            if not picked.requires_grad:
                raise IpynetvizError(f"the units of {module_name!r} do not depend on the input")
            (grad,) = torch.autograd.grad(picked.sum(), leaf)
    finally:
        handle.remove()
    boxes = []
    for seen in (grad.abs().sum(1) > 0).cpu():
        r, c = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
        boxes.append(None if len(r) == 0 else (int(r[0]), int(c[0]), int(r[-1]) + 1, int(c[-1]) + 1))
    if not many and boxes[0] is None:
        raise IpynetvizError(f"the gradient of {module_name!r} unit ({y}, {x}) is zero everywhere: a dead ReLU, "
                             f"zero weights or a unit over padding only; measure with positive weights and input")
    return boxes if many else boxes[0]
