"""EmbeddingScatter: a 2-D map (PCA or live t-SNE) of a layer's codes or of pixels; hover for a thumbnail,
click for the image and its nearest neighbours, brush or lasso for a gallery of the points inside."""
from __future__ import annotations

import html
import pathlib
import threading
import warnings

import anywidget
import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets

from ..engine import LatestExecutor, Selection, Stop, as_imageset
from ..engine.errors import InputError
from ..methods.embedding import embed, embed_pixels
from ..methods.units import input_pictures
from ..render import resize, to_hwc_uint8, to_png
from ..render.heatmap import nice_ticks
from .base import View, dropdown, guarded, link_selection
from .embedding_details import EmbeddingDetails

try:  # WebGL scatter: a separate package (bqplot-gl); SVG dots are used without it
    from bqplot_gl import ScatterGL
except ImportError:  # pragma: no cover - depends on the environment
    ScatterGL = None

GL_MIN_POINTS = 5_000
PIXELS = "pixels"
# tab10: ten categorical colours that stay distinct for colour-blind readers better than a rainbow
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
SINGLE_COLOUR = "#1f77b4"
THUMB = 64


class BrushEventShim(anywidget.AnyWidget):
    """An invisible part that makes bqplot's rectangle brush select points (see brush_event_shim.js for why)."""

    _esm = pathlib.Path(__file__).parent / "brush_event_shim.js"


def class_colours(n: int) -> list[str]:
    """``n`` categorical colours (tab10, then hues spaced around the wheel)."""
    if n <= len(PALETTE):
        return PALETTE[:n]
    import colorsys
    return ["#%02x%02x%02x" % tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / n, 0.65, 0.85)) for i in range(n)]


class EmbeddingScatter(EmbeddingDetails, View):
    """A map of a data set where similar codes land close together (the lecture's "space of FC7 codes").

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        dataset: the images (anything :func:`ipynetviz.engine.as_imageset` accepts); its labels colour the map.
        labels: labels overriding the data set's (None and a data set without labels: one colour).
        layer: the layer whose codes are mapped, or ``"pixels"`` (default: the last layer before the output).
        method: ``"pca"`` or ``"tsne"``.
        selection: the shared :class:`ipynetviz.Selection` (default: a new one); ``image_index`` follows it.
        max_points: at most this many images are mapped (an evenly spaced subset of the data set).
        pool: how a conv layer's (C, H, W) codes become vectors: "avg" / "max" per channel, None to flatten.
        k: nearest neighbours shown for a clicked image.
        perplexity, seed: t-SNE settings (perplexity is lowered, with a note, for few points).
        callback_every: t-SNE iterations between the live frames.
        tsne_options: more :func:`ipynetviz.methods.embedding.embed_features` arguments for t-SNE
            (e.g. ``{"n_iter": 100, "early_exaggeration_iter": 100}`` for a quicker, rougher map).
        synchronous: compute in the caller's thread (scripts and tests) instead of a background worker.

    Traits: ``layer``, ``method``, ``image_index`` (data set index of the clicked image, or None), ``n_points``,
    ``selected`` (data set indices inside the brush / lasso), ``frames`` (live t-SNE frames shown so far).

    Example:
        >>> w = EmbeddingScatter(insp, (images, labels), layer="relu4")   # doctest: +SKIP
        >>> w.method = "tsne"; w.wait(); w.embedding.trustworthiness      # doctest: +SKIP
        0.99
    """

    PICTURES_FIRST = True  # a click sends every linked view's picture before the captions (base.pictures_first)

    layer = traitlets.Unicode()
    method = traitlets.Enum(("pca", "tsne"), default_value="pca")
    image_index = traitlets.Int(None, allow_none=True)
    n_points = traitlets.Int(0)
    selected = traitlets.List(traitlets.Int(), default_value=[])
    frames = traitlets.Int(0)

    def __init__(self, insp, dataset, labels=None, layer: str | None = None, method: str = "pca",
                 selection: Selection | None = None, max_points: int = GL_MIN_POINTS * 2, pool: str | None = "avg",
                 k: int = 6, perplexity: float = 30.0, seed: int = 0, callback_every: int = 25,
                 tsne_options: dict | None = None, synchronous: bool = False, **kw):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-embedding", **kw)
        self.insp = insp
        self.data = as_imageset(dataset)
        n = len(self.data)
        self.indices = np.unique(np.linspace(0, n - 1, min(n, int(max_points))).round().astype(np.int64))
        self.labels = self._labels_of(labels)
        self.pool, self.k, self.perplexity, self.seed = pool, int(k), float(perplexity), int(seed)
        self.callback_every = int(callback_every)
        self.tsne_options = dict(tsne_options or {})
        self.class_names = list(insp.class_names or self.data.class_names or [])
        model_layers = [name for name in insp.layers if name != insp.layers[-1]] or list(insp.layers)
        start = layer or (self.selection.layer if self.selection.layer in insp.layers else None) or model_layers[-1]
        if start != PIXELS:
            insp.module(start)  # a clear LayerNotFoundError before any widget is built
        self.feature_layer = start if start != PIXELS else model_layers[-1]  # the neighbours' feature space
        self.embedding = None
        self.coords: np.ndarray | None = None  # the layout drawn now (a live frame while t-SNE runs)
        self._cache: dict = {}
        self._stop = threading.Event()
        self._pictures: dict[int, np.ndarray] = {}
        self.neighbours = None
        self.nn_executor = LatestExecutor(synchronous=synchronous, name="ipynetviz-neighbours")
        self._build_controls(start, method)
        self._build_plot()
        self._build_details()
        self.body.children = [
            W.HBox([self.layer_picker, self.method_picker, self.tool_picker]),
            W.HBox([self.progress, self.cancel_button, self.summary]),
            W.HBox([W.VBox([self.figure, self.legend, self.notes]), self.details]), BrushEventShim()]
        self._wire(start, method)
        self._colour_points()
        self._recompute()

    # ------------------------------------------------------------ parts
    def _build_controls(self, start: str, method: str) -> None:
        """The space and method pickers, the click / brush / lasso tool, progress, cancel and the text lines."""
        self.layer_picker = dropdown([PIXELS, *self.insp.layers], start, "space", "t-embedding-layer")
        self.method_picker = W.ToggleButtons(options=[("PCA", "pca"), ("t-SNE", "tsne")], value=method,
                                             style={"button_width": "70px"})
        self.method_picker.add_class("t-embedding-method")
        self.tool_picker = W.ToggleButtons(options=[("click", "click"), ("brush", "brush"), ("lasso", "lasso")],
                                           value="click", style={"button_width": "60px"})
        self.tool_picker.add_class("t-embedding-tool")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress", layout=W.Layout(width="260px"))
        self.progress.add_class("t-embedding-progress")
        self.cancel_button = W.Button(description="cancel", icon="stop", layout=W.Layout(width="90px"),
                                      disabled=True)
        self.cancel_button.add_class("t-embedding-cancel")
        self.legend = W.HTML("")
        self.legend.add_class("t-embedding-legend")
        self.notes = W.HTML("")
        self.notes.add_class("t-embedding-notes")
        self.summary = W.HTML("")
        self.summary.add_class("t-embedding-summary")

    def _build_plot(self) -> None:
        """The scatter (WebGL past ``GL_MIN_POINTS`` points), the clicked image's ring, brush and lasso."""
        self.x_scale, self.y_scale = bq.LinearScale(), bq.LinearScale()
        self.colour_scale = bq.ColorScale(colors=PALETTE[:2], min=0, max=1)
        self.hover_image = W.Image(format="png", layout=W.Layout(width=f"{THUMB}px", height=f"{THUMB}px"))
        self.hover_image.add_class("t-embedding-tooltip")
        mark = ScatterGL if (ScatterGL is not None and len(self.indices) > GL_MIN_POINTS) else bq.Scatter
        self.scatter = mark(x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.y_scale},
                            default_size=24, stroke=None, tooltip=self.hover_image,
                            interactions={"hover": "tooltip"}, unselected_style={"opacity": 0.25},
                            selected_style={"opacity": 1.0})
        self.marker = bq.Scatter(x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.y_scale},
                                 marker="circle", default_size=220, colors=["black"], stroke="black",
                                 fill=False, stroke_width=2.5, enable_hover=False)
        self.brush = bq.interacts.BrushSelector(x_scale=self.x_scale, y_scale=self.y_scale, marks=[self.scatter],
                                                color="#888")
        self.lasso = bq.interacts.LassoSelector(x_scale=self.x_scale, y_scale=self.y_scale, marks=[self.scatter])
        # the axes say what the directions are: PC1 / PC2 with their share of the variance and a few compact tick
        # values; for t-SNE, whose axes carry no meaning, a sentence and no ticks. The margins leave the tick
        # values and the axis labels room apart (they overlapped at 30 px)
        self.x_axis = bq.Axis(scale=self.x_scale, label="", label_offset="34px", tick_format=".2~g")
        self.y_axis = bq.Axis(scale=self.y_scale, orientation="vertical", label="", label_offset="52px",
                              tick_format=".2~g")
        self.figure = bq.Figure(marks=[self.scatter, self.marker], axes=[self.x_axis, self.y_axis],
                                padding_x=0.05, padding_y=0.05,
                                fig_margin={"top": 10, "bottom": 45, "left": 70, "right": 10},
                                layout=W.Layout(width="520px", height="480px"), animation_duration=0)
        self.figure.add_class("t-embedding-plot")

    def _wire(self, start: str, method: str) -> None:
        """Link the pickers to the traits, the marks and pictures to their handlers, and the shared selection."""
        W.link((self.layer_picker, "value"), (self, "layer"))
        W.link((self.method_picker, "value"), (self, "method"))
        self.layer, self.method = start, method
        self.cancel_button.on_click(lambda _: self.cancel())
        self.tool_picker.observe(self._on_tool, names="value")
        self.scatter.on_hover(self._on_hover)
        self.scatter.on_element_click(self._on_click)
        self.scatter.observe(self._on_brush, names="selected")
        self.gallery.observe(self._on_gallery_click, names="click")
        for view in (self.feature_nn, self.pixel_nn):
            view.observe(self._on_neighbour_click, names="click")
        self.observe(self._recompute, names=["layer", "method"])
        self.observe(self._show_image, names="image_index")
        self.observe(self._show_gallery, names="selected")
        link_selection(self, ("image_index",))

    # ------------------------------------------------------------ data
    def _labels_of(self, labels):
        if labels is None:
            lab = self.data.labels
            return None if lab is None else np.asarray(lab, dtype=np.int64)[self.indices]
        lab = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(lab) != len(self.data):
            raise InputError(f"{len(self.data)} images but {len(lab)} labels; pass one label per image")
        return lab[self.indices]

    def picture(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 picture of data set image ``index`` at the model input's size (cached)."""
        if index not in self._pictures:
            self._pictures[index] = to_hwc_uint8(input_pictures(self.insp, self.data, [int(index)])[0])
        return self._pictures[index]

    def thumbnail(self, index: int, size: int = THUMB) -> np.ndarray:
        """The picture shown for image ``index`` on hover and on click."""
        return resize(self.picture(index), (size, size), smooth=True)

    def row_of(self, index: int) -> int | None:
        """Row of data set image ``index`` in the map (None when it is not mapped)."""
        rows = np.flatnonzero(self.indices == int(index))
        return int(rows[0]) if rows.size else None

    def name_of(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    # ------------------------------------------------------------ embedding
    def _recompute(self, change=None) -> None:
        key = (self.layer, self.method)
        if change is not None and change["name"] == "layer" and self.layer != PIXELS:
            self.feature_layer = self.layer
            self._claim_layer()
            if self.image_index is not None:
                self._show_image()  # neighbours in the new feature space
        if key in self._cache:
            self.executor.submit(lambda ticket: None)  # supersede a running t-SNE of another view
            self._finish(self._cache[key])
            return
        layer, method = self.layer, self.method
        self._stop.clear()
        self.frames = 0
        self.progress.value, self.progress.max = 0, 1
        self.cancel_button.disabled = method != "tsne"

        def job(ticket):
            kw = dict(indices=self.indices, labels=self.labels, seed=self.seed)
            if method == "tsne":
                kw.update(self.tsne_options)
                kw.update(perplexity=self.perplexity, callback=ticket.emit, callback_every=self.callback_every,
                          cancel=Stop(ticket, self._stop))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if layer == PIXELS:
                    emb = embed_pixels(self.data, method, **kw)
                else:
                    emb = embed(self.insp, self.data, layer, method, pool=self.pool, **kw)
            return emb, [str(w.message) for w in caught]

        self.submit(job, on_result=self._on_result, on_partial=self._on_frame,
                    busy=f"{'t-SNE' if method == 'tsne' else 'PCA'} of {layer} ({len(self.indices)} points)…")

    def cancel(self) -> None:
        """Stop a running t-SNE; the map keeps the last layout reached."""
        self._stop.set()

    def _on_frame(self, frame) -> None:
        self._draw(frame.coords)
        self._place_marker()
        self._label_axes("tsne")
        self.progress.max = max(1, frame.total_iterations)
        self.progress.value = min(frame.iteration, self.progress.max)
        start = " (the PCA start)" if frame.iteration == 0 else ""
        self.summary.value = (f"t-SNE of <b>{html.escape(self.layer)}</b>, running: iteration {frame.iteration} "
                              f"of {frame.total_iterations}{start}, {len(frame.coords)} points")
        self.frames += 1  # last: observers of ``frames`` see the whole frame drawn

    def _on_result(self, value) -> None:
        emb, notes = value
        if not emb.cancelled:
            self._cache[(emb.settings.get("layer", self.layer), emb.method)] = emb
        self.notes.value = "<br>".join(f"<i>note:</i> {html.escape(n)}" for n in notes)
        self._finish(emb)

    def _finish(self, emb) -> None:
        self.embedding = emb
        self._draw(emb.coords)
        self._label_axes(emb.method, emb.explained_variance_ratio)
        self.progress.value = self.progress.max if not emb.cancelled else self.progress.value
        self.cancel_button.disabled = True
        self.n_points = len(emb)
        self._draw_legend(emb)
        self._place_marker()
        t = "n/a" if emb.trustworthiness is None else f"{emb.trustworthiness:.3f}"
        what = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}.get(emb.method, emb.method)
        state = f", cancelled at iteration {emb.settings.get('iterations', '?')}" if emb.cancelled else ""
        self.summary.value = (f"{what} of <b>{html.escape(self.layer)}</b>: {len(emb)} points, "
                              f"trustworthiness {t}{state}")

    def _draw(self, coords: np.ndarray) -> None:
        """Draw a layout and fit the scales to it: live t-SNE frames grow from a tiny start to a wide map, and a
        scale that kept the first frame's extent squashed them into a corner."""
        coords = np.asarray(coords, dtype=np.float64)
        self.coords = coords
        if len(coords):
            lo, hi = coords.min(axis=0), coords.max(axis=0)
            half = np.maximum((hi - lo) / 2, 1e-9)
            mid = (hi + lo) / 2
            for scale, axis, m, h in ((self.x_scale, self.x_axis, mid[0], half[0]),
                                      (self.y_scale, self.y_axis, mid[1], half[1])):
                with scale.hold_sync():
                    scale.min, scale.max = float(m - h), float(m + h)
                if self.method == "pca":  # t-SNE hides its ticks: nothing to send with each live frame
                    # round values strictly inside the extent (bqplot's own fell at odd values like 0.0061)
                    ticks = [t for t in nice_ticks(m - h, m + h, 5) if m - h + 0.05 * h < t < m + h - 0.05 * h]
                    axis.tick_values = np.asarray(ticks, dtype=np.float64)
        with self.scatter.hold_sync():
            self.scatter.x, self.scatter.y = coords[:, 0], coords[:, 1]

    def _label_axes(self, method: str, ratio=None) -> None:
        if method == "pca" and ratio is not None and len(ratio) >= 2:
            x, y = (f"PC{i + 1} ({100 * float(ratio[i]):.1f}% of the variance)" for i in (0, 1))
        elif method == "pca":
            x, y = "PC1", "PC2"
        else:
            x, y = "t-SNE axes carry no meaning: only neighbourhoods do", ""
        meaningless = method != "pca"  # no tick values or grid to read off a t-SNE map
        for axis, label in ((self.x_axis, x), (self.y_axis, y)):
            with axis.hold_sync():
                axis.label = label
                axis.tick_style = {"visibility": "hidden"} if meaningless else {}
                axis.grid_lines = "none" if meaningless else "solid"

    def _colour_points(self) -> None:
        """One colour per class (labels given), else one colour for all."""
        classes, codes = (np.zeros(0), None) if self.labels is None else np.unique(self.labels, return_inverse=True)
        with self.scatter.hold_sync():
            if len(classes) > 1:
                self.colour_scale.colors = class_colours(len(classes))
                self.colour_scale.min, self.colour_scale.max = 0.0, float(len(classes) - 1)
                self.scatter.scales = {**self.scatter.scales, "color": self.colour_scale}
                self.scatter.color = codes.astype(np.float64)
            else:
                self.scatter.color = None
                self.scatter.colors = [SINGLE_COLOUR]

    def _draw_legend(self, emb) -> None:
        if not emb.has_labels:
            self.legend.value = f'<span style="color:{SINGLE_COLOUR}">●</span> all images (no labels)'
            return
        classes, counts = np.unique(emb.labels, return_counts=True)
        items = [f'<span class="t-embedding-legend-item" style="margin-right:10px;white-space:nowrap">'
                 f'<span style="color:{c}">●</span> {html.escape(self.name_of(int(k)))} ({m})</span>'
                 for c, k, m in zip(class_colours(len(classes)), classes, counts)]
        self.legend.value = '<div style="max-width:520px">' + " ".join(items) + "</div>"

    @property
    def colours(self) -> list[str]:
        """The colour drawn for each point, in map order (what the browser shows)."""
        if self.scatter.color is None or len(self.scatter.color) == 0:
            return [self.scatter.colors[0]] * self.n_points
        palette = self.colour_scale.colors
        return [palette[int(round(c))] for c in self.scatter.color]

    # ------------------------------------------------------------ interaction
    def image_count(self) -> int:
        return len(self.data)

    @guarded
    def _on_hover(self, mark, event) -> None:
        point = event.get("point") or event.get("data") or {}
        row = point.get("index")
        if row is not None and 0 <= int(row) < len(self.indices):
            self.hover_image.value = to_png(self.thumbnail(int(self.indices[int(row)])))

    @guarded
    def _on_click(self, mark, event) -> None:
        row = (event.get("data") or {}).get("index")
        if row is not None:
            self.click_point(int(row))

    def click_point(self, row: int) -> None:
        """What a click on the map's point ``row`` does (for scripts and tests): select its image."""
        self.image_index = int(self.indices[row])

    def _on_tool(self, change) -> None:
        self.figure.interaction = {"click": None, "brush": self.brush, "lasso": self.lasso}[change["new"]]

    @guarded
    def _on_brush(self, change) -> None:
        rows = [] if change["new"] is None else [int(r) for r in change["new"]]
        self.selected = [int(self.indices[r]) for r in rows if 0 <= r < len(self.indices)]

    def select_box(self, x0: float, x1: float, y0: float, y1: float) -> None:
        """What a brush over [x0, x1] x [y0, y1] in map coordinates does (for scripts and tests)."""
        c = self.embedding.coords
        inside = (c[:, 0] >= min(x0, x1)) & (c[:, 0] <= max(x0, x1)) & (c[:, 1] >= min(y0, y1)) & \
            (c[:, 1] <= max(y0, y1))
        self.scatter.selected = np.flatnonzero(inside).tolist()

    def _place_marker(self) -> None:
        """Ring the selected image's point where it is drawn now (a live t-SNE frame moves it)."""
        coords = self.coords
        row = None if self.image_index is None or coords is None else self.row_of(self.image_index)
        with self.marker.hold_sync():
            if row is None or row >= len(coords):
                self.marker.x, self.marker.y = np.zeros(0), np.zeros(0)
            else:
                self.marker.x = np.array([coords[row, 0]], dtype=np.float64)
                self.marker.y = np.array([coords[row, 1]], dtype=np.float64)

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until the map and the neighbours are computed (scripts and tests)."""
        return self.executor.wait_idle(timeout) and self.nn_executor.wait_idle(timeout)
