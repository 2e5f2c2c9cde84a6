"""OcclusionExplorer: slide a grey window over an image and watch the class score fall (Zeiler & Fergus 2014).

Sliders set the window and its stride, a menu the fill and the class; the heat map over the image follows
them live (a coarse map first), and clicking a cell shows that occluded image with its top classes.
"""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import torch
import traitlets

from ..engine import Class, Selection, as_imageset
from ..methods.attribution import occlusion
from ..methods.units import input_pictures
from ..render import overlay, to_hwc_uint8
from .base import ClickImage, ColorBar, InputSlider, View, dropdown, guarded, hold_models, link_selection

FILL_CHOICES = [("zero", "zero"), ("image mean", "mean"), ("blurred", "blur"), ("grey", (0.5, 0.5, 0.5))]
SHOWN = 256  # display size of the heat map and the occluded image, in screen pixels


class OcclusionExplorer(View):
    """Occlusion heat maps that follow the sliders; click a cell to see that occluded image and its top classes.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        images: the images to explore (anything :func:`ipynetviz.engine.as_imageset` accepts).
        window, stride: starting window side and stride in pixels.
        fill: "zero", "mean", "blur" or a colour (see :func:`ipynetviz.methods.attribution.occlusion.fill_values`).
        target: class index to explain, or None for each image's predicted class.
        selection: the shared :class:`ipynetviz.Selection` (default: a new one); shares ``image_index`` and the
            target class.
        progressive: show a coarse map (twice the stride) first.
        batch_size: occluded images per forward pass.
        max_thumbs: images shown as clickable thumbnails.
        synchronous: compute in the caller's thread (scripts and tests) instead of a background worker.

    Traits: ``image_index``, ``window``, ``stride``, ``fill``, ``target`` (None: predicted), ``cell`` ((gy, gx) of
    the clicked window or None), ``shown`` (the settings of the heat map on screen and whether it is final).
    """

    PICTURES_FIRST = True  # a click sends every linked view's picture before the captions (base.pictures_first)

    image_index = traitlets.Int(0)
    window = traitlets.Int(16)
    stride = traitlets.Int(8)
    fill = traitlets.Any("zero")
    target = traitlets.Int(None, allow_none=True)
    cell = traitlets.Tuple(None, allow_none=True)
    shown = traitlets.Dict({})

    def __init__(self, insp, images, window: int = 16, stride: int = 8, fill="zero", target: int | None = None,
                 selection: Selection | None = None, progressive: bool = True, batch_size: int | None = None,
                 max_thumbs: int = 32, synchronous: bool = False, **kw):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-occlusion", **kw)
        self.insp = insp
        self.images = as_imageset(images)
        self.progressive = progressive
        self.batch_size = batch_size
        self.result = None
        self._on_screen = None  # the image whose picture or map the heat-map view shows
        pictures = self._build_thumbs(self.images, max_thumbs, 40, "t-occlusion-thumbs")
        size = int(min(pictures.shape[-2:]))
        self.image_size = tuple(int(s) for s in pictures.shape[-2:])
        names = insp.class_names or [str(i) for i in range(insp.num_classes or 0)]
        self.class_names = names
        self.window_slider = InputSlider(value=min(window, size), min=1, max=size, description="window",
                                         continuous_update=True)
        self.window_slider.add_class("t-occlusion-window")
        self.stride_slider = InputSlider(value=stride, min=1, max=size, description="stride", continuous_update=True)
        self.stride_slider.add_class("t-occlusion-stride")
        fills = list(FILL_CHOICES)
        if not any(v == fill for _, v in fills):
            fills.append((str(fill), fill))
        self.fill_picker = dropdown(fills, fill, "fill", "t-occlusion-fill")
        self.target_picker = dropdown([("predicted", -1)] + [(f"{i}: {c}", i) for i, c in enumerate(names)],
                                      -1 if target is None else int(target), "class", "t-occlusion-target")
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="160px"))
        self.progress.add_class("t-occlusion-progress")
        self.heatmap = ClickImage(css_class="t-occlusion-heatmap")
        self.colorbar = ColorBar(width=SHOWN, css_class="t-occlusion-colorbar")
        self.occluded = ClickImage(css_class="t-occlusion-occluded")
        self.probs = W.HTML("")
        self.probs.add_class("t-occlusion-probs")
        self.info = W.HTML("")
        self.info.add_class("t-occlusion-info")
        self.body.children = [
            self.thumbs,
            W.HBox([self.window_slider, self.stride_slider]),
            W.HBox([self.fill_picker, self.target_picker, self.progress]),
            W.HBox([W.VBox([W.HTML("<b>occlusion heat map</b> (click a cell)"), self.heatmap, self.colorbar]),
                    W.VBox([W.HTML("<b>occluded image</b>"), self.occluded, self.probs])]),
            self.info]

        W.link((self.window_slider, "value"), (self, "window"))
        W.link((self.stride_slider, "value"), (self, "stride"))
        W.link((self.fill_picker, "value"), (self, "fill"))
        W.link((self.target_picker, "value"), (self, "target"),
               transform=(lambda v: None if v == -1 else v, lambda v: -1 if v is None else v))
        self.window = self.window_slider.value
        self.stride = stride
        self.fill = fill
        self.target = target
        self.heatmap.observe(self._on_heatmap_click, names="click")
        self.observe(self._refresh, names=["image_index", "window", "stride", "fill", "target"])
        self.observe(self._show_cell, names="cell")
        link_selection(self, ("image_index", "target"))
        self.accept_image_index(self.selection.image_index)
        if self.selection.target is not None:
            self.accept_target(self.selection.target)
        self._refresh()

    # ------------------------------------------------------------ selection in
    def accept_target(self, target: int) -> None:
        if 0 <= target < len(self.class_names):
            self.target = int(target)

    # ------------------------------------------------------------ work
    def settings(self) -> dict:
        """The settings a heat map must have been computed with to be shown now."""
        fill = self.fill if isinstance(self.fill, str) else list(self.fill)
        return {"image_index": self.image_index, "window": self.window, "stride": self.stride, "fill": fill,
                "target": self.target}

    @guarded
    def _refresh(self, change=None) -> None:
        want = self.settings()
        index, window, stride, fill, target = (self.image_index, self.window, self.stride, self.fill, self.target)
        self._mark_thumb(index)
        self.cell = None
        self.heatmap.box = []
        # No flash: a new window, stride, fill or class keeps the last map on screen until the new coarse map
        # replaces it (the status line says it is working; ``shown`` is empty meanwhile). Only a new image shows
        # that image at once: the old image's map says nothing about it.
        if self._on_screen != index:
            self._on_screen = index
            picture = to_hwc_uint8(input_pictures(self.insp, self.images, [index])[0])
            self.heatmap.scale = SHOWN / max(picture.shape[:2])
            self.heatmap.set_image(picture)
        self.shown = {}
        self.progress.value = 0

        def job(ticket):
            raw = self.images.raw([index])
            with hold_models(self.insp):
                ticket.check()
                return occlusion(
                    self.insp, raw, target=None if target is None else Class(target), window=window,
                    stride=stride, fill=fill, batch_size=self.batch_size, progressive=self.progressive,
                    callback=lambda r: None if r.complete else ticket.emit(r), cancel=ticket,
                    progress=lambda done, total: ticket.emit(("progress", done, total)))
        self.submit(job, on_result=lambda r: self._show(r, want), on_partial=lambda v: self._partial(v, want),
                    busy=f"occluding image {index}: window {window}, stride {stride}")

    def _partial(self, value, want: dict) -> None:
        if isinstance(value, tuple):
            _, done, total = value
            self.progress.max, self.progress.value = max(1, total), done
            return
        self._show(value, want)

    def _show(self, result, want: dict) -> None:
        if want != self.settings():  # settings moved on since this was asked for: it is stale
            return
        self.result = result
        heat = result.attribution()[0]
        # diverging around zero: red where hiding the pixel lowers the class score, blue where it raises it
        self.heatmap.set_image(overlay(result.images[0], heat, alpha=0.55, cmap="rdbu", mode="symmetric"))
        m = float(np.abs(heat).max())
        k = result.target_classes[0]
        self.colorbar.show("rdbu", -m, m, f"drop in the {self._name(k)} score when a window hides the pixel "
                                          f"(red: the class needs it)")
        self.shown = dict(want, complete=bool(result.complete), grid=list(result.grid_shape),
                          stride_used=list(result.stride))
        if result.complete:
            self.progress.value = self.progress.max
        k = result.target_classes[0]
        name = self.class_names[k] if k < len(self.class_names) else str(k)
        self.info.value = (f"image {want['image_index']}, class <b>{html.escape(name)}</b> "
                           f"({'predicted' if want['target'] is None else 'chosen'}): score "
                           f"{float(result.baseline_score[0]):.3f}, p = {float(result.baseline_probability[0]):.3f}; "
                           f"{result.grid_shape[0]}×{result.grid_shape[1]} windows"
                           + ("" if result.complete else " (coarse first pass)")
                           + ("" if not result.incremental else ", incremental inference")
                           + self._fill_note(result))
        if self.cell is not None:
            self._show_cell()

    # ------------------------------------------------------------ clicks
    @guarded
    def _on_heatmap_click(self, change) -> None:
        if not change["new"] or self.result is None or not self.shown:
            return
        self.cell = self.result.cell_at(change["new"]["y"], change["new"]["x"])

    @guarded
    def _show_cell(self, change=None) -> None:
        if self.cell is None or self.result is None:
            self.occluded.set_image(np.full((8, 8, 3), 255, np.uint8))
            self.probs.value = ""
            return
        gy, gx = self.cell
        gh, gw = self.result.grid_shape
        if not (0 <= gy < gh and 0 <= gx < gw):
            return
        y0, y1, x0, x1 = self.result.box(gy, gx)
        self.heatmap.box = [y0, x0, y1, x1]
        x = self.result.occluded(0, gy, gx)
        with hold_models(self.insp):
            probs, _ = self.insp.predict(x.to(self.insp.device))
        picture = self.insp.pictures(x, channels_last=True)[0]
        self.occluded.scale = SHOWN / max(picture.shape[:2])
        self.occluded.set_image(picture)
        top = torch.topk(probs[0].cpu(), min(5, probs.shape[1]))
        k = self.result.target_classes[0]
        bold = ' style="font-weight:bold"'
        rows = "".join(
            f"<tr{bold if int(i) == k else ''}><td>{html.escape(self._name(int(i)))}</td>"
            f"<td style='text-align:right'>{float(p):.3f}</td></tr>" for p, i in zip(top.values, top.indices))
        drop = float(self.result.baseline_score[0] - self.result.scores[0, gy, gx])
        self.probs.value = (f"<div>window ({gy}, {gx}): rows {y0}-{y1}, columns {x0}-{x1}; "
                            f"{html.escape(self._name(k))} score drops by {drop:.3f}</div>"
                            f"<table class='t-occlusion-top'>{rows}</table>")

    def _fill_note(self, result) -> str:
        """What the occluding window looks like, in pixels: "zero" is zero in the model's normalised input, which
        is a grey-brown square (the data set's mean colour) on screen, not black."""
        if isinstance(self.fill, str) and self.fill != "zero":
            return f"; fill: {html.escape(self.fill)} (taken from the image)"
        r, g, b = (int(v) for v in self.insp.pictures(result.fill_inputs[:1, :, :1, :1], channels_last=True)[0, 0, 0])
        what = "zero in the normalised input, i.e. the mean colour" if self.fill == "zero" else "the chosen colour"
        return (f'; fill <span class="t-occlusion-fill-colour" style="display:inline-block;width:10px;height:10px;'
                f'background:rgb({r},{g},{b});border:1px solid #999"></span> rgb({r}, {g}, {b}) ({what})')

    def _name(self, k: int) -> str:
        return self.class_names[k] if k < len(self.class_names) else str(k)

    def click_cell(self, gy: int, gx: int) -> None:
        """Click the centre of window (gy, gx) on the heat map (what a browser click does)."""
        y0, y1, x0, x1 = self.result.box(gy, gx)
        self.heatmap.simulate_click((x0 + x1) / 2, (y0 + y1) / 2)
