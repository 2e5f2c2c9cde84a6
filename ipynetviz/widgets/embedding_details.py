"""EmbeddingScatter's detail column: the clicked image, its nearest neighbours in feature and pixel space, and
the gallery of brushed or lassoed images. A part of the view (mixed into :class:`EmbeddingScatter`), kept apart
because it is its own responsibility: what is shown beside the map, not the map."""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np

from ..engine.dataset import ImageSet
from ..methods.units import nearest_neighbours
from ..render import tile
from .base import ClickImage, guarded


class EmbeddingDetails:
    """Builds and fills the detail column; expects the view's data, indices, executors and thumbnails."""

    def _build_details(self) -> None:
        """The column beside the map: the clicked image, its neighbours in two spaces, the brushed gallery."""
        self.thumb = ClickImage(css_class="t-embedding-thumb")
        self.info = W.HTML("")
        self.info.add_class("t-embedding-info")
        self.feature_nn = ClickImage(css_class="t-embedding-feature-nn")
        self.pixel_nn = ClickImage(css_class="t-embedding-pixel-nn")
        self.nn_info = W.HTML("")
        self.nn_info.add_class("t-embedding-nn-info")
        self.gallery = ClickImage(css_class="t-embedding-gallery")
        self.gallery_info = W.HTML("")
        self.gallery_info.add_class("t-embedding-gallery-info")
        self.details = W.VBox([W.HBox([self.thumb, self.info]), self.nn_info, self.feature_nn, self.pixel_nn,
                               self.gallery_info, self.gallery], layout=W.Layout(margin="0 0 0 12px"))

    @guarded
    def _show_image(self, change=None) -> None:
        i = self.image_index
        if i is None:
            return
        self.thumb.set_image(self.thumbnail(i, 96))
        row = self.row_of(i)
        label = None if self.labels is None else int(self.labels[row]) if row is not None else None
        cls = "" if label is None else f", class <b>{html.escape(self.name_of(label))}</b>"
        where = "" if row is not None else " (not on the map)"
        self.info.value = f"image <b>{i}</b>{cls}{where}"
        self._place_marker()
        if row is None:
            self.nn_info.value = "neighbours are searched among the mapped images only"
            return
        self._find_neighbours(i, row)

    def _find_neighbours(self, index: int, row: int) -> None:
        layer, subset = self.feature_layer, ImageSet(self.data.raw(self.indices), labels=self.labels)
        k = min(self.k, len(self.indices) - 1)
        if k < 1:
            return
        self.nn_info.value = '<span class="t-busy">finding neighbours…</span>'

        def done(nn):
            with self.error.capture():
                self.neighbours = nn
                self._draw_neighbours(index, nn)

        def failed(err):
            self.error.show(err)
            self.nn_info.value = ""
        self.nn_executor.submit(lambda ticket: nearest_neighbours(self.insp, subset, [row], layer, k=k),
                                on_result=done, on_error=failed)

    def _draw_neighbours(self, index: int, nn) -> None:
        for view, rows in ((self.feature_nn, nn.feature_indices[0]), (self.pixel_nn, nn.pixel_indices[0])):
            pics = [self.thumbnail(int(self.indices[r]), 48) for r in rows]
            pic, layout = tile(pics, ncols=len(pics), pad=2)
            view.set_image(pic, layout)
        overlap = float(nn.overlap()[0])
        self.nn_info.value = (f"nearest to image {index} in <b>{html.escape(nn.layer)}</b> features (top) and "
                              f"in pixels (bottom); {overlap:.0%} shared")

    @guarded
    def _on_neighbour_click(self, change) -> None:
        view = change["owner"]
        i = view.tile_of(change["new"])
        if i is not None and self.neighbours is not None:
            rows = self.neighbours.feature_indices[0] if view is self.feature_nn else self.neighbours.pixel_indices[0]
            self.image_index = int(self.indices[int(rows[i])])

    @guarded
    def _show_gallery(self, change=None) -> None:
        chosen = self.selected
        if not chosen:
            self.gallery.set_image(np.full((4, 4, 3), 255, np.uint8))
            self.gallery_info.value = ""
            return
        shown = chosen[:64]
        pic, layout = tile([self.thumbnail(i, 40) for i in shown], ncols=min(len(shown), 8), pad=2)
        self.gallery.set_image(pic, layout)
        more = f" (first {len(shown)} shown)" if len(chosen) > len(shown) else ""
        self.gallery_info.value = f"{len(chosen)} images selected{more}"

    @guarded
    def _on_gallery_click(self, change) -> None:
        i = self.gallery.tile_of(change["new"])
        if i is not None and i < len(self.selected):
            self.image_index = int(self.selected[i])
