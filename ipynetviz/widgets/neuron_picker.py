"""NeuronPicker: pick an image, a layer, a unit and a method; see the image, the unit's feature map and what
the method says drives that unit (gradient, saliency, guided backprop or deconvnet), side by side."""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import traitlets

from ..engine import Selection, Unit, as_imageset
from ..engine.errors import InputError, ModelError, SettingError
from ..methods.attribution import attribute
from ..methods.units import input_pictures
from ..render import colorize, gray_tiles, tile, to_hwc_uint8
from .base import ClickImage, ColorBar, View, dropdown, guarded, hold_models, link_selection, scale_for, spatial_layers

METHODS = {"guided backprop": "guided_backprop", "gradient": "gradient", "saliency": "saliency",
           "deconvnet": "deconvnet"}
SHOWN = 192  # display size of the image, the map and the visualization, in screen pixels

class NeuronPicker(View):
    """Explain one unit of one layer on one image, live: click an image, a feature map or a position.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        images: the images to pick from (anything :func:`ipynetviz.engine.as_imageset` accepts).
        layer: the layer (default: the selection's, else the last conv layer).
        method: "guided_backprop" (default), "gradient", "saliency" or "deconvnet".
        selection: the shared :class:`ipynetviz.Selection` (default: a new one).
        max_thumbs: images shown as clickable thumbnails (the index box reaches all).
        synchronous: compute in the caller's thread (scripts and tests) instead of a background worker.

    Traits: ``layer``, ``channel``, ``image_index``, ``method``, ``position`` ((y, x) of one neuron in the map, or
    None for the whole map's mean), and ``shown`` (what the visualization on screen explains).
    """

    PICTURES_FIRST = True  # a click sends every linked view's picture before the captions (base.pictures_first)

    layer = traitlets.Unicode()
    channel = traitlets.Int(0)
    image_index = traitlets.Int(0)
    method = traitlets.Unicode("guided_backprop")
    position = traitlets.Tuple(None, allow_none=True)
    shown = traitlets.Dict({})

    def __init__(self, insp, images, layer: str | None = None, method: str = "guided_backprop",
                 selection: Selection | None = None, max_thumbs: int = 32, synchronous: bool = False, **kw):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-neuronpicker", **kw)
        if method not in METHODS.values():
            raise SettingError(f"unknown method {method!r}; use one of {sorted(METHODS.values())}")
        self.insp = insp
        self.images = as_imageset(images)
        self.layers = spatial_layers(insp)
        if not self.layers:
            raise ModelError("the model has no layer with a spatial (C, H, W) output to explain")
        start = layer or (self.selection.layer if self.selection.layer in self.layers else None) or \
            (insp.conv_layers[-1] if insp.conv_layers else self.layers[-1])
        if start not in self.layers:
            insp.module(start)
            raise InputError(f"layer {start!r} has no spatial map (output {insp.layer_shape(start)}); "
                             f"pick one of {self.layers[:8]}")
        self.acts = None          # (C, h, w) feature maps of the shown image at acts_key's layer
        self.acts_key = None
        self.map_layout = None
        self.result = None        # the AttributionResult on screen

        self.layer_picker = dropdown(self.layers, start, "layer", "t-neuronpicker-layer")
        self.channel_picker = W.BoundedIntText(value=0, min=0, max=self._channels(start) - 1, description="unit",
                                               layout=W.Layout(width="130px"))
        self.channel_picker.add_class("t-neuronpicker-channel")
        self.method_picker = W.ToggleButtons(options=list(METHODS.items()), value=method,
                                             style={"button_width": "126px"})  # "guided backprop" in full
        self.method_picker.add_class("t-neuronpicker-method")
        self.whole = W.Button(description="whole map", tooltip="explain the mean of the whole feature map",
                              layout=W.Layout(width="100px"))
        self.whole.add_class("t-neuronpicker-whole")
        self._build_thumbs(self.images, max_thumbs, 40, "t-neuronpicker-thumbs")
        self.image_view = ClickImage(css_class="t-neuronpicker-image")
        self.map_view = ClickImage(css_class="t-neuronpicker-map")
        self.result_view = ClickImage(css_class="t-neuronpicker-result")
        self.maps = ClickImage(css_class="t-neuronpicker-maps")
        self.info = W.HTML("")
        self.info.add_class("t-neuronpicker-info")
        captions = [W.HTML(f"<b>{t}</b>") for t in ("image", "feature map", "visualization")]
        self.map_bar = ColorBar(width=SHOWN, css_class="t-neuronpicker-map-colorbar")
        self.result_bar = ColorBar(width=SHOWN, css_class="t-neuronpicker-result-colorbar")
        self.body.children = [
            self.thumbs,
            W.HBox([self.layer_picker, self.channel_picker, self.whole]), self.method_picker,
            W.HBox([W.VBox([captions[0], self.image_view]), W.VBox([captions[1], self.map_view, self.map_bar]),
                    W.VBox([captions[2], self.result_view, self.result_bar])]),
            self.info, self.maps]

        W.link((self.layer_picker, "value"), (self, "layer"))
        W.link((self.channel_picker, "value"), (self, "channel"))
        W.link((self.method_picker, "value"), (self, "method"))
        self.maps.observe(self._on_map_tile, names="click")
        self.map_view.observe(self._on_map_position, names="click")
        self.whole.on_click(lambda _: setattr(self, "position", None))
        self.observe(self._on_layer, names="layer")
        self.observe(self._refresh, names=["channel", "image_index", "method", "position"])
        link_selection(self, ("layer", "channel", "image_index", "position"))
        if self.selection.channel is not None and self.selection.layer == self.layer:
            self.accept_channel(self.selection.channel)
        self.accept_image_index(self.selection.image_index)
        if self.selection.layer is None:
            self.selection.layer = self.layer
        self._refresh()

    # ------------------------------------------------------------ selection in
    def accept_position(self, position) -> None:
        h, w = self.insp.layer_shape(self.layer)[1:]
        if self.selection.layer in (None, self.layer) and 0 <= position[0] < h and 0 <= position[1] < w:
            self.position = tuple(int(v) for v in position)

    # ------------------------------------------------------------ work
    @guarded
    def _on_layer(self, change) -> None:
        c = self._channels(self.layer)
        self.channel_picker.max = c - 1
        with self.hold_trait_notifications():
            self.position = None
            if self.channel >= c:
                self.channel = 0
        self._refresh()

    def target(self) -> Unit:
        """What the visualization explains: the mean of the chosen map, or the chosen neuron."""
        if self.position is None:
            return Unit(self.layer, self.channel)
        return Unit(self.layer, self.channel, int(self.position[0]), int(self.position[1]))

    @guarded
    def _refresh(self, change=None) -> None:
        index, layer, method, target = self.image_index, self.layer, self.method, self.target()
        self._mark_thumb(index)
        key = {"image_index": index, "layer": layer, "channel": target.channel, "method": method,
               "position": None if target.y is None else [target.y, target.x]}

        def job(ticket):
            raw = self.images.raw([index])
            with hold_models(self.insp):
                ticket.check()
                if self.acts_key != (index, layer):
                    acts = self.insp.activations(raw, [layer])[layer][0].float().numpy()
                    picture = input_pictures(self.insp, self.images, [index])[0]
                    ticket.emit(("maps", (index, layer), acts, picture))
                ticket.check()
                return key, attribute(self.insp, raw, target, method)
        # the map first: once the worker runs, this thread would wait for the GIL (~5 ms switch interval)
        if self.acts is not None and self.acts_key == (index, layer):
            self._draw_map()
        self.submit(job, on_result=self._show_result, on_partial=self._show_maps,
                    busy=f"{METHODS_LABEL.get(method, method)} of {self._describe(target)} on image {index}")

    @staticmethod
    def _describe(t: Unit) -> str:
        return f"{t.layer}[{t.channel}]" + ("" if t.y is None else f" at ({t.y}, {t.x})")

    def _show_maps(self, value) -> None:
        _, key, acts, picture = value
        self.acts, self.acts_key = acts, key
        big = to_hwc_uint8(picture)
        self.image_view.scale = SHOWN / max(big.shape[:2])
        self.image_view.set_image(big)
        c, h, w = acts.shape
        pic, layout = tile(gray_tiles(acts, per_map=False), ncols=int(np.ceil(np.sqrt(c) * 1.5)),
                           scale=scale_for(max(h, w), 24), pad=2, pad_value=90)
        self.map_layout = layout
        self.maps.set_image(pic, layout)
        self._draw_map()

    def _draw_map(self) -> None:
        if self.acts is None or self.channel >= self.acts.shape[0]:
            return
        self.maps.selected = self.channel
        amap = self.acts[self.channel]
        self.map_view.scale = SHOWN / max(amap.shape)
        self.map_view.set_image(colorize(amap, "viridis"))
        self.map_bar.show("viridis", float(amap.min()), float(amap.max()),
                          f"activation of {self.layer}[{self.channel}] on image {self.image_index}")
        if self.position is None:
            self.map_view.box = []
        else:
            y, x = self.position
            self.map_view.box = [int(y), int(x), int(y) + 1, int(x) + 1]

    def _show_result(self, value) -> None:
        key, result = value
        self.result = result
        pic = result.render(0)
        self.result_view.scale = SHOWN / max(pic.shape[:2])
        self.result_view.set_image(pic)
        self.shown = key
        a = result.attributions[0]
        m = float(a.abs().max())
        if a.ndim == 3 and key["method"] != "saliency":  # signed per colour channel, 0 -> mid grey (render "rgb")
            self.result_bar.show("gray", -m, m, "gradient per colour channel (mid grey: 0; brighter: positive)")
        else:
            heat = result.heatmap(0)
            self.result_bar.show("inferno", float(heat.min()), float(heat.max()), "|gradient| (max over colours)")
        self.info.value = (f"<b>{html.escape(METHODS_LABEL[key['method']])}</b> of "
                           f"<b>{html.escape(self._describe(key_target(key)))}</b> on image {key['image_index']}: unit value "
                           f"{float(result.scores[0]):.4g}; max |attribution| {float(a.abs().max()):.3g}")

    # ------------------------------------------------------------ clicks
    @guarded
    def _on_map_tile(self, change) -> None:
        i = self.maps.tile_of(change["new"])
        if i is not None:
            self._claim_layer()
            with self.hold_trait_notifications():
                self.position = None
                self.channel = i

    @guarded
    def _on_map_position(self, change) -> None:
        if not change["new"] or self.acts is None:
            return
        h, w = self.acts.shape[1:]
        self.position = (min(h - 1, int(change["new"]["y"])), min(w - 1, int(change["new"]["x"])))

    def click_map(self, channel: int) -> None:
        """Click the middle of ``channel``'s tile in the maps mosaic (what a browser click does)."""
        self.maps.click_tile(channel)


METHODS_LABEL = {v: k for k, v in METHODS.items()}


def key_target(key: dict) -> Unit:
    """The unit a ``shown`` record explains."""
    pos = key["position"]
    return Unit(key["layer"], key["channel"], *(pos if pos is not None else ()))
