"""Parts of the CorrespondenceMatrix: which layers hold units, and the panel that shows one unit."""
from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as W
import numpy as np
from torch import nn

from ..engine.dataset import ImageSet
from ..engine.errors import InputError
from ..methods.units import filters, input_pictures
from ..render import overlay, tile
from .base import ClickImage, conv_for, scale_for, spatial_layers

@dataclass(frozen=True, eq=False)
class MatrixView:
    """What the heatmap shows: the reordered matrix and which unit each row and column is.

    Attributes:
        matrix: (R, C) correlations in display order (NaN for dead units).
        rows, cols: unit index of each displayed row / column.
        row_side, col_side: "a" or "b", the network of the rows / columns.
        n_pairs: the first ``n_pairs`` diagonal cells are the matched pairs (best first).
    """

    matrix: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    row_side: str
    col_side: str
    n_pairs: int

    def position(self, row_unit: int, col_unit: int) -> tuple[int, int]:
        """Display (row, column) of the cell of units (row_unit, col_unit)."""
        return int(np.flatnonzero(self.rows == row_unit)[0]), int(np.flatnonzero(self.cols == col_unit)[0])


def arrange(corr, mode: str = "bipartite", scope: str = "between") -> MatrixView:
    """Order a :class:`~ipynetviz.methods.correspondence.Correspondence` for display.

    Rows and columns follow ``matching.order()`` (matched pairs on the diagonal, best first, then the
    unmatched units). The within-net matrices keep that order on both axes (A's row order for ``within_a``,
    B's column order for ``within_b``), so toggling the scope keeps every unit where it was.

    Example:
        >>> v = arrange(c, "bipartite")                                 # doctest: +SKIP
        >>> v.matrix[0, 0] == c.bipartite_.sorted_corr()[0]             # doctest: +SKIP
        True
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if scope not in SCOPES:
        raise InputError(f"scope must be one of {SCOPES}, got {scope!r}")
    matching = corr.bipartite_ if mode == "bipartite" else corr.semi_
    rows, cols = matching.order()
    n_pairs = len(np.unique(matching.pairs[:, 1])) if mode == "semi" else len(matching.pairs)
    if scope == "within_a":
        return MatrixView(corr.within_a_.corr[np.ix_(rows, rows)], rows, rows, "a", "a", len(rows))
    if scope == "within_b":
        return MatrixView(corr.within_b_.corr[np.ix_(cols, cols)], cols, cols, "b", "b", len(cols))
    return MatrixView(corr.correlation_.corr[np.ix_(rows, cols)], rows, cols, "a", "b", n_pairs)


def first_images(data: ImageSet, n: int | None) -> ImageSet:
    """The first ``n`` images of a data set (all of it when ``n`` is None or larger)."""
    if n is None or len(data) <= n:
        return data
    return ImageSet(data.raw(slice(0, int(n))), labels=None if data.labels is None else data.labels[:n])


MODES = ("bipartite", "semi")
SCOPES = ("between", "within_a", "within_b")
_BLANK = np.full((8, 8, 3), 255, np.uint8)
# element-wise nonlinearities: the layer after a conv whose output Li et al. correlate (post-ReLU units)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
                nn.Hardswish, nn.Tanh, nn.Sigmoid)


def unit_layers(insp) -> list[str]:
    """Layers with a (C, H, W) output whose channels are a convolution's (the conv, its ReLU, BN, pooling)."""
    return [n for n in spatial_layers(insp) if conv_for(insp, n) is not None]


def activation_layers(insp) -> list[str]:
    """For each convolution, the last element-wise activation that follows it (e.g. ``relu1`` for ``conv1``),
    or the convolution itself when none follows before pooling or the next convolution.

    Example:
        >>> activation_layers(zoo.load("shapes-cnn"))       # doctest: +SKIP
        ['relu1', 'relu2', 'relu3', 'relu4']
    """
    order = insp.layers
    out = []
    for conv in insp.conv_layers:
        best = conv
        for name in order[order.index(conv) + 1:]:
            if conv_for(insp, name) != conv:
                break
            module = insp.module(name)
            if isinstance(module, _ACTIVATIONS):
                best = name
            elif not isinstance(module, nn.modules.batchnorm._BatchNorm):
                break  # pooling changes the units' positions: stop at the map the conv itself made
        out.append(best)
    return list(dict.fromkeys(out))


def grid_layers_of(insp_a, insp_b, most: int = 6) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Default layers of the layer x layer grid: each conv's activation, at most ``most`` evenly spaced."""
    def pick(insp):
        layers = activation_layers(insp) or unit_layers(insp)
        if len(layers) > most:
            layers = [layers[i] for i in np.linspace(0, len(layers) - 1, most).round().astype(int)]
        return tuple(layers)
    return pick(insp_a), pick(insp_b)


class UnitPanel(W.VBox):
    """One unit: its filter (RGB tile for a first layer, a summary deeper), top patches, and activation map.

    CSS classes ``t-correspondence-<key>-title``, ``-filter``, ``-patches``, ``-map`` (``key`` is "row" or "col").
    """

    def __init__(self, key: str):
        self.key = key
        self.title = W.HTML("")
        self.title.add_class(f"t-correspondence-{key}-title")
        self.filter = ClickImage(_BLANK, css_class=f"t-correspondence-{key}-filter")
        self.filter_info = W.HTML("")
        self.patches = ClickImage(_BLANK, css_class=f"t-correspondence-{key}-patches")
        self.map = ClickImage(_BLANK, css_class=f"t-correspondence-{key}-map")
        self.map_info = W.HTML("")
        self.map_info.add_class(f"t-correspondence-{key}-map-info")
        self.top = None
        self.unit: int | None = None
        self._filters: dict = {}
        self._pictures: dict = {}
        small = "<span style='font-size:11px;color:#666'>{}</span>"
        super().__init__([self.title, W.HBox([self.filter, self.filter_info]), W.HTML(small.format("top patches")),
                          self.patches, W.HTML(small.format("activation on the selected image")), self.map,
                          self.map_info], layout=W.Layout(width="250px", margin="0 8px 0 0"))
        self.add_class(f"t-correspondence-{key}")

    def clear(self) -> None:
        self.title.value, self.map_info.value, self.filter_info.value = "", "", ""
        self.top, self.unit = None, None
        for view in (self.filter, self.patches, self.map):
            view.set_image(_BLANK)

    def show(self, insp, net: str, layer: str, unit: int, dead: bool, top, acts, data, image_index: int) -> None:
        """Draw ``unit`` of ``layer``: ``top`` is the layer's TopPatchesResult (or None while computing), ``acts`` the
        layer's (C, h, w) maps on image ``image_index`` of ``data`` (or None)."""
        self.unit, self.top = int(unit), top
        self.title.value = (f"<b>{html.escape(net)}</b> · {html.escape(layer)}[{unit}]"
                            + (" <span style='color:#b00020'>dead</span>" if dead else ""))
        self._draw_filter(insp, layer, unit)
        if top is None:
            self.patches.set_image(_BLANK)
        else:
            crops = top.crops(unit)
            pic, layout = tile(list(crops), ncols=int(np.ceil(np.sqrt(len(crops)))),
                               scale=scale_for(crops.shape[-1], 36), pad=2)
            self.patches.set_image(pic, layout)
        if acts is None:
            self.map.set_image(_BLANK)
            self.map_info.value = ""
            return
        key = (id(insp), int(image_index))
        if key not in self._pictures:
            if len(self._pictures) > 32:
                self._pictures.clear()
            self._pictures[key] = input_pictures(insp, data, [image_index])[0]
        amap = acts[unit]
        big = overlay(self._pictures[key], amap, alpha=0.6)
        self.map.scale = max(1.0, 144 / max(big.shape[:2]))
        self.map.set_image(big)
        y, x = np.unravel_index(int(np.argmax(amap)), amap.shape)
        self.map_info.value = (f"<span style='font-size:11px'>image {image_index}: max {amap.max():.3g} at "
                               f"({y}, {x}) of {amap.shape[0]}×{amap.shape[1]}, mean {amap.mean():.3g}</span>")

    def _draw_filter(self, insp, layer: str, unit: int) -> None:
        conv = conv_for(insp, layer)
        if conv is None:
            self.filter.set_image(_BLANK)
            self.filter_info.value = "<span style='font-size:11px'>no filter</span>"
            return
        key = (id(insp), conv)
        if key not in self._filters:
            self._filters[key] = filters(insp, conv)
        res = self._filters[key]
        tile_ = res.uint8()[int(np.flatnonzero(res.tile_channel == unit)[0])]
        s = res.default_scale(64)
        self.filter.set_image(np.repeat(np.repeat(tile_, s, 0), s, 1))
        what = {"rgb": "RGB weights", "gray": "weights", "norm": f"L2 norm over {res.in_channels} inputs"}
        self.filter_info.value = (f"<span style='font-size:11px'>{html.escape(conv)} filter {unit}<br>"
                                  f"{what.get(res.mode, res.mode)}, |w| {res.norms[unit]:.3g}</span>")
