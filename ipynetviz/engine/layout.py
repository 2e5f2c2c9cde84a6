"""Which axis of a layer's output holds the channels: found from the operations the forward pass runs.

Torchvision's ConvNeXt blocks and Swin stages work channels-last (N, H, W, C); ViT's encoder works on tokens
(N, 1 + h*w, D); MaxViT's window attention on (N, windows, tokens, D). Reading all of them as (N, C, H, W) gives
wrong channels without a word. So the trace that lists the layers also runs under :class:`LayoutTracer`, a
``TorchFunctionMode`` that gives every tensor's axes a role, from what is certain:

* a 2-D convolution, batch norm, 2-D pooling or resize makes (N, C, H, W);
* ``permute`` / ``transpose`` move the roles with the axes;
* ``linear`` and ``layer_norm`` read the **last** axis as the features, so a tensor they consume has its
  channels last (this is written back to the tensor and to the same-shape tensors it was made from
  elementwise: the output of ``block.0`` in ``permute -> layer_norm`` is known to be channels-last);
* an elementwise operation keeps the roles of its same-shape input.

A layer's :class:`Layout` then says how to turn its output into the canonical form every method reads:
(N, C, H, W) for maps, (N, C) for vectors. Token layers become their patch grid, (N, D, h, w), with the class
token set apart; a layout that cannot be known is reported as ``"unknown"`` and read as it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["Layout", "LayoutTracer", "layout_of"]

_NCHW_MAKERS = {F.conv2d, F.conv_transpose2d, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
                F.adaptive_max_pool2d, F.lp_pool2d, F.batch_norm, F.instance_norm, F.interpolate,
                F.pixel_shuffle, F.pixel_unshuffle, torch.conv2d, torch.batch_norm, torch.max_pool2d}
_LAST_AXIS_READERS = {F.linear, F.layer_norm, torch.layer_norm}
_PERMUTES = {torch.permute, torch.Tensor.permute}
_TRANSPOSES = {torch.transpose, torch.Tensor.transpose, torch.swapaxes, torch.Tensor.swapaxes}
_KEEP_AXES = {torch.Tensor.__getitem__, torch.cat, torch.concat, torch.roll, F.pad, torch.Tensor.contiguous}


@dataclass(frozen=True)
class Layout:
    """How a layer's output is laid out, and how to read it as (N, C, H, W) or (N, C).

    Attributes:
        kind: "channels_first" (N, C, H, W), "channels_last" (N, H, W, C), "tokens" (N, T, D), "windows"
            (N, windows, tokens, D), "vector" (N, C), or "unknown".
        class_token: tokens only: whether the first token is a class token (left out of the patch grid).
        grid: tokens only: the (h, w) patch grid, or None when the tokens do not form a square grid.
    """

    kind: str
    class_token: bool = False
    grid: tuple[int, int] | None = None

    @property
    def spatial(self) -> bool:
        """Whether the canonical form is a map of image positions (so patches and fields make sense)."""
        return self.kind in ("channels_first", "channels_last") or (self.kind == "tokens" and self.grid is not None)

    def canonical(self, t: torch.Tensor) -> torch.Tensor:
        """The output as (N, C, H, W) for maps (token grids included) or as it is otherwise (a view, no copy)."""
        if self.kind == "channels_last" and t.ndim == 4:
            return t.permute(0, 3, 1, 2)
        if self.kind == "tokens" and t.ndim == 3 and self.grid is not None:
            tokens = t[:, 1:] if self.class_token else t
            return tokens.transpose(1, 2).unflatten(2, self.grid)
        if self.kind == "windows" and t.ndim == 4:  # (N, windows, tokens, D) -> (N, D, windows, tokens)
            return t.permute(0, 3, 1, 2)
        return t

    def canonical_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample shape of :meth:`canonical`'s output for an output of per-sample ``shape``."""
        return tuple(self.canonical(torch.empty((1,) + tuple(shape), device="meta")).shape[1:])

    def describe(self) -> str:
        if self.kind == "tokens":
            grid = f"a {self.grid[0]}x{self.grid[1]} patch grid" if self.grid else "no square patch grid"
            return f"tokens (N, T, D): {grid}" + (", class token first (shown apart)" if self.class_token else "")
        return {"channels_first": "channels first (N, C, H, W)", "channels_last": "channels last (N, H, W, C)",
                "windows": "window attention (N, windows, tokens, D); not image positions",
                "vector": "vector (N, C)", "unknown": "unknown: read as it is"}[self.kind]


IDENTITY = Layout("channels_first")


def layout_of(roles: tuple | None, shape: tuple[int, ...]) -> Layout:
    """The :class:`Layout` of an output with axis ``roles`` (None: not traced) and per-sample ``shape``."""
    ndim = len(shape) + 1
    if ndim == 2:
        return Layout("vector")
    if roles is None or len(roles) != ndim:
        return Layout("unknown")
    if roles == ("N", "C", "H", "W"):
        return Layout("channels_first")
    if roles == ("N", "H", "W", "C"):
        return Layout("channels_last")
    if ndim == 3 and roles[-1] == "C":
        t = shape[0]
        for cls, n in ((False, t), (True, t - 1)):
            side = math.isqrt(max(n, 0))
            if n > 0 and side * side == n:
                return Layout("tokens", class_token=cls, grid=(side, side))
        return Layout("tokens")
    if ndim == 4 and roles[-1] == "C":
        return Layout("windows")
    return Layout("unknown")


class LayoutTracer(TorchFunctionMode):
    """Give each tensor's axes a role (N, C, H, W or "?") from the operations that make and read it.

    ``roles_of(t)`` answers after the forward pass, so facts found late (a layer norm reading the last axis)
    reach the tensors made before it.
    """

    def __init__(self):
        super().__init__()
        self._roles: dict[int, tuple] = {}
        self._parents: dict[int, list[int]] = {}
        self._keep: list[torch.Tensor] = []  # keeps ids unique during the trace

    def _remember(self, t: torch.Tensor) -> int:
        self._keep.append(t)
        return id(t)

    def _set(self, t: torch.Tensor, roles: tuple) -> None:
        key = self._remember(t)
        todo = [key]
        while todo:
            k = todo.pop()
            if self._roles.get(k) == roles:
                continue
            if k in self._roles and "?" not in self._roles[k]:  # a certain fact is not overwritten
                continue
            self._roles[k] = roles
            todo.extend(self._parents.get(k, ()))

    def roles_of(self, t: torch.Tensor | None) -> tuple | None:
        return None if t is None else self._roles.get(id(t))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self._observe(func, args, kwargs, out)
        except Exception:  # pragma: no cover - the trace only describes; it never breaks the forward pass
            pass
        return out

    def _observe(self, func, args, kwargs, out) -> None:
        tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
        if func in (torch.cat, torch.concat) and args and isinstance(args[0], (list, tuple)):
            tensors = [t for t in args[0] if isinstance(t, torch.Tensor)]
        x = tensors[0] if tensors else None
        if not isinstance(out, torch.Tensor) or x is None:
            return
        if func in _NCHW_MAKERS and out.ndim == 4:
            if x.ndim == 4 and func not in (F.interpolate,):
                self._set(x, ("N", "C", "H", "W"))
            self._set(out, ("N", "C", "H", "W"))
            return
        if func in _LAST_AXIS_READERS:
            known = self._roles.get(id(x))
            roles = known if known and known[-1] == "C" else ("N",) + ("?",) * (x.ndim - 2) + ("C",)
            if x.ndim >= 3:
                self._set(x, roles)
                self._set(out, roles if out.ndim == x.ndim else ("N",) + ("?",) * (out.ndim - 2) + ("C",))
            return
        if func in _PERMUTES:
            dims = args[1:] if len(args) > 1 else kwargs.get("dims", ())
            if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
                dims = dims[0]
            known = self._roles.get(id(x))
            if known and len(dims) == len(known):
                self._set(out, tuple(known[d] for d in dims))
            return
        if func in _TRANSPOSES:
            known = self._roles.get(id(x))
            if known and len(args) >= 3:
                r = list(known)
                a, b = args[1] % len(r), args[2] % len(r)
                r[a], r[b] = r[b], r[a]
                self._set(out, tuple(r))
            return
        if func in _KEEP_AXES and out.ndim == x.ndim:  # slicing, concatenation, padding keep what each axis is
            parts = args[0] if func in (torch.cat, torch.concat) else [x]
            known = {self._roles.get(id(t)) for t in parts if isinstance(t, torch.Tensor)}
            if len(known) == 1 and None not in known:
                self._set(out, known.pop())
            return
        # elementwise and shape-keeping operations: same roles as the same-shape input
        same = [t for t in tensors if t.shape == out.shape]
        if same:
            key = self._remember(out)
            self._parents.setdefault(key, []).extend(self._remember(t) for t in same)
            known = [self._roles[id(t)] for t in same if id(t) in self._roles]
            if known:
                self._roles.setdefault(key, known[0])
                for t in same:  # operands combined elementwise (a residual add) share their axes
                    if id(t) not in self._roles:
                        self._set(t, known[0])
