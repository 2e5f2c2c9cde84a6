"""PatchGallery: the selected unit's top patches, and the selected image's nearest neighbours in feature space
vs pixel space (Krizhevsky et al. 2012, Fig. 4: neighbours in a deep layer share content, not pixels)."""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import traitlets

from ..engine import Selection
from ..methods.units import input_pictures, nearest_neighbours
from ..render import resize, tile, to_hwc_uint8
from .base import ClickImage, PatchSource, View, default_k, dropdown, guarded, link_selection, scale_for

_BLANK = np.full((8, 8, 3), 255, np.uint8)


def default_feature_layer(insp) -> str:
    """The input of the classifier: the layer just before the last one (e.g. ``flatten`` or ``avgpool``)."""
    layers = insp.layers
    return layers[-2] if len(layers) > 1 else layers[-1]


class PatchGallery(View):
    """Top patches of the selected unit, and nearest neighbours of the selected image in two spaces.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        dataset: the images searched for patches and neighbours (``image_index`` indexes it).
        layer, channel: the unit whose top patches are shown (default: the selection's).
        feature_layer: the layer whose output is the feature space for neighbours (default: the classifier's
            input).
        selection: the shared :class:`ipynetviz.Selection` (default: a new one).
        k: patches and neighbours shown (default: 9, or fewer for a smaller data set).
        synchronous: compute in the caller's thread (scripts and tests).
        examples: a dataset-examples folder saved by ``ipynetviz.methods.scan`` from ``dataset`` with this
            model: its layers' top patches open instantly instead of being scanned.

    Traits: ``layer``, ``channel``, ``image_index``, ``feature_layer``.
    """

    PICTURES_FIRST = True  # a click sends every linked view's picture before the captions (base.pictures_first)

    layer = traitlets.Unicode()
    channel = traitlets.Int(None, allow_none=True)
    image_index = traitlets.Int(0)
    feature_layer = traitlets.Unicode()

    def __init__(self, insp, dataset, layer: str | None = None, channel: int | None = None,
                 feature_layer: str | None = None, selection: Selection | None = None, k: int | None = None,
                 synchronous: bool = False, examples=None, **kw):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-gallery", **kw)
        self.source = PatchSource(insp, dataset, k, examples=examples)
        self.data = self.source.data
        # neighbours of one image come from the N - 1 others
        self.insp, self.k = insp, self.source.k if k is not None else default_k(len(self.data) - 1)
        self.layers = [n for n in insp.layers if insp.layer_shape(n)]
        start = layer or (self.selection.layer if self.selection.layer in self.layers else None) or \
            (insp.conv_layers[-1] if insp.conv_layers else self.layers[-1])
        insp.module(start)
        feature_layer = feature_layer or default_feature_layer(insp)
        insp.module(feature_layer)
        self.top = None
        self.neighbours = None
        self.layer_picker = dropdown(self.layers, start, "unit layer", "t-gallery-layer")
        self.channel_picker = W.BoundedIntText(value=0, min=0, max=max(0, insp.layer_shape(start)[0] - 1),
                                               description="channel", layout=W.Layout(width="150px"))
        self.channel_picker.add_class("t-gallery-channel")
        self.feature_picker = dropdown(self.layers, feature_layer, "feature space", "t-gallery-feature-layer")
        self.patch_view = ClickImage(css_class="t-gallery-patches")
        self.patch_info = W.HTML("")
        self.patch_info.add_class("t-gallery-patch-info")
        self.query = ClickImage(css_class="t-gallery-query", scale=2)
        self.feature_view = ClickImage(css_class="t-gallery-feature")
        self.pixel_view = ClickImage(css_class="t-gallery-pixel")
        self.info = W.HTML("")
        self.info.add_class("t-gallery-info")
        label = lambda text: W.HTML(f"<b>{text}</b>")  # noqa: E731
        self.body.children = [
            W.HBox([self.layer_picker, self.channel_picker]), self.patch_view, self.patch_info,
            W.HBox([self.feature_picker]),
            W.HBox([W.VBox([label("query"), self.query]),
                    W.VBox([label("nearest in feature space"), self.feature_view,
                            label("nearest in pixel space"), self.pixel_view])]), self.info]
        W.link((self.layer_picker, "value"), (self, "layer"))
        W.link((self.feature_picker, "value"), (self, "feature_layer"))
        self.channel_picker.observe(self._on_channel_box, names="value")
        self.patch_view.observe(self._on_patch, names="click")
        self.feature_view.observe(lambda ch: self._on_neighbour(ch, "feature"), names="click")
        self.pixel_view.observe(lambda ch: self._on_neighbour(ch, "pixel"), names="click")
        self.observe(self._on_layer, names="layer")
        self.observe(self._refresh_neighbours, names=["image_index", "feature_layer"])
        self.observe(self._draw_patches, names="channel")
        link_selection(self, ("layer", "channel", "image_index"))
        if channel is not None:
            self.channel = int(channel)
        elif self.selection.channel is not None and self.selection.layer == self.layer:
            self.channel = self.selection.channel
        self.accept_image_index(self.selection.image_index)
        self._refresh()

    def image_count(self) -> int:
        return len(self.data)

    # ------------------------------------------------------------ work
    @guarded
    def _on_layer(self, change=None) -> None:
        channels = self.insp.layer_shape(self.layer)[0]
        self.channel_picker.max = max(0, channels - 1)
        if self.channel is not None and self.channel >= channels:
            self.channel = None
        if self.top is not None and self.top.layer != self.layer:
            self.top = None
            self._draw_patches()
        self._refresh()

    @guarded
    def _refresh_neighbours(self, change=None) -> None:
        self._refresh()

    def _refresh(self) -> None:
        layer, feature_layer, index, k = self.layer, self.feature_layer, self.image_index, self.k

        def job(ticket):
            check = lambda done, total: ticket.check()  # noqa: E731
            top = self.source.get(layer, progress=check)
            ticket.emit(top)
            return self.insp.cached(
                "nearest_neighbours", {"layer": feature_layer, "k": k, "query": index, "data": self.source.key},
                None, lambda: nearest_neighbours(self.insp, self.data, index, feature_layer, k=k, progress=check))
        self.submit(job, on_result=self._show_neighbours, on_partial=self._show_patches,
                    busy=f"top patches of {layer}, neighbours of image {index} in {feature_layer}…")

    def _show_patches(self, top) -> None:
        self.top = top
        self._draw_patches()

    @guarded
    def _draw_patches(self, change=None) -> None:
        if self.channel is not None and self.channel_picker.value != self.channel:
            self.channel_picker.value = self.channel
        if self.top is None or self.channel is None or self.top.layer != self.layer:
            self.patch_view.set_image(_BLANK)
            self.patch_info.value = "" if self.channel is not None else "pick a unit (channel)"
            return
        crops = self.top.crops(self.channel)
        pic, layout = tile(list(crops), ncols=min(len(crops), 9), scale=scale_for(crops.shape[-1], 48), pad=2)
        self.patch_view.set_image(pic, layout)
        row = self.top.row(self.channel)
        where = "" if not self.top.spatial else " at " + ", ".join(
            f"({y}, {x})" for y, x in self.top.positions[row].tolist())
        self.patch_info.value = (f"<b>{html.escape(self.layer)}[{self.channel}]</b> top {self.top.k}: images "
                                 f"{self.top.image_indices[row].tolist()}{where}; scores "
                                 + ", ".join(f"{v:.3g}" for v in self.top.scores[row]))

    def _pictures(self, indices) -> np.ndarray:
        shown = input_pictures(self.insp, self.data, indices)
        side = shown.shape[-1]
        size = scale_for(side, 48) * side if side < 48 else 64  # enlarge crisply, shrink smoothly
        return [resize(to_hwc_uint8(p), (size, size * shown.shape[-1] // shown.shape[-2]), smooth=size < side)
                for p in shown]

    @guarded
    def _show_neighbours(self, nb) -> None:
        self.neighbours = nb
        q = int(nb.query_indices[0])
        self.query.set_image(self._pictures([q])[0])
        for view, idx in ((self.feature_view, nb.feature_indices[0]), (self.pixel_view, nb.pixel_indices[0])):
            pic, layout = tile(self._pictures(idx.tolist()), ncols=len(idx), pad=2)
            view.set_image(pic, layout)
        self.info.value = (f"image {q}: nearest in <b>{html.escape(nb.layer)}</b> {nb.feature_indices[0].tolist()}; "
                           f"in pixels {nb.pixel_indices[0].tolist()}; shared: {nb.overlap()[0]:.0%}")

    # ------------------------------------------------------------ clicks
    @guarded
    def _on_channel_box(self, change) -> None:
        if self.channel != change["new"]:
            self._claim_layer()
            self.channel = int(change["new"])

    @guarded
    def _on_patch(self, change) -> None:
        i = self.patch_view.tile_of(change["new"])
        if i is not None and self.top is not None and self.channel is not None:
            self.image_index = int(self.top.image_indices[self.top.row(self.channel), i])

    @guarded
    def _on_neighbour(self, change, space: str) -> None:
        view = self.feature_view if space == "feature" else self.pixel_view
        i = view.tile_of(change["new"])
        if i is not None and self.neighbours is not None:
            idx = self.neighbours.feature_indices if space == "feature" else self.neighbours.pixel_indices
            self.image_index = int(idx[0, i])
