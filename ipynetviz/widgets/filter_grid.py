"""FilterGrid: a convolution layer's filters as one clickable picture; a click selects that channel everywhere."""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import traitlets

from ..engine import Selection
from ..engine.errors import InputError, ModelError
from ..methods.units import filters
from ..methods.units.filters import MODES, NORMALIZATIONS, ORDERS
from .base import ClickImage, ColorBar, View, conv_for, dropdown, guarded, link_selection


class FilterGrid(View):
    """A layer's filters drawn as one mosaic (one picture even for 512 filters); click a tile to select a channel.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        layer: a convolution layer (default: the first).
        selection: the :class:`ipynetviz.Selection` shared with other views (default: a new one).
        mode, normalization, order: as in :func:`ipynetviz.methods.units.filters`.
        synchronous: compute in the caller's thread (scripts and tests).

    Traits: ``layer``, ``channel`` (the selected output channel or None), ``mode``, ``normalization``, ``order``.

    Example:
        >>> grid = FilterGrid(insp, layer="conv1")      # doctest: +SKIP
        >>> grid.channel = 5; grid.selection.channel    # doctest: +SKIP
        5
    """

    PICTURES_FIRST = True  # a click sends every linked view's picture before the captions (base.pictures_first)

    layer = traitlets.Unicode()
    channel = traitlets.Int(None, allow_none=True)
    mode = traitlets.Enum(MODES, default_value="auto")
    normalization = traitlets.Enum(NORMALIZATIONS, default_value="filter")
    order = traitlets.Enum(ORDERS, default_value="index")

    def __init__(self, insp, layer: str | None = None, selection: Selection | None = None, mode: str = "auto",
                 normalization: str = "filter", order: str = "index", synchronous: bool = True, **kw):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-filtergrid", **kw)
        self.insp = insp
        convs = insp.conv_layers
        if not convs:
            raise ModelError("the model has no Conv2d layer: a filter grid has nothing to show")
        self.result = None
        self.layout_ = None
        start = layer or conv_for(insp, self.selection.layer) or convs[0]
        insp.module(start)
        if start not in convs:
            raise InputError(f"layer {start!r} is not a convolution; a filter grid shows one of {convs}")
        self.layer_picker = dropdown(convs, start, "layer", "t-filtergrid-layer")
        self.mode_picker = dropdown(list(MODES), mode, "tiles", "t-filtergrid-mode")
        self.norm_picker = dropdown(list(NORMALIZATIONS), normalization, "scale", "t-filtergrid-normalization")
        self.order_picker = W.ToggleButtons(options=[("by index", "index"), ("by norm", "norm")],
                                            value=order, style={"button_width": "80px"},
                                            layout=W.Layout(flex="0 0 auto"))  # never squeezed into a column
        self.order_picker.add_class("t-filtergrid-order")
        self.mosaic = ClickImage(css_class="t-filtergrid-mosaic")
        self.info = W.HTML("")
        self.info.add_class("t-filtergrid-info")
        self.colorbar = ColorBar(width=256, css_class="t-filtergrid-colorbar")
        # a narrow panel wraps whole controls onto a second row instead of breaking the toggle's buttons apart
        self.body.children = [W.HBox([self.layer_picker, self.mode_picker, self.norm_picker, self.order_picker],
                                     layout=W.Layout(flex_flow="row wrap")),
                              self.mosaic, self.colorbar, self.info]
        for name, picker in (("layer", self.layer_picker), ("mode", self.mode_picker),
                             ("normalization", self.norm_picker), ("order", self.order_picker)):
            W.link((picker, "value"), (self, name))
        self.mosaic.observe(self._on_click, names="click")
        self.observe(self._redraw, names=["layer", "mode", "normalization", "order"])
        self.observe(self._show_channel, names="channel")
        self._redraw()
        link_selection(self, ("layer", "channel"))
        if self.selection.layer is None:
            self.selection.layer = self.layer
        elif self.selection.channel is not None:
            self.accept_channel(self.selection.channel)

    # ------------------------------------------------------------ selection in
    def accept_layer(self, layer: str) -> None:
        """Follow a selected layer: a convolution, or the ReLU/BatchNorm/pool showing a convolution's channels."""
        conv = conv_for(self.insp, layer)
        if conv is not None:
            self.layer = conv

    def accept_channel(self, channel: int) -> None:
        if self.result is not None and 0 <= channel < self.result.out_channels and \
                conv_for(self.insp, self.selection.layer) in (None, self.layer):
            self.channel = int(channel)

    # ------------------------------------------------------------ drawing
    @guarded
    def _redraw(self, change=None) -> None:
        if self.mode in ("rgb", "gray"):
            want = {"rgb": 3, "gray": 1}[self.mode]
            if self.insp.module(self.layer).weight.shape[1] != want:
                self.mode = "auto"  # rgb/gray only exist for first layers; fall back instead of failing
                return
        res = filters(self.insp, self.layer, mode=self.mode, normalization=self.normalization, order=self.order)
        pic, layout = res.render(with_layout=True)
        self.result, self.layout_ = res, layout
        self.mosaic.set_image(pic, layout)
        if self.channel is not None and self.channel >= res.out_channels:
            self.channel = None
        self._show_channel()

    def _draw_colorbar(self, res) -> None:
        """The weight range the tiles' grey levels span: the layer's (global scale) or the selected filter's."""
        w = res.weights if self.channel is None or res.normalization == "global" else res.weights[self.channel]
        whose = "the layer" if res.normalization == "global" else (
            f"filter {self.channel}" if self.channel is not None else None)
        if res.mode == "norm":
            taps = np.sqrt((w.astype(np.float64) ** 2).sum(axis=-3))
            hi, what = float(taps.max()), "L2 norm over input channels at each tap (black: 0)"
            lo = 0.0
        else:
            hi, what = float(np.abs(w).max()), "weight (mid grey: 0)"
            lo = -hi
        if whose is None:  # each filter on its own scale and none selected: the scale is relative
            lo, hi = (0.0 if res.mode == "norm" else -1.0), 1.0
            what += "; each filter scaled to its own maximum (click one for its values)"
        else:
            what += f"; scale of {whose}"
        self.colorbar.show("gray", lo, hi, what)

    def tile_of(self, channel: int) -> int:
        """Mosaic tile index of ``channel``'s filter (its first tile in "channels" mode)."""
        return int(np.flatnonzero(self.result.tile_channel == channel)[0])

    @guarded
    def _show_channel(self, change=None) -> None:
        res = self.result
        if res is None:
            return
        self._draw_colorbar(res)
        head = (f"<b>{html.escape(self.layer)}</b>: {res.out_channels} filters of {res.in_channels}×"
                f"{res.kernel_size[0]}×{res.kernel_size[1]}, tiles: {res.mode}, scale: {res.normalization}")
        if self.channel is None:
            self.mosaic.selected = -1
            self.info.value = head
            return
        self.mosaic.selected = self.tile_of(self.channel)
        rank = int(np.flatnonzero(np.argsort(-res.norms, kind="stable") == self.channel)[0]) + 1
        self.info.value = (f"{head}<br>channel <b>{self.channel}</b>: |w| = {res.norms[self.channel]:.3g} "
                           f"(rank {rank} of {res.out_channels} by norm)")

    @guarded
    def _on_click(self, change) -> None:
        click = change["new"]
        if not click:
            return
        i = self.mosaic.tile_at(click["x"], click["y"])
        if i is None:
            return
        # a click selects the layer too, so views showing another layer follow (a view on this conv's ReLU stays)
        if conv_for(self.insp, self.selection.layer) != self.layer:
            self.selection.layer = self.layer
        self.channel = int(self.result.tile_channel[i])
        self.selection.channel = self.channel

    def click_tile(self, i: int) -> None:
        """Click the middle of tile ``i`` (what a browser click does; for scripts and tests)."""
        self.mosaic.click_tile(i)
