"""Exact incremental inference for occlusion (Krypton; Nakandala, Kumar & Papakonstantinou, SIGMOD 2019).

An occluding window changes only a small block of the input, and a convolution only spreads a change by its
kernel's reach. So the network runs once on the unoccluded image and every node's output is kept; for each
batch of occluded images each node is then represented as a :class:`Delta`: the cached map plus, per image,
the one rectangle where the value differs (``patch``). Convolutions and pools recompute only the output
rectangle whose receptive field meets the changed input rectangle (cropping the input with the same padding
semantics), element-wise layers map the patch alone, and additions take the union of both rectangles. Once a
rectangle covers most of its map, or at any operation this module does not analyse, the value becomes an
ordinary full tensor and the rest of the network runs as usual, so results stay exact for any model that
``torch.fx`` can trace. The runner checks itself against the plain model before use; :func:`build_runner`
returns None when the model cannot be traced or the check fails, and the caller falls back to batching.
"""
from __future__ import annotations

import operator
import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

_ELEMENTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh,
                        nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Identity, nn.Dropout, nn.Dropout2d)
_ELEMENTWISE_FUNCTIONS = {F.relu, torch.relu, torch.relu_, F.relu6, F.leaky_relu, F.elu, F.silu, F.gelu,
                          torch.sigmoid, torch.tanh, F.hardswish, F.hardsigmoid}
_ELEMENTWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "clamp", "clamp_min", "clamp_"}
_BINARY = {operator.add, operator.mul, operator.sub, operator.iadd, operator.imul, torch.add, torch.mul, torch.sub}
_BINARY_METHODS = {"add": torch.add, "mul": torch.mul, "sub": torch.sub,
                   "add_": torch.add, "mul_": torch.mul, "sub_": torch.sub}

_TRACES: "weakref.WeakKeyDictionary[nn.Module, object]" = weakref.WeakKeyDictionary()


@dataclass
class Delta:
    """A batch of maps equal to ``base`` except, in image b, the rectangle at (y0[b], x0[b]) of size (h, w)."""

    node: fx.Node
    base: torch.Tensor        # (1, C, H, W): the unoccluded value
    y0: np.ndarray            # (B,) int64
    x0: np.ndarray
    h: int
    w: int
    patch: torch.Tensor       # (B, C, h, w)

    @property
    def batch(self) -> int:
        return int(self.patch.shape[0])


def _traced(model: nn.Module):
    """``torch.fx`` graph of ``model`` (cached per model), or None when it cannot be traced."""
    hit = _TRACES.get(model)
    if hit is None:
        try:
            hit = fx.symbolic_trace(model)
        except Exception:  # data-dependent control flow and the like: no incremental path
            hit = False
        _TRACES[model] = hit
    return hit or None


def _hw(v) -> tuple[int, int]:
    """A conv/pool module attribute (int or pair) as (height, width) ints; the module validated it already."""
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _is_inplace(node: fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        return bool(getattr(modules[node.target], "inplace", False))
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.endswith("__")
    if node.op == "call_function":
        return node.target in (torch.relu_, operator.iadd, operator.imul) or bool(node.kwargs.get("inplace"))
    return False


def _out_of_place(node: fx.Node, args: tuple, kwargs: dict):
    """Clone tensors an in-place operation would modify, so cached values never change under us."""
    args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
    return args, kwargs


class IncrementalRunner:
    """Scores occluded copies of one image by recomputing only what each window changed.

    Args:
        graph_module: ``torch.fx`` trace of the model.
        x: the unoccluded image, (1, C, H, W) model input.
        full_fraction: a rectangle covering more than this fraction of its map turns into a full tensor.
    """

    def __init__(self, graph_module: fx.GraphModule, x: torch.Tensor, full_fraction: float = 0.85):
        self.gm = graph_module
        self.modules = dict(graph_module.named_modules())
        self.nodes = list(graph_module.graph.nodes)
        self.full_fraction = float(full_fraction)
        placeholders = [n for n in self.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ValueError("incremental occlusion needs a model with one input")
        self.input_node = placeholders[0]
        self.dependent = self._input_dependent()
        self.base: dict[fx.Node, object] = {}
        self._padded: dict = {}
        self.incremental_nodes = 0  # nodes the last run() computed on rectangles only
        self.trace_work: list | None = None  # set to a list to collect each layer's multiply-adds (benchmarks)
        self.output = self._run_base(x)
        self.alignment = self._alignment(x)

    def _alignment(self, x: torch.Tensor) -> int:
        """The largest downsampling factor in the network (32 for a ResNet).

        Windows whose positions agree modulo this factor change rectangles of the same size in every layer,
        so batching them together wastes no work on the largest rectangle of a mixed batch.
        """
        factor = 1
        for value in self.base.values():
            if isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[-1] > 1:
                factor = max(factor, int(round(x.shape[-1] / value.shape[-1])))
        return factor

    # ------------------------------------------------------------------ graph analysis
    def _input_dependent(self) -> set:
        dep = {self.input_node}
        for n in self.nodes:
            if any(a in dep for a in n.all_input_nodes):
                dep.add(n)
        return dep

    def _execute(self, node: fx.Node, args: tuple, kwargs: dict):
        if _is_inplace(node, self.modules):
            args, kwargs = _out_of_place(node, args, kwargs)
        if node.op == "call_module":
            return self.modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        if node.op == "get_attr":
            obj = self.gm
            for part in node.target.split("."):
                obj = getattr(obj, part)
            return obj
        raise ValueError(f"unexpected node {node.op}")

    def _run_base(self, x: torch.Tensor):
        env = self.base
        for node in self.nodes:
            if node.op == "placeholder":
                env[node] = x
            elif node.op == "output":
                return fx.node.map_arg(node.args[0], lambda n: env[n])
            else:
                args = fx.node.map_arg(node.args, lambda n: env[n])
                kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
                env[node] = self._execute(node, args, kwargs)
        raise ValueError("graph has no output")

    # ------------------------------------------------------------------ rectangles
    def _padded_hwc(self, d: Delta, pads: tuple, value: float) -> torch.Tensor:
        key = (d.node, pads, value)
        hit = self._padded.get(key)
        if hit is None:
            pt, pb, pl, pr = pads
            b = d.base[0]
            if any(pads):
                b = F.pad(b, (pl, pr, pt, pb), value=value)
            hit = b.permute(1, 2, 0).contiguous()
            self._padded[key] = hit
        return hit

    def window(self, d: Delta, r0: np.ndarray, c0: np.ndarray, ih: int, iw: int, pad_value: float = 0.0
               ) -> torch.Tensor:
        """The value of ``d`` on rows r0[b]..r0[b]+ih, cols c0[b]..c0[b]+iw (outside the map: ``pad_value``)."""
        _, _, H, W = d.base.shape
        if (ih, iw) == (d.h, d.w) and np.array_equal(r0, d.y0) and np.array_equal(c0, d.x0):
            return d.patch  # exactly the changed rectangle
        pads = (max(0, -int(r0.min())), max(0, int(r0.max()) + ih - H),
                max(0, -int(c0.min())), max(0, int(c0.max()) + iw - W))
        padded = self._padded_hwc(d, pads, pad_value)
        dev = padded.device
        rows = torch.as_tensor(r0, device=dev)[:, None] + torch.arange(ih, device=dev)   # (B, ih) map rows
        cols = torch.as_tensor(c0, device=dev)[:, None] + torch.arange(iw, device=dev)
        out = padded[(rows + pads[0])[:, :, None], (cols + pads[2])[:, None, :]]         # (B, ih, iw, C)
        # where the window meets the changed rectangle, take the patch
        dy, dx = d.y0 - r0, d.x0 - c0
        if (dy == dy[0]).all() and (dx == dx[0]).all():  # the same offset in every image: one slice copy
            dy, dx = int(dy[0]), int(dx[0])
            ys, ye, xs, xe = max(0, dy), min(ih, dy + d.h), max(0, dx), min(iw, dx + d.w)
            if ys < ye and xs < xe:
                out[:, ys:ye, xs:xe] = d.patch.permute(0, 2, 3, 1)[:, ys - dy:ye - dy, xs - dx:xe - dx]
            return out.permute(0, 3, 1, 2)
        pr = rows - torch.as_tensor(d.y0, device=dev)[:, None]
        pc = cols - torch.as_tensor(d.x0, device=dev)[:, None]
        inside = ((pr >= 0) & (pr < d.h))[:, :, None] & ((pc >= 0) & (pc < d.w))[:, None, :]
        if bool(inside.any()):
            b = torch.arange(d.batch, device=dev)[:, None, None]
            vals = d.patch.permute(0, 2, 3, 1)[b, pr.clamp(0, d.h - 1)[:, :, None], pc.clamp(0, d.w - 1)[:, None, :]]
            out = torch.where(inside[..., None], vals, out)
        return out.permute(0, 3, 1, 2)

    def materialize(self, value):
        if isinstance(value, Delta):
            _, _, H, W = value.base.shape
            zeros = np.zeros(value.batch, dtype=np.int64)
            return self.window(value, zeros, zeros, H, W)
        return value

    @staticmethod
    def _affected(lo: np.ndarray, size: int, k: int, s: int, p: int, d: int, n_out: int):
        """Output range (start per image, common length) whose fields meet input rows lo..lo+size."""
        o_lo = np.maximum(0, -((-(lo + p - (k - 1) * d)) // s))   # ceil division
        o_hi = np.minimum(n_out - 1, (lo + size - 1 + p) // s)
        length = int(max(1, (o_hi - o_lo + 1).max()))
        length = min(length, n_out)
        o_lo = np.clip(o_lo, 0, n_out - length)
        return o_lo, length

    def _spatial(self, node, d: Delta, kernel, stride, padding, dilation, pad_value, run_patch):
        """Recompute the affected block of a conv/pool output; None means 'run it on full tensors'."""
        out_base = self.base[node]
        _, _, Ho, Wo = out_base.shape
        ys, h = self._affected(d.y0, d.h, kernel[0], stride[0], padding[0], dilation[0], Ho)
        xs, w = self._affected(d.x0, d.w, kernel[1], stride[1], padding[1], dilation[1], Wo)
        if h * w > self.full_fraction * Ho * Wo:
            return None
        ih = (h - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1
        iw = (w - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1
        win = self.window(d, ys * stride[0] - padding[0], xs * stride[1] - padding[1], ih, iw, pad_value)
        patch = run_patch(win)
        return Delta(node, out_base, ys, xs, h, w, patch)

    def _conv(self, node, m: nn.Conv2d, d: Delta):
        if m.padding_mode != "zeros" or d.base.ndim != 4:
            return None
        k, s, dil = _hw(m.kernel_size), _hw(m.stride), _hw(m.dilation)
        if isinstance(m.padding, str):
            if m.padding == "valid":
                pad = (0, 0)
            else:  # "same" puts the odd pixel at the end; the crop needs the leading padding only
                pad = tuple((dil[i] * (k[i] - 1)) // 2 for i in range(2))
        else:
            pad = _hw(m.padding)
        return self._spatial(node, d, k, s, pad, dil, 0.0,
                             lambda win: F.conv2d(win, m.weight, m.bias, s, 0, dil, m.groups))

    def _pool(self, node, m, d: Delta):
        k = _hw(m.kernel_size)
        s = _hw(m.stride if m.stride is not None else m.kernel_size)
        p = _hw(m.padding)
        if isinstance(m, nn.MaxPool2d):
            if m.return_indices:
                return None
            dil = _hw(m.dilation)
            return self._spatial(node, d, k, s, p, dil, float("-inf"),
                                 lambda win: F.max_pool2d(win, k, s, 0, dil))
        _, _, H, W = d.base.shape
        _, _, Ho, Wo = self.base[node].shape
        floor_size = ((H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1)
        if (not m.count_include_pad and any(p)) or floor_size != (Ho, Wo):
            return None  # partial windows change the divisor: leave it to the full path
        return self._spatial(node, d, k, s, p, (1, 1), 0.0,
                             lambda win: F.avg_pool2d(win, k, s, 0, False, True, m.divisor_override))

    @staticmethod
    def _union(*deltas: Delta):
        """One rectangle per image (common size) covering every delta's rectangle."""
        _, _, H, W = deltas[0].base.shape
        y_lo = np.min([d.y0 for d in deltas], 0)
        y_hi = np.max([d.y0 + d.h for d in deltas], 0)
        x_lo = np.min([d.x0 for d in deltas], 0)
        x_hi = np.max([d.x0 + d.w for d in deltas], 0)
        h, w = int((y_hi - y_lo).max()), int((x_hi - x_lo).max())
        return np.clip(y_lo, 0, H - h), np.clip(x_lo, 0, W - w), h, w

    def _cat(self, node, args, kwargs):
        """``torch.cat`` of deltas along channels (Inception, DenseNet, SqueezeNet)."""
        parts = args[0]
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        if not isinstance(parts, (list, tuple)) or not all(isinstance(p, Delta) for p in parts):
            return None
        if dim not in (1, -3) or len({tuple(p.base.shape[-2:]) for p in parts}) != 1:
            return None
        ys, xs, h, w = self._union(*parts)
        return Delta(node, self.base[node], ys, xs, h, w, torch.cat([self.window(p, ys, xs, h, w) for p in parts], 1))

    # ------------------------------------------------------------------ one node, one batch
    def _node(self, node: fx.Node, env: dict):
        out = self._compute(node, env)
        if self.trace_work is not None and node.op == "call_module":
            self.trace_work.append(_multiply_adds(self.modules[node.target], out))
        return out

    def _compute(self, node: fx.Node, env: dict):
        if node not in self.dependent:
            return self.base[node]
        args = fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
        deltas = [a for a in args if isinstance(a, Delta)]
        out = None
        if node.op == "call_function" and node.target is torch.cat:
            out = self._cat(node, args, kwargs)
        elif deltas and not any(isinstance(v, Delta) for v in kwargs.values()):
            out = self._incremental(node, args, kwargs, deltas, env)
        if out is not None:
            self.incremental_nodes += 1
            return out
        args = fx.node.map_aggregate(args, self.materialize)
        kwargs = fx.node.map_aggregate(kwargs, self.materialize)
        return self._execute(node, args, kwargs)

    def _incremental(self, node, args, kwargs, deltas, env):
        d = deltas[0]
        others = [a for a in args if a is not d]
        tensors_elsewhere = any(isinstance(a, torch.Tensor) for a in others) or any(
            isinstance(v, torch.Tensor) for v in kwargs.values())
        if node.op == "call_module":
            m = self.modules[node.target]
            if len(args) != 1 or kwargs:
                return None
            if type(m) in (nn.Conv2d,):
                return self._conv(node, m, d)
            if type(m) in (nn.MaxPool2d, nn.AvgPool2d):
                return self._pool(node, m, d)
            elementwise = type(m) in _ELEMENTWISE_MODULES or (
                type(m) is nn.BatchNorm2d and not m.training and m.running_mean is not None)
            if elementwise:
                patch = d.patch.clone() if getattr(m, "inplace", False) else d.patch
                return self._like(node, d, m(patch))
            return None
        fn = node.target
        if node.op == "call_method":
            if fn in _BINARY_METHODS:
                fn = _BINARY_METHODS[fn]
            elif fn in _ELEMENTWISE_METHODS and args[0] is d and not tensors_elsewhere:
                return self._like(node, d, getattr(d.patch.clone(), fn)(*args[1:], **kwargs))
            else:
                return None
        if fn in _ELEMENTWISE_FUNCTIONS and args[0] is d and not tensors_elsewhere:
            kw = {k: v for k, v in kwargs.items() if k != "inplace"}
            return self._like(node, d, fn(d.patch.clone() if fn is torch.relu_ else d.patch, *args[1:], **kw))
        if fn in _BINARY and len(args) == 2 and not kwargs:
            op = {operator.iadd: operator.add, operator.imul: operator.mul}.get(fn, fn)
            a, b = args
            if isinstance(a, Delta) and isinstance(b, Delta):
                if a.base.shape != b.base.shape:
                    return None
                ys, xs, h, w = self._union(a, b)
                return Delta(node, self.base[node], ys, xs, h, w,
                             op(self.window(a, ys, xs, h, w), self.window(b, ys, xs, h, w)))
            other, other_arg = (b, node.args[1]) if a is d else (a, node.args[0])
            if isinstance(other_arg, fx.Node) and other_arg in self.dependent:
                return None  # it changes with the window too, everywhere: no longer local
            if isinstance(other, torch.Tensor) and other.numel() > 1 and (
                    other.ndim < 2 or other.shape[-2:] != (1, 1)):
                return None  # a spatially varying constant: not element-wise on the patch alone
            patch = op(d.patch, other) if a is d else op(other, d.patch)
            return self._like(node, d, patch)
        return None

    def _like(self, node, d: Delta, patch: torch.Tensor):
        base = self.base[node]
        if (not isinstance(base, torch.Tensor) or base.shape[1:] != d.base.shape[1:]
                or patch.shape[1:] != (base.shape[1], d.h, d.w)):
            return None
        return Delta(node, base, d.y0, d.x0, d.h, d.w, patch)

    def run(self, boxes: np.ndarray, image: torch.Tensor, fill: torch.Tensor, stop_at: fx.Node | None = None):
        """Model output for occluded copies of the image: ``boxes`` (B, 4) = y0, y1, x0, x1 of each window.

        Returns the output (or, with ``stop_at``, that node's full value) for the batch.
        """
        _, _, H, W = image.shape
        h = int(min(H, (boxes[:, 1] - boxes[:, 0]).max()))
        w = int(min(W, (boxes[:, 3] - boxes[:, 2]).max()))
        ys = np.clip(boxes[:, 0], 0, H - h).astype(np.int64)
        xs = np.clip(boxes[:, 2], 0, W - w).astype(np.int64)
        patch = occluded_rectangles(image, fill, boxes, ys, xs, h, w)
        env = {self.input_node: Delta(self.input_node, image, ys, xs, h, w, patch)}
        self.incremental_nodes = 0
        for node in self.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                return fx.node.map_arg(node.args[0], lambda n: self.materialize(env[n]))
            env[node] = self._node(node, env)
            if node is stop_at:
                return self.materialize(env[node])
        raise ValueError("graph has no output")


def _multiply_adds(m: nn.Module, out) -> int:
    """Multiply-adds a conv or linear layer spent on ``out`` (a rectangle batch or a full tensor)."""
    t = out.patch if isinstance(out, Delta) else out
    if not isinstance(t, torch.Tensor):
        return 0
    if isinstance(m, nn.Conv2d):
        return t.numel() * m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
    if isinstance(m, nn.Linear):
        return t.numel() * m.in_features
    return 0


def occluded_rectangles(image: torch.Tensor, fill: torch.Tensor, boxes: np.ndarray, ys: np.ndarray,
                        xs: np.ndarray, h: int, w: int) -> torch.Tensor:
    """(B, C, h, w): the image on the rectangle at (ys[b], xs[b]), with ``fill`` inside window ``boxes[b]``."""
    dev = image.device
    rows = torch.as_tensor(ys, device=dev)[:, None] + torch.arange(h, device=dev)
    cols = torch.as_tensor(xs, device=dev)[:, None] + torch.arange(w, device=dev)
    img = image[0].permute(1, 2, 0)[rows[:, :, None], cols[:, None, :]]
    fil = fill[0].permute(1, 2, 0)[rows[:, :, None], cols[:, None, :]]
    b = torch.as_tensor(boxes, device=dev)
    inside = (((rows >= b[:, :1]) & (rows < b[:, 1:2]))[:, :, None]
              & ((cols >= b[:, 2:3]) & (cols < b[:, 3:4]))[:, None, :])
    return torch.where(inside[..., None], fil, img).permute(0, 3, 1, 2)


def build_runner(model: nn.Module, x: torch.Tensor, full_fraction: float = 0.85, check_boxes: np.ndarray | None = None,
                 fill: torch.Tensor | None = None, atol: float = 1e-4):
    """An :class:`IncrementalRunner` for ``model`` on image ``x`` (1, C, H, W), or None if it cannot be used.

    The runner is checked against the plain model on the unoccluded image and, given ``check_boxes``, on
    those occluded images; any difference above ``atol`` (relative to the output's scale) means None.
    """
    gm = _traced(model)
    if gm is None:
        return None
    try:
        runner = IncrementalRunner(gm, x, full_fraction)
        ref = model(x)
        if not _close(runner.output, ref, atol):
            return None
        if check_boxes is not None and len(check_boxes):
            got = runner.run(check_boxes, x, fill)
            want = model(occlude(x, fill, check_boxes))
            if not _close(got, want, atol):
                return None
    except Exception:
        return None
    return runner


def _close(a, b, atol: float) -> bool:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    scale = max(1.0, float(b.abs().max()))
    return bool(((a - b).abs().max() <= atol * scale).item())


def occlude(image: torch.Tensor, fill: torch.Tensor, boxes: np.ndarray) -> torch.Tensor:
    """Whole occluded images (B, C, H, W): ``image`` with ``fill`` inside each window ``boxes[b]``."""
    _, _, H, W = image.shape
    dev = image.device
    b = torch.as_tensor(np.asarray(boxes), device=dev)
    r = torch.arange(H, device=dev)
    c = torch.arange(W, device=dev)
    inside = (((r >= b[:, :1]) & (r < b[:, 1:2]))[:, None, :, None]
              & ((c >= b[:, 2:3]) & (c < b[:, 3:4]))[:, None, None, :])
    return torch.where(inside, fill, image)

