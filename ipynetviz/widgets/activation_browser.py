"""ActivationBrowser: one image's feature maps at a layer as one gray mosaic; a click shows that map large,
overlaid on the image, beside the unit's top activating patches from a data set (Yosinski et al. 2015)."""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import traitlets

from ..engine import Selection, as_imageset
from ..engine.errors import InputError, ModelError
from ..methods.units import input_pictures
from ..render import gray_tiles, overlay, tile
from .base import ClickImage, ColorBar, PatchSource, View, dropdown, guarded, link_selection, scale_for, spatial_layers


class ActivationBrowser(View):
    """Pick an image and a layer; see all feature maps; click one to see it large with its top patches.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        images: the images to browse (anything :func:`ipynetviz.engine.as_imageset` accepts).
        layer: the layer to show (default: the selection's, else the first conv layer).
        dataset: where top patches come from (default: ``images``).
        selection: the shared :class:`ipynetviz.Selection` (default: a new one).
        k: top patches per unit (default: 9, or fewer for a smaller data set).
        per_map: scale each map on its own (True) or all maps of the layer together (False, default: shows
            which maps are strong).
        patches: compute top patches at all (False: maps only).
        max_thumbs: images shown as clickable thumbnails (the index box reaches all).
        synchronous: compute in the caller's thread (scripts and tests) instead of a background worker.
        examples: a dataset-examples folder saved by ``ipynetviz.methods.scan`` from the patches' data set
            with this model: its layers' top patches open instantly instead of being scanned.

    Traits: ``layer``, ``channel``, ``image_index``, ``per_map``.
    """

    PICTURES_FIRST = True  # a click sends every linked view's picture before the captions (base.pictures_first)

    layer = traitlets.Unicode()
    channel = traitlets.Int(None, allow_none=True)
    image_index = traitlets.Int(0)
    per_map = traitlets.Bool(False)

    def __init__(self, insp, images, layer: str | None = None, dataset=None, selection: Selection | None = None,
                 k: int | None = None, per_map: bool = False, patches: bool = True, max_thumbs: int = 48,
                 synchronous: bool = False, examples=None, **kw):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-activations", **kw)
        self.insp = insp
        self.images = as_imageset(images)
        self.patches = PatchSource(insp, self.images if dataset is None else dataset, k,
                                   examples=examples) if patches else None
        self.patches_from_images = dataset is None
        self.layers = spatial_layers(insp)
        if not self.layers:
            raise ModelError("the model has no layer with a spatial (C, H, W) output to browse")
        start = layer or (self.selection.layer if self.selection.layer in self.layers else None) or \
            (insp.conv_layers[0] if insp.conv_layers else self.layers[0])
        if start not in self.layers:
            insp.module(start)
            raise InputError(f"layer {start!r} has no spatial map (output {insp.layer_shape(start)}); "
                             f"pick one of {self.layers[:8]}")
        self.acts = None  # (C, h, w) of the shown image at layer ``acts_layer``
        self.acts_layer = None
        self.picture = None  # (C, H, W) uint8 of the shown image
        self.map_layout = None
        self.top = None  # TopPatchesResult of the layer, once computed

        n = len(self.images)
        self.layer_picker = dropdown(self.layers, start, "layer", "t-activations-layer")
        self.index_picker = W.BoundedIntText(value=0, min=0, max=n - 1, description="image",
                                             layout=W.Layout(width="140px"))
        self.index_picker.add_class("t-activations-index")
        self.per_map_box = W.Checkbox(value=per_map, description="scale each map", indent=False)
        self.per_map_box.add_class("t-activations-permap")
        self._build_thumbs(self.images, max_thumbs, 32, "t-activations-thumbs")
        self.maps = ClickImage(css_class="t-activations-maps")
        self.large = ClickImage(css_class="t-activations-large")
        self.patch_view = ClickImage(css_class="t-activations-patches")
        self.large_bar = ColorBar(width=192, css_class="t-activations-colorbar")
        self.maps_bar = ColorBar(width=192, css_class="t-activations-maps-colorbar")
        self.info = W.HTML("")
        self.info.add_class("t-activations-info")
        self.body.children = [
            W.HBox([self.layer_picker, self.index_picker, self.per_map_box]), self.thumbs,
            W.HBox([W.VBox([self.maps, self.maps_bar]), W.VBox([self.large, self.large_bar, self.patch_view])]),
            self.info]
        W.link((self.layer_picker, "value"), (self, "layer"))
        W.link((self.index_picker, "value"), (self, "image_index"))
        W.link((self.per_map_box, "value"), (self, "per_map"))
        self.maps.observe(self._on_map, names="click")
        self.large.observe(self._on_large, names="click")
        self.patch_view.observe(self._on_patch, names="click")
        self.observe(self._refresh, names=["layer", "image_index"])
        self.observe(self._redraw_maps, names="per_map")
        self.observe(self._on_channel, names="channel")
        self.thumbs.selected = 0
        link_selection(self, ("layer", "channel", "image_index"))
        if self.selection.channel is not None and self.selection.layer == self.layer:
            self.channel = self.selection.channel
        self.accept_image_index(self.selection.image_index)
        if self.selection.layer is None:
            self.selection.layer = self.layer
        self._refresh()

    # ------------------------------------------------------------ work
    @guarded
    def _refresh(self, change=None) -> None:
        layer, index = self.layer, self.image_index
        self._mark_thumb(index)
        shape = self.insp.layer_shape(layer)
        if self.channel is not None and shape and self.channel >= shape[0]:
            self.channel = None

        def job(ticket):
            raw = self.images.raw([index])
            acts = self.insp.activations(raw, [layer])[layer][0].float().numpy()
            picture = input_pictures(self.insp, self.images, [index])[0]
            ticket.emit((layer, index, acts, picture))
            if self.patches is None:
                return None
            return self.patches.get(layer, progress=lambda done, total: ticket.check())
        if self.acts is not None and self.acts_layer != layer:
            self.acts = None  # never show one layer's map under another's name
        if self.top is not None and self.top.layer != layer:
            self.top = None
            self._draw_patches()
        n = len(self.patches.data) if self.patches else 0
        self.submit(job, on_result=self._show_patches, on_partial=self._show_maps,
                    busy=f"{layer}: feature maps of image {index}" + (f", top patches over {n} images" if n else ""))

    def _show_maps(self, value) -> None:
        layer, index, acts, picture = value
        self.acts, self.acts_layer, self.picture = acts, layer, picture
        self._redraw_maps()
        self._on_channel()

    @guarded
    def _redraw_maps(self, change=None) -> None:
        if self.acts is None:
            return
        c, h, w = self.acts.shape
        pic, layout = tile(gray_tiles(self.acts, per_map=self.per_map), ncols=int(np.ceil(np.sqrt(c) * 1.3)),
                           scale=scale_for(max(h, w), 28), pad=2, pad_value=90)
        self.map_layout = layout
        self.maps.set_image(pic, layout)
        if self.per_map:
            self.maps_bar.show("gray", 0.0, 1.0, "each map from its own minimum (0) to its maximum (1)")
        else:
            self.maps_bar.show("gray", float(self.acts.min()), float(self.acts.max()),
                               f"activation of {self.acts_layer}, all maps on one scale")
        self.maps.selected = -1 if self.channel is None else self.channel

    def _show_patches(self, top) -> None:
        self.top = top
        self._draw_patches()

    # ------------------------------------------------------------ the selected map
    @guarded
    def _on_channel(self, change=None) -> None:
        ch = self.channel
        self.maps.selected = -1 if ch is None else ch
        if self.acts is None or ch is None or ch >= self.acts.shape[0]:
            self.large.set_image(np.full((8, 8, 3), 255, np.uint8))
            self.info.value = f"<b>{html.escape(self.layer)}</b>, image {self.image_index}: click a map"
            self._draw_patches()
            return
        amap = self.acts[ch]
        big = overlay(self.picture, amap, alpha=0.6)
        self.large_bar.show("inferno", float(amap.min()), float(amap.max()),
                            f"activation of {self.layer}[{ch}] over the image")
        self.large.scale = max(1.0, 192 / max(big.shape[:2]))
        self.large.set_image(big)
        y, x = np.unravel_index(int(np.argmax(amap)), amap.shape)
        self.info.value = (f"<b>{html.escape(self.layer)}[{ch}]</b> on image {self.image_index}: max "
                           f"{amap.max():.3g} at ({y}, {x}) of {amap.shape[0]}×{amap.shape[1]}, "
                           f"mean {amap.mean():.3g}")
        self._draw_patches()

    def _draw_patches(self) -> None:
        if self.top is None or self.channel is None or self.top.layer != self.layer:
            self.patch_view.set_image(np.full((8, 8, 3), 255, np.uint8))
            return
        crops = self.top.crops(self.channel)
        pic, layout = tile(list(crops), ncols=min(len(crops), 5), scale=scale_for(crops.shape[-1], 40), pad=2)  # beside the map
        self.patch_view.set_image(pic, layout)

    # ------------------------------------------------------------ clicks
    @guarded
    def _on_map(self, change) -> None:
        i = self.maps.tile_of(change["new"])
        if i is not None:
            self._claim_layer()
            self.channel = i

    @guarded
    def _on_large(self, change) -> None:
        """A click on the large map selects that unit's position (for views that explain one neuron)."""
        if not change["new"] or self.acts is None:
            return
        h, w = self.acts.shape[1:]
        big_h, big_w = self.large.image.shape[:2]
        y = min(h - 1, int(change["new"]["y"] * h / big_h))
        x = min(w - 1, int(change["new"]["x"] * w / big_w))
        self.selection.position = (y, x)

    @guarded
    def _on_patch(self, change) -> None:
        """A click on a top patch opens its image (when the patches come from the browsed images)."""
        i = self.patch_view.tile_of(change["new"])
        if i is not None and self.top is not None and self.patches_from_images:
            row = self.top.row(self.channel)
            self.image_index = int(self.top.image_indices[row, i])

    def click_map(self, channel: int) -> None:
        """Click the middle of ``channel``'s map tile (what a browser click does; for scripts and tests)."""
        self.maps.click_tile(channel)
