"""A convolution layer's weights as pictures: RGB tiles for the first layer, gray tiles or summaries deeper.

Normalisation (how weights become display values in [0, 1]):

* ``"filter"`` (default): each output filter is scaled on its own, symmetrically around zero:
  ``tile = w / (2 * max|w_filter|) + 0.5``. Zero is mid-gray (or mid-gray in every colour channel), the
  strongest weight of the filter touches 0 or 1. Filters can then be compared by *shape*, not by size.
* ``"global"``: the same formula with one ``max|w|`` over the whole layer, so weak filters look faint and
  filters can be compared by *size* too.

Modes (what one tile is):

* ``"rgb"``: a first layer on colour input (in_channels 3): the filter's three input slices as R, G, B.
* ``"gray"``: a one-channel first layer: the signed weights as gray levels.
* ``"channels"``: one gray tile per (output, input) pair: row ``o`` of the grid holds the slices of filter
  ``o`` for every input channel (``ncols = in_channels``).
* ``"norm"``: one tile per filter: the L2 norm over input channels at each tap, ``sqrt(sum_i w[o,i]^2)``,
  scaled by its maximum (``"filter"``) or the layer's (``"global"``); black is 0, white the maximum.
* ``"strongest"``: one tile per filter: the input slice with the largest L2 norm, symmetric as above.
* ``"auto"``: ``"rgb"`` for 3 input channels, ``"gray"`` for 1, ``"norm"`` otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ipynetviz.engine.errors import InputError, ModelError

__all__ = ["FilterResult", "filters", "MODES", "NORMALIZATIONS", "ORDERS"]

MODES = ("auto", "rgb", "gray", "channels", "norm", "strongest")
NORMALIZATIONS = ("filter", "global")
ORDERS = ("index", "norm")


@dataclass(frozen=True, eq=False)
class FilterResult:
    """A layer's filters ready for display.

    Attributes:
        layer: the layer's name.
        mode: the resolved mode (never ``"auto"``), see the module docstring.
        normalization: ``"filter"`` or ``"global"``.
        order: ``"index"`` or ``"norm"`` (descending L2 norm of the whole filter).
        weights: (out, in, kh, kw) float32 raw weights, in index order.
        norms: (out,) L2 norm of each whole filter, in index order.
        tiles: (T, kh, kw, 3) float64 in [0, 1], in display order.
        tile_channel: (T,) the output channel shown by each tile.
        tile_input: (T,) the input channel shown by each tile (-1 when a tile mixes all inputs).
    """

    layer: str
    mode: str
    normalization: str
    order: str
    weights: np.ndarray
    norms: np.ndarray
    tiles: np.ndarray
    tile_channel: np.ndarray
    tile_input: np.ndarray

    @property
    def out_channels(self) -> int:
        return self.weights.shape[0]

    @property
    def in_channels(self) -> int:
        return self.weights.shape[1]

    @property
    def kernel_size(self) -> tuple[int, int]:
        return self.weights.shape[2], self.weights.shape[3]

    def to_numpy(self) -> np.ndarray:
        """The display tiles (T, kh, kw, 3) in [0, 1]."""
        return self.tiles

    def uint8(self) -> np.ndarray:
        """The tiles as uint8 (T, kh, kw, 3)."""
        return (self.tiles * 255).round().astype(np.uint8)

    def default_scale(self, target: int = 36) -> int:
        """Integer enlargement that draws each tile about ``target`` pixels wide."""
        return max(1, int(round(target / max(self.kernel_size))))

    def render(self, ncols: int | None = None, scale: int | None = None, pad: int = 1, pad_value: int = 255,
               with_layout: bool = False):
        """All tiles as one picture (never one widget per filter).

        Args:
            ncols: tiles per row; default ``in_channels`` in "channels" mode, otherwise about square.
            scale: integer pixel enlargement of each tile (default: tiles about 36 px wide).
            pad: gap between tiles in pixels.
            pad_value: gray level of the gaps.
            with_layout: also return the :class:`ipynetviz.render.TileLayout` (what a clickable view needs).

        Returns:
            picture (H, W, 3) uint8; with ``with_layout``, ``(picture, layout)``: ``layout.index_at(x, y)`` gives
            the tile under a click, ``tile_channel[i]`` its output channel.

        Example:
            >>> from torch import nn
            >>> from ipynetviz.engine import Inspector
            >>> insp = Inspector(nn.Sequential(nn.Conv2d(3, 8, 5)), input_size=(3, 16, 16), device="cpu")
            >>> pic, layout = filters(insp, "0").render(scale=4, with_layout=True)
            >>> pic.shape, layout.n
            ((64, 64, 3), 8)
        """
        from ipynetviz.render import tile

        if ncols is None and self.mode == "channels":
            ncols = self.in_channels
        pic, layout = tile(self.uint8(), ncols=ncols, pad=pad, pad_value=pad_value,
                           scale=self.default_scale() if scale is None else int(scale))
        return (pic, layout) if with_layout else pic


def _conv_weight(insp, layer: str) -> torch.Tensor:
    module = insp.module(layer)
    if not isinstance(module, nn.modules.conv._ConvNd) or getattr(module, "weight", None) is None:
        convs = insp.layers_of(nn.Conv2d)
        raise ModelError(f"layer {layer!r} is a {type(module).__name__}, not a convolution; filters() shows "
                         f"conv weights: pick one of {convs[:6]}{' ...' if len(convs) > 6 else ''}")
    w = module.weight.detach()
    if w.ndim != 4:
        raise ModelError(f"layer {layer!r} has {w.ndim - 2}-D kernels (weight {tuple(w.shape)}); "
                         "filters() draws 2-D convolutions (nn.Conv2d)")
    if isinstance(module, nn.ConvTranspose2d):  # weight is (in, out, kh, kw)
        w = w.transpose(0, 1)
    return w.float().cpu()


def _symmetric(a: np.ndarray, scale: np.ndarray) -> np.ndarray:
    scale = np.where(scale > 0, scale, 1.0)
    return np.clip(a / (2 * scale) + 0.5, 0.0, 1.0)


def _gray(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, axis=-1)


def filters(insp, layer: str, mode: str = "auto", normalization: str = "filter", order: str = "index"
            ) -> FilterResult:
    """The weights of convolution ``layer`` as display tiles.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        layer: a convolution layer's name (``insp.conv_layers`` lists them).
        mode: "auto", "rgb", "gray", "channels", "norm" or "strongest" (see the module docstring).
        normalization: "filter" (each filter symmetric around 0 on its own) or "global" (one scale per layer).
        order: "index" (filter order) or "norm" (largest L2 norm first).

    Returns:
        A :class:`FilterResult`; ``.render()`` draws all tiles as one picture.

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> insp = Inspector(nn.Sequential(nn.Conv2d(3, 8, 5), nn.ReLU(), nn.Conv2d(8, 4, 3)),
        ...                  input_size=(3, 16, 16), device="cpu")
        >>> filters(insp, "0").tiles.shape, filters(insp, "2").mode, filters(insp, "2", "channels").tiles.shape
        ((8, 5, 5, 3), 'norm', (32, 3, 3, 3))
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; use one of {MODES}")
    if normalization not in NORMALIZATIONS:
        raise InputError(f"unknown normalization {normalization!r}; use 'filter' or 'global'")
    if order not in ORDERS:
        raise InputError(f"unknown order {order!r}; use 'index' or 'norm'")
    w = _conv_weight(insp, layer).numpy().astype(np.float64)
    n_out, n_in = w.shape[:2]
    if mode == "auto":
        mode = {3: "rgb", 1: "gray"}.get(n_in, "norm")
    if mode == "rgb" and n_in != 3:
        raise InputError(f"mode 'rgb' needs 3 input channels; layer {layer!r} has {n_in}: "
                         "use mode='channels', 'norm' or 'strongest'")
    if mode == "gray" and n_in != 1:
        raise InputError(f"mode 'gray' needs 1 input channel; layer {layer!r} has {n_in}: "
                         "use mode='channels', 'norm' or 'strongest'")
    norms = np.sqrt((w ** 2).sum(axis=(1, 2, 3)))
    per_filter = np.abs(w).max(axis=(1, 2, 3))  # (out,)
    layer_max = np.abs(w).max()
    sym_scale = (per_filter if normalization == "filter" else np.full(n_out, layer_max))[:, None, None]

    if mode == "rgb":
        tiles = _symmetric(w.transpose(0, 2, 3, 1), sym_scale[..., None])
        inputs = np.full(n_out, -1)
    elif mode == "gray":
        tiles = _gray(_symmetric(w[:, 0], sym_scale))
        inputs = np.full(n_out, -1)
    elif mode == "channels":
        tiles = _gray(_symmetric(w, sym_scale[:, None])).reshape((n_out * n_in,) + w.shape[2:] + (3,))
        inputs = np.tile(np.arange(n_in), n_out)
    elif mode == "norm":
        tap = np.sqrt((w ** 2).sum(axis=1))  # (out, kh, kw)
        top = tap.max(axis=(1, 2)) if normalization == "filter" else np.full(n_out, tap.max())
        tiles = _gray(tap / np.where(top > 0, top, 1.0)[:, None, None])
        inputs = np.full(n_out, -1)
    else:  # strongest
        inputs = np.sqrt((w ** 2).sum(axis=(2, 3))).argmax(axis=1)  # first maximum on ties
        tiles = _gray(_symmetric(w[np.arange(n_out), inputs], sym_scale))

    per_tile = n_in if mode == "channels" else 1
    channel_of_tile = np.repeat(np.arange(n_out), per_tile)
    if order == "norm":
        # stable: equal norms keep index order
        ranked = np.argsort(-norms, kind="stable")
        pick = (ranked[:, None] * per_tile + np.arange(per_tile)[None]).reshape(-1)
        tiles, channel_of_tile, inputs = tiles[pick], channel_of_tile[pick], np.asarray(inputs)[pick]
    return FilterResult(layer=layer, mode=mode, normalization=normalization, order=order,
                        weights=w.astype(np.float32), norms=norms, tiles=tiles,
                        tile_channel=channel_of_tile.astype(np.int64), tile_input=np.asarray(inputs, np.int64))
