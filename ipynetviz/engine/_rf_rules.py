"""Receptive-field rules per torch op (conv, pooling, padding, resampling, slicing, layout), keyed by op name.

A rule gets ``(func, args, kwargs, t, g, out)`` for an op whose first argument is the traced map ``t`` with
geometry ``g``, and returns ``(step_h, step_w, out_dims)`` or None to leave the op to the generic rule.
Names match ``torch.conv2d``, ``F.conv2d`` and tensor methods alike.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from ._rf_trace import BROADCAST, IDENTITY, Geo, Step, _step, _whole, spans

LAST_TWO = (-2, -1)


class Unsupported(Exception):
    """The op works on dims that are not the traced map's (H, W) (a conv over a channels-last view)."""


def _on_axes(g: Geo, step_at_h_dim: Step, step_at_w_dim: Step) -> tuple:
    """(step_h, step_w, dims) from steps for tensor dims -2 and -1, following a map with transposed axes."""
    if set(g.dims) != {-2, -1}:
        raise Unsupported()
    by_dim = {-2: step_at_h_dim, -1: step_at_w_dim}
    return by_dim[g.dims[0]], by_dim[g.dims[1]], g.dims


def _size_at(g: Geo, d: int) -> int:
    """Size of the traced map along tensor dim ``d`` (-2 or -1)."""
    if set(g.dims) != {-2, -1}:
        raise Unsupported()
    return g.node.shape[g.dims.index(d)]


REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp", "norm", "prod", "median",
              "nanmean", "nansum", "nanmedian", "mode", "all", "any", "argmax", "argmin", "count_nonzero",
              "std_mean", "var_mean", "aminmax"}
# same-shape ops that mix units along a dim: (which argument names that dim, its position, default, bbox exact)
MIXING = {"softmax": ("dim", 1, None, True), "log_softmax": ("dim", 1, None, True), "softmin": ("dim", 1, None, True),
          "sort": ("dim", 1, -1, True), "argsort": ("dim", 1, -1, True), "msort": (None, None, 0, True),
          "cumsum": ("dim", 1, None, False), "cumprod": ("dim", 1, None, False), "cummax": ("dim", 1, None, False),
          "cummin": ("dim", 1, None, False), "logcumsumexp": ("dim", 1, None, False),
          "flip": ("dims", 1, None, False), "fliplr": (None, None, 1, False), "flipud": (None, None, 0, False),
          "roll": ("dims", 2, "all", False), "rot90": ("dims", 2, (0, 1), False)}


def _hw_arg(v) -> tuple:
    """A traced functional argument (int, 1- or 2-element list, torch.Size) as (height, width)."""
    if isinstance(v, (list, tuple, torch.Size)):
        return (v[0], v[0]) if len(v) == 1 else (v[-2], v[-1])
    return v, v


def _bind(args, kwargs, names: str, **defaults) -> dict:
    bound = dict(defaults)
    bound.update(zip(names.split(), args))
    bound.update(kwargs)
    return bound


def _window(k: int, s: int, p: int, d: int = 1) -> Step:
    return _step(s, -p, -p + d * (k - 1), gap=d)


def _pool_steps(g: Geo, kernel, stride, padding, dilation=1) -> tuple | None:
    k, s = _hw_arg(kernel), _hw_arg(stride if stride not in (None, [], ()) else kernel)
    p, d = _hw_arg(padding), _hw_arg(dilation)
    return _on_axes(g, _window(k[0], s[0], p[0], d[0]), _window(k[1], s[1], p[1], d[1]))


def conv2d(func, args, kwargs, t, g, out):
    b = _bind(args, kwargs, "input weight bias stride padding dilation groups", stride=1, padding=0, dilation=1)
    k, d, p = tuple(b["weight"].shape[-2:]), _hw_arg(b["dilation"]), b["padding"]
    if isinstance(p, str):  # "same" pads d*(k-1) in all, the smaller half first, as ATen does
        p = (0, 0) if p == "valid" else tuple(d[i] * (k[i] - 1) // 2 for i in range(2))
    return _pool_steps(g, k, b["stride"], p, d)


def conv_transpose2d(func, args, kwargs, t, g, out):
    b = _bind(args, kwargs, "input weight bias stride padding output_padding groups dilation",
              stride=1, padding=0, dilation=1)
    k, s, p, d = tuple(b["weight"].shape[-2:]), _hw_arg(b["stride"]), _hw_arg(b["padding"]), _hw_arg(b["dilation"])
    # output o = i*s - p + j*d: o reads inputs (o + p - d*(k-1))/s .. (o + p)/s; affine only when s == 1
    steps = [_step(Fraction(1, s[i]), Fraction(p[i] - d[i] * (k[i] - 1), s[i]), Fraction(p[i], s[i]),
                   s[i] == 1, _transposed_index(k[i], s[i], p[i], d[i])) for i in range(2)]
    return _on_axes(g, steps[0], steps[1])


def _transposed_index(k: int, s: int, p: int, d: int):
    def index(units, n):  # the inputs i with i*s - p + j*d == o for some tap j
        source = units[:, None] + p - d * np.arange(k, dtype=np.int64)
        return (source[source % s == 0] // s).ravel()
    return index


def max_pool2d(func, args, kwargs, t, g, out):
    b = _bind(args, kwargs, "input kernel_size stride padding dilation", stride=None, padding=0, dilation=1)
    return _pool_steps(g, b["kernel_size"], b["stride"], b["padding"], b["dilation"])


def avg_pool2d(func, args, kwargs, t, g, out):
    b = _bind(args, kwargs, "input kernel_size stride padding", stride=None, padding=0)
    return _pool_steps(g, b["kernel_size"], b["stride"], b["padding"])


def lp_pool2d(func, args, kwargs, t, g, out):
    b = _bind(args, kwargs, "input norm_type kernel_size stride", stride=None)
    return _pool_steps(g, b["kernel_size"], b["stride"], 0)


def _adaptive_step(n_in: int, n_out: int) -> Step:
    if n_out == 1:
        return _whole(n_in)
    if n_in % n_out == 0:
        k = n_in // n_out
        return _step(k, 0, k - 1)

    def bins(units, n):  # PyTorch's bins: floor(i*n_in/n_out) .. ceil((i+1)*n_in/n_out) - 1
        return spans(units * n_in // n_out, -(-(units + 1) * n_in // n_out) - 1)
    # affine bound: floor(x/m) >= (x - m + 1)/m, ceil(x/m) <= (x + m - 1)/m
    return _step(Fraction(n_in, n_out), Fraction(1 - n_out, n_out), Fraction(n_in - 1, n_out), False, bins)


def adaptive_pool2d(func, args, kwargs, t, g, out):
    return _on_axes(g, *(_adaptive_step(_size_at(g, d), int(out.shape[d])) for d in LAST_TWO))


def _resample_step(n_in: int, n_out: int, scale, mode: str, align_corners: bool, antialias: bool) -> Step:
    """Taps of PyTorch's resampling kernels around the source coordinate v = a*o + c0 of output unit o."""
    if mode == "area":
        return _adaptive_step(n_in, n_out)
    s = Fraction(n_in, n_out) if scale is None else 1 / Fraction(scale).limit_denominator(1 << 20)
    nearest, cubic = mode in ("nearest", "nearest-exact"), mode == "bicubic"
    if align_corners and not nearest:
        a, c0 = (Fraction(n_in - 1, n_out - 1) if n_out > 1 else Fraction(0)), Fraction(0)
    else:
        a, c0 = s, (Fraction(0) if mode == "nearest" else s / 2 if nearest else s / 2 - Fraction(1, 2))
    lo_tap, hi_tap = (0, 0) if nearest else (-1, 2) if cubic else (0, 1)
    if antialias and s > 1 and not nearest:  # the kernel stretches by the scale when shrinking
        widen = math.ceil((2 if cubic else 1) * s) + 1
        lo_tap, hi_tap = lo_tap - widen, hi_tap + widen
    clamp_src = not (nearest or cubic or align_corners)  # linear modes clamp a negative source to 0
    # PyTorch computes v in float32: exact for power-of-two denominators (scale 2, 1/2), else off by up to ~tol
    dyadic = all(Fraction(f).denominator & (Fraction(f).denominator - 1) == 0 for f in (a, c0))
    tol = Fraction(0) if dyadic else Fraction(1, 1000)

    def index(units, n):
        v = float(a) * units + float(c0)
        v = np.maximum(v, 0.0) if clamp_src else v
        lo, hi = np.floor(v - float(tol)) + lo_tap, np.floor(v + float(tol)) + hi_tap
        return spans(np.clip(lo, 0, n_in - 1).astype(np.int64), np.clip(hi, 0, n_in - 1).astype(np.int64))
    high = c0 + hi_tap + tol + (Fraction(1, 2) if clamp_src else 0)
    return _step(a, c0 + lo_tap - 1 - tol, high, False, index)


def interpolate(func, args, kwargs, t, g, out):
    b = _bind(args, kwargs, "input size scale_factor mode align_corners recompute_scale_factor antialias",
              scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None, antialias=False)
    if func.__name__ == "upsample_bilinear":
        b["mode"], b["align_corners"] = "bilinear", True
    scales = _hw_arg(b["scale_factor"]) if b["scale_factor"] is not None and not b["recompute_scale_factor"] \
        else (None, None)
    steps = [_resample_step(_size_at(g, i - 2), int(out.shape[i - 2]), scales[i], b["mode"],
                            bool(b["align_corners"]), bool(b["antialias"])) for i in range(2)]
    return _on_axes(g, steps[0], steps[1])


def _pad_index(left: int, n: int, mode: str):
    def index(units, n_parent):
        j = units - left
        if mode == "reflect":
            return np.where(j < 0, -j, np.where(j > n - 1, 2 * (n - 1) - j, j))
        if mode == "replicate":
            return np.clip(j, 0, n - 1)
        return j % n  # circular
    return index


def pad(func, args, kwargs, t, g, out):
    b = _bind(args, kwargs, "input pad mode value", mode="constant")
    widths = list(b["pad"])
    mode = "constant" if func.__name__ == "constant_pad_nd" else b["mode"]
    steps = []
    for axis, d in enumerate(g.dims):
        k = -d - 1
        left = int(widths[2 * k]) if 2 * k < len(widths) else 0
        n = g.node.shape[axis]
        if mode == "constant" or left == 0 and (2 * k + 1 >= len(widths) or widths[2 * k + 1] == 0):
            steps.append(_step(1, -left, -left))
        elif mode in ("reflect", "replicate"):
            steps.append(_step(1, -left, -left, True, _pad_index(left, n, mode)))
        else:
            steps.append(_step(0, 0, n - 1, False, _pad_index(left, n, mode)))
    return steps[0], steps[1], g.dims


def getitem(func, args, kwargs, t, g, out):
    index = args[1] if isinstance(args[1], tuple) else (args[1],)
    if not all(i is None or i is Ellipsis or isinstance(i, slice) or type(i) is int for i in index):
        return None  # advanced indexing: left to the generic rule
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    if Ellipsis in index:
        e = index.index(Ellipsis)
        index = index[:e] + (slice(None),) * (t.ndim - used) + index[e + 1:]
    else:
        index = tuple(index) + (slice(None),) * (t.ndim - used)
    kept, dim_in, dim_out = {}, 0, 0
    for i in index:
        if i is None:
            dim_out += 1
            continue
        if isinstance(i, slice):
            start, _, step = i.indices(t.shape[dim_in])
            kept[dim_in] = (dim_out, _step(step, start, start))
            dim_out += 1
        dim_in += 1
    h, w = kept.get(t.ndim + g.dims[0]), kept.get(t.ndim + g.dims[1])
    if h is None or w is None:
        return None
    return h[1], w[1], (h[0] - out.ndim, w[0] - out.ndim)


def permute(func, args, kwargs, t, g, out):
    # learn where each dim went by applying the same call to a meta tensor whose dims all differ in size
    sizes = tuple(range(2, t.ndim + 2))
    moved = list(func(torch.empty(sizes, device="meta"), *args[1:], **kwargs).shape)
    if sorted(moved) != list(sizes):
        return None
    dims = tuple(moved.index(sizes[t.ndim + d]) - len(moved) for d in g.dims)
    return IDENTITY, IDENTITY, dims


RULES = {"conv2d": conv2d, "conv_transpose2d": conv_transpose2d, "max_pool2d": max_pool2d,
         "max_pool2d_with_indices": max_pool2d, "avg_pool2d": avg_pool2d, "lp_pool2d": lp_pool2d,
         "adaptive_avg_pool2d": adaptive_pool2d, "adaptive_max_pool2d": adaptive_pool2d,
         "adaptive_max_pool2d_with_indices": adaptive_pool2d, "interpolate": interpolate, "upsample": interpolate,
         "upsample_nearest": interpolate, "upsample_bilinear": interpolate, "pad": pad, "constant_pad_nd": pad,
         "__getitem__": getitem, "permute": permute, "transpose": permute, "swapaxes": permute, "swapdims": permute,
         "movedim": permute, "moveaxis": permute, "t": permute}


def match(g: Geo, t: torch.Tensor, out: torch.Tensor) -> tuple | None:
    """Steps for an op whose output keeps the (H, W) of ``g`` at the same dims, broadcasting size-1 axes."""
    if out.ndim < max(t.ndim, -min(g.dims)):  # elementwise outputs have at least their inputs' dims
        return None
    steps = []
    for d, n_in in zip(g.dims, g.node.shape):
        n_out = out.shape[d]
        if n_out == n_in:
            steps.append(IDENTITY)
        elif n_in == 1:
            steps.append(BROADCAST)
        else:
            return None
    return tuple(steps)


def collapse(g: Geo, t: torch.Tensor, out: torch.Tensor) -> tuple | None:
    """Steps for a keepdim reduction over spatial dims (``x.mean((2, 3), keepdim=True)``): one unit sees all."""
    if out.ndim != t.ndim:
        return None
    steps = []
    for d, n_in in zip(g.dims, g.node.shape):
        steps.append(IDENTITY if out.shape[d] == n_in else _whole(n_in) if out.shape[d] == 1 else None)
    return None if None in steps else tuple(steps)


ARBITRARY = {"grid_sample"}  # may keep the shape while reading anywhere: always the conservative fallback


def is_mixing(name: str) -> bool:
    return name in MIXING or name.startswith("fft_")


def mixing(name, args, kwargs, t, g, sh: Step, sw: Step) -> tuple[Step, Step]:
    """Widen the steps of a same-shape op that mixes units along a spatial dim (softmax, cumsum, flip, roll)."""
    if not is_mixing(name):
        return sh, sw
    key, position, default, exact = MIXING.get(name, (None, None, "all", False))
    dims = kwargs.get(key, args[position] if position is not None and len(args) > position else default) \
        if key else default
    if dims is None or isinstance(dims, str):
        dims = range(t.ndim)
    dims = {int(d) % t.ndim for d in (dims if isinstance(dims, (list, tuple, range)) else (dims,))}
    steps = [_whole(n, exact) if (t.ndim + d) in dims else s for d, n, s in zip(g.dims, g.node.shape, (sh, sw))]
    return steps[0], steps[1]
