"""CorrespondenceMatrix: do two networks learn the same units? (Li, Yosinski, Clune, Lipson & Hopcroft 2016)

The correlation of every unit of a layer of network A with every unit of a layer of network B, drawn as one
picture (one pixel per cell, zoomed by the browser: a 128 x 128 matrix is a 128 x 128 PNG and a click costs no
re-styling of cells) with the units reordered by the matching so the diagonal holds the matched pairs. A click
on a cell shows the two units side by side: filter, top patches and activation map on the shared selected
image. Below: the matched correlations sorted (Li et al.'s curves) and the layer x layer CKA / SVCCA grid.
"""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import traitlets

from ..engine import Selection, as_imageset
from ..engine.errors import InputError
from ..methods.correspondence import compare, layer_grid
from ..render.heatmap import matrix_picture
from .base import (ClickImage, PatchSource, View, conv_for, dropdown, guarded, hold_models, link_selection,
                   spatial_layers)
from .correspondence_parts import (MODES, SCOPES, MatrixView, UnitPanel, activation_layers, arrange, first_images,
                                   grid_layers_of, unit_layers)
from .correspondence_plots import LayerGridPlot, MatchCurve, alignment_note, describe_cell, legend_html, matching_of

__all__ = ["CorrespondenceMatrix", "MatrixView", "arrange"]


class CorrespondenceMatrix(View):
    """Compare the units of two networks: correlation heatmap, matched pairs, and the units behind a cell.

    Args:
        insp_a, insp_b: inspectors of the two networks (the same one compares two layers of one network).
        dataset: images both networks see (anything :func:`ipynetviz.engine.as_imageset` accepts);
            ``image_index`` indexes its first ``max_images``.
        layer_a, layer_b: the compared layers (default: the first conv's activation layer, e.g. ``relu1``).
        selection: the shared :class:`ipynetviz.Selection`; ``image_index`` follows it both ways, a click
            puts net A's unit in ``selection.layer``/``channel``, and a selected channel of ``layer_a``'s
            convolution moves the cell to that unit's match.
        max_images: images used for the correlations and the top patches.
        mode: "bipartite" (one-to-one) or "semi" (each A unit's best B unit) matching orders the matrix.
        scope: "between" (A x B), "within_a" (A x A) or "within_b" (B x B).
        k: top patches per unit (0: none).
        grid: compute the layer x layer CKA / SVCCA grid (one extra pass over ``grid_images`` images).
        grid_layers: (layers of A, layers of B) for the grid (default: each conv's activation, at most 6).
        grid_images: images for the grid.
        size: heatmap side in screen pixels.
        synchronous: compute in the caller's thread (scripts, tests) instead of a background worker.
        examples: a dataset-examples folder saved by ``ipynetviz.methods.scan`` with network A: the layer pairs
            it holds moments for (and A's top patches) open instantly, computed over the whole scanned data set.

    Traits: ``layer_a``, ``layer_b``, ``mode``, ``scope``, ``cell`` ((row unit, column unit) of the shown
    matrix: (A unit, B unit) between nets, two A or two B units within), ``cell_corr`` (None for a dead
    unit), ``image_index``, ``grid_measure`` ("cka" or "svcca").

    Example:
        >>> w = CorrespondenceMatrix(zoo.load("shapes-cnn", seed=0), zoo.load("shapes-cnn", seed=1),
        ...                          zoo.shapes(500, split="test")[0])          # doctest: +SKIP
        >>> w.wait(); w.click_cell(0, 0)                                        # doctest: +SKIP
        >>> w.cell_corr == w.result.bipartite_.sorted_corr()[0]                 # doctest: +SKIP
        True
    """

    PICTURES_FIRST = True  # a click sends every linked view's picture before the captions (base.pictures_first)

    layer_a = traitlets.Unicode()
    layer_b = traitlets.Unicode()
    mode = traitlets.Enum(MODES, default_value="bipartite")
    scope = traitlets.Enum(SCOPES, default_value="between")
    cell = traitlets.Tuple(None, allow_none=True)
    cell_corr = traitlets.Float(None, allow_none=True)
    image_index = traitlets.Int(0)
    grid_measure = traitlets.Enum(("cka", "svcca"), default_value="cka")

    def __init__(self, insp_a, insp_b, dataset, layer_a: str | None = None, layer_b: str | None = None,
                 selection: Selection | None = None, max_images: int | None = 500, mode: str = "bipartite",
                 scope: str = "between", k: int = 9, grid: bool = True, grid_layers=None, grid_images: int = 200,
                 size: int = 384, synchronous: bool = False, examples=None, **kw):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-correspondence", **kw)
        self.insp = {"a": insp_a, "b": insp_b}
        self.data = first_images(as_imageset(dataset), max_images)
        self.k, self.size, self.grid_images = int(k), int(size), int(grid_images)
        self.grid_layers = (grid_layers_of(insp_a, insp_b) if grid and grid_layers is None
                            else (tuple(grid_layers[0]), tuple(grid_layers[1])) if grid else None)
        self.layers = {s: unit_layers(self.insp[s]) or spatial_layers(self.insp[s]) for s in "ab"}
        if not self.layers["a"] or not self.layers["b"]:
            raise InputError("a network has no layer with a (C, H, W) output: nothing to correlate unit by unit")
        for s, extra in zip("ab", self.grid_layers or ((), ())):
            self.layers[s] += [n for n in extra if n not in self.layers[s]]
        start_a = self._check_layer("a", layer_a or (self.selection.layer if self.selection.layer in
                                                     self.layers["a"] else None) or self._default_layer("a"))
        start_b = self._check_layer("b", layer_b or (start_a if start_a in self.layers["b"] else
                                                     self._default_layer("b")))
        self.patches = {s: PatchSource(self.insp[s], self.data, max(self.k, 1), examples=examples if s == "a" else None)
                        for s in "ab"}
        self.examples = self.patches["a"].examples
        self.results: dict[tuple[str, str], object] = {}  # (layer_a, layer_b) -> CorrespondenceResult
        self.top: dict[tuple[str, str], object] = {}  # (side, layer) -> TopPatchesResult
        self.maps: dict[tuple[str, str, int], np.ndarray] = {}  # (side, layer, image) -> (C, h, w)
        self.result = None  # the CorrespondenceResult shown
        self.shown: MatrixView | None = None
        self.grid_result = None
        self._following = False
        self._setting_layers = False
        self._build_controls(start_a, start_b, mode, scope)
        self._build_plots()
        self.body.children = [
            W.HBox([self.picker_a, self.picker_b, self.mode_picker, self.scope_picker, self.index_picker]),
            W.HBox([W.VBox([W.HBox([self.heatmap, self.legend]), self.info],
                           layout=W.Layout(width=f"{self.size + 70}px", margin="0 12px 0 0")),
                    W.VBox([self.cell_info, W.HBox([self.panels["row"], self.panels["col"]])])]),
            W.HBox([self.curve.figure, self.grid_plot.box])]
        self._wire(start_a, start_b, mode, scope)
        self._request()

    # ------------------------------------------------------------ parts
    def _build_controls(self, start_a: str, start_b: str, mode: str, scope: str) -> None:
        """The two layer pickers, the matching and scope toggles and the image index."""
        narrow = {"layout": W.Layout(width="150px")}
        self.picker_a = dropdown(self.layers["a"], start_a, "A", "t-correspondence-layer-a", **narrow)
        self.picker_b = dropdown(self.layers["b"], start_b, "B", "t-correspondence-layer-b", **narrow)
        self.mode_picker = W.ToggleButtons(options=[("bipartite", "bipartite"), ("semi", "semi")], value=mode,
                                           style={"button_width": "76px"})
        self.mode_picker.add_class("t-correspondence-mode")
        self.scope_picker = W.ToggleButtons(options=[("A × B", "between"), ("A × A", "within_a"),
                                                     ("B × B", "within_b")], value=scope,
                                            style={"button_width": "60px"})
        self.scope_picker.add_class("t-correspondence-scope")
        self.index_picker = W.BoundedIntText(value=0, min=0, max=len(self.data) - 1, description="image",
                                             layout=W.Layout(width="140px"))
        self.index_picker.add_class("t-correspondence-image")

    def _build_plots(self) -> None:
        """The heatmap with its colour bar, the two unit panels, the matched-correlation curve, the layer grid."""
        self.heatmap = ClickImage(css_class="t-correspondence-heatmap")
        self.legend = W.HTML(legend_html(min(self.size, 256)))
        self.legend.add_class("t-correspondence-colorbar")
        self.info = W.HTML("")
        self.info.add_class("t-correspondence-info")
        self.cell_info = W.HTML("click a cell")
        self.cell_info.add_class("t-correspondence-cell-info")
        self.panels = {"row": UnitPanel("row"), "col": UnitPanel("col")}
        self.curve = MatchCurve()
        self.grid_plot = LayerGridPlot(self.grid_layers, self._on_grid_pick, self.error.show)

    def _wire(self, start_a: str, start_b: str, mode: str, scope: str) -> None:
        """Set the starting traits, link the controls to them, route clicks, and follow the shared selection."""
        W.link((self.grid_plot.picker, "value"), (self, "grid_measure"))
        self.set_trait("layer_a", start_a)
        self.set_trait("layer_b", start_b)
        self.set_trait("mode", mode)
        self.set_trait("scope", scope)
        for name, picker in (("layer_a", self.picker_a), ("layer_b", self.picker_b), ("mode", self.mode_picker),
                             ("scope", self.scope_picker), ("image_index", self.index_picker)):
            W.link((picker, "value"), (self, name))
        self.heatmap.observe(self._on_heatmap_click, names="click")
        for panel in self.panels.values():
            panel.patches.observe(lambda ch, p=panel: self._on_patch(ch, p), names="click")
        self.observe(self._on_layers, names=["layer_a", "layer_b"])
        self.observe(self._on_arrangement, names=["mode", "scope"])
        self.observe(self._on_cell, names="cell")
        self.observe(self._on_image, names="image_index")
        self.observe(self._draw_grid, names="grid_measure")
        link_selection(self, ("image_index",))
        self.selection.observe(self._follow_channel, names="channel")
        self.accept_image_index(self.selection.image_index)

    # ------------------------------------------------------------ layers
    def _default_layer(self, side: str) -> str:
        acts = activation_layers(self.insp[side])
        return acts[0] if acts else self.layers[side][0]

    def _check_layer(self, side: str, layer: str) -> str:
        self.insp[side].module(layer)  # LayerNotFoundError with close matches
        if layer not in self.layers[side]:
            raise InputError(f"layer {layer!r} of net {side.upper()} has no (C, H, W) units to correlate; "
                             f"pick one of {self.layers[side][:10]}")
        return layer

    def image_count(self) -> int:
        return len(self.data)

    @traitlets.validate("layer_a", "layer_b")
    def _valid_layer(self, proposal):
        return self._check_layer(proposal["trait"].name[-1], proposal["value"])

    @traitlets.validate("cell")
    def _valid_cell(self, proposal):
        cell = proposal["value"]
        if cell is None:
            return None
        if len(cell) != 2:
            raise traitlets.TraitError(f"cell must be (row unit, column unit), got {cell!r}")
        cell = (int(cell[0]), int(cell[1]))
        v = self.shown
        if v is not None and not (cell[0] in v.rows and cell[1] in v.cols):
            raise traitlets.TraitError(f"cell {cell} is outside the shown matrix: units 0-{len(v.rows) - 1} "
                                       f"of net {v.row_side.upper()} by 0-{len(v.cols) - 1} of net "
                                       f"{v.col_side.upper()}")
        return cell

    # ------------------------------------------------------------ work (one worker: the models are never run
    # from two threads at once, and each piece is kept, so a superseded request's finished work is reused)
    def _request(self) -> None:
        la, lb, idx = self.layer_a, self.layer_b, self.image_index
        if self.result is not None and (self.result.layer_a, self.result.layer_b) != (la, lb):
            self.info.value = f"<i>computing {html.escape(la)} × {html.escape(lb)}…</i>"

        def job(ticket):
            with hold_models(*self.insp.values()):
                for side, layer in (("a", la), ("b", lb)):
                    self._map(side, layer, idx)
            ticket.emit(("maps",))
            ticket.check()
            with hold_models(*self.insp.values()):
                corr = self._correspondence(la, lb)
            ticket.emit(("corr", corr))
            for side, layer in (("a", la), ("b", lb)):
                if self.k > 0 and (side, layer) not in self.top:
                    ticket.check()
                    with hold_models(*self.insp.values()):
                        self.top[side, layer] = self.patches[side].get(layer, progress=lambda d, t: ticket.check())
                    ticket.emit(("patches",))
            if self.grid_layers and len(self.grid_layers[0]) * len(self.grid_layers[1]) > 1 and \
                    self.grid_result is None:
                ticket.check()
                with hold_models(*self.insp.values()):
                    self.grid_result = layer_grid(self.insp["a"], self.insp["b"], first_images(
                        self.data, self.grid_images), *self.grid_layers)
            return ("grid",)
        self.submit(job, on_result=self._on_piece, on_partial=self._on_piece,
                    busy=f"{la} × {lb} over {len(self.data)} images…")

    def _map(self, side: str, layer: str, index: int) -> np.ndarray:
        key = (side, layer, int(index))
        if key not in self.maps:
            if len(self.maps) > 64:
                self.maps.clear()
            insp = self.insp[side]
            self.maps[key] = insp.activations(self.data.raw([index]), [layer])[layer][0].float().numpy()
        return self.maps[key]

    def _correspondence(self, la: str, lb: str):
        if (la, lb) not in self.results and self.examples is not None and (la, lb) in self.examples.pairs:
            self.results[la, lb] = self.examples.correspondence(la, lb)  # saved moments: no pass over the data
        if (la, lb) not in self.results:
            sa, sb = self.insp["a"].layer_shape(la), self.insp["b"].layer_shape(lb)
            align = "pool" if sa[1:] != sb[1:] else None  # maps of different sizes: pool the larger
            self.results[la, lb] = compare(self.insp["a"], self.insp["b"], self.data, la, lb, align=align)
        return self.results[la, lb]

    def _on_piece(self, piece) -> None:
        kind = piece[0]
        if kind == "corr":
            self._show(piece[1])
        elif kind == "grid":
            self._draw_grid()
        else:
            self._draw_detail()

    # ------------------------------------------------------------ the matrix
    def _show(self, corr) -> None:
        old = self.result
        self.result = corr
        keep = self.cell if old is not None and (old.layer_a, old.layer_b) == (corr.layer_a, corr.layer_b) else None
        self._arrange(keep_units=keep)
        self.curve.draw(corr, self.mode)
        self.curve.mark(corr, self.mode, self.cell if self.scope == "between" else None)
        s = corr.summary()
        sv = "undefined" if corr.svcca_ is None else f"{corr.svcca_.mean:.3f}"
        notes = [*corr.notes, *alignment_note(self.insp["a"], self.insp["b"], corr)]
        self.info.value = (
            f"<b>{html.escape(corr.layer_a)}</b> of A ({s['units_a']} units) × <b>{html.escape(corr.layer_b)}</b>"
            f" of B ({s['units_b']}) over {corr.n_images} images, {corr.n_samples:,} samples<br>"
            f"bipartite: median r = {s['bipartite_median']:.3f}, {s['bipartite_above_0.9']} pairs above 0.9; "
            f"semi: mean r = {s['semi_mean']:.3f}<br>dead units: A {s['dead_a']}, B {s['dead_b']}; "
            f"CKA {corr.cka_:.3f}, SVCCA {sv}" + "".join(f"<br><i>{html.escape(n)}</i>" for n in notes))
        self.grid_plot.select(corr.layer_a, corr.layer_b)

    def _arrange(self, keep_units=None, keep_position=None) -> None:
        v = arrange(self.result, self.mode, self.scope)
        self.shown = v
        self.heatmap.scale = max(1.0, self.size / max(v.matrix.shape))
        self.heatmap.set_image(matrix_picture(v.matrix))
        if keep_units is not None and keep_units[0] in v.rows and keep_units[1] in v.cols:
            cell = keep_units
        else:
            i, j = keep_position or (0, 0)
            i, j = min(i, len(v.rows) - 1), min(j, len(v.cols) - 1)
            cell = (int(v.rows[i]), int(v.cols[j]))
        if cell == self.cell:
            self._on_cell()
        else:
            self._following = True  # a redraw is not a user's choice: leave the selection alone
            try:
                self.cell = cell
            finally:
                self._following = False

    @guarded
    def _on_arrangement(self, change) -> None:
        if self.result is None:
            return
        if change["name"] == "mode":  # the same units, elsewhere
            self._arrange(keep_units=self.cell)
        else:  # other nets' units: keep the place (the diagonal stays the diagonal)
            self._arrange(keep_position=None if self.cell is None else self.shown.position(*self.cell))
        self.curve.draw(self.result, self.mode)
        self.curve.mark(self.result, self.mode, self.cell if self.scope == "between" else None)

    @guarded
    def _on_layers(self, change) -> None:
        if not self._setting_layers:
            self._request()

    def set_layers(self, layer_a: str, layer_b: str) -> None:
        """Compare another pair of layers (one request, not one per layer)."""
        self._setting_layers = True
        try:
            self.layer_a, self.layer_b = layer_a, layer_b
        finally:
            self._setting_layers = False
        self._request()

    @guarded
    def _on_image(self, change) -> None:
        self._request()

    # ------------------------------------------------------------ the selected cell
    @guarded
    def _on_heatmap_click(self, change) -> None:
        click, v = change["new"], self.shown
        if not click or v is None:
            return
        i, j = int(click["y"]), int(click["x"])
        if 0 <= i < len(v.rows) and 0 <= j < len(v.cols):
            self.cell = (int(v.rows[i]), int(v.cols[j]))

    def click_cell(self, i: int, j: int) -> None:
        """Click the displayed cell at row ``i``, column ``j`` (what a browser click does; for tests)."""
        self.heatmap.simulate_click(j + 0.5, i + 0.5)

    @guarded
    def _on_cell(self, change=None) -> None:
        v, cell = self.shown, self.cell
        if v is None or cell is None:
            self.heatmap.box, self.cell_corr = [], None
            self._draw_detail()
            return
        i, j = v.position(*cell)
        self.heatmap.box = [i, j, i + 1, j + 1]
        r = float(v.matrix[i, j])
        self.cell_corr = None if np.isnan(r) else r
        self._draw_detail()
        self.curve.mark(self.result, self.mode, cell if v.row_side == "a" and v.col_side == "b" else None)
        if not self._following and v.row_side == "a":
            self._following = True
            try:
                self.selection.layer = self.result.layer_a
                self.selection.channel = cell[0]
            finally:
                self._following = False

    def _follow_channel(self, change) -> None:
        """A channel selected elsewhere on layer A's convolution: show that unit and its match."""
        ch, v, c = change["new"], self.shown, self.result
        if self._following or ch is None or v is None or v.row_side != "a" or c is None or ch not in v.rows:
            return
        if conv_for(self.insp["a"], self.selection.layer) != conv_for(self.insp["a"], c.layer_a):
            return
        with self.error.capture():
            matching = matching_of(c, self.mode)
            hit = np.flatnonzero(matching.pairs[:, 0] == ch)
            i = v.position(ch, v.cols[0])[0]
            partner = matching.pairs[hit[0], 1] if hit.size and v.col_side == "b" else v.cols[min(i, len(v.cols) - 1)]
            self._following = True
            try:
                self.cell = (int(ch), int(partner))
            finally:
                self._following = False

    def _draw_detail(self) -> None:
        v, c = self.shown, self.result
        if v is None or self.cell is None:
            for panel in self.panels.values():
                panel.clear()
            return
        self.cell_info.value = describe_cell(v, self.cell, c, self.mode, self.cell_corr)
        layer = {"a": c.layer_a, "b": c.layer_b}
        dead = {"a": c.correlation_.dead_a, "b": c.correlation_.dead_b}
        for key, side, unit in (("row", v.row_side, self.cell[0]), ("col", v.col_side, self.cell[1])):
            insp = self.insp[side]
            self.panels[key].show(
                insp, f"net {side.upper()}", layer[side], unit, bool(dead[side][unit]),
                self.top.get((side, layer[side])), self.maps.get((side, layer[side], self.image_index)),
                self.data, self.image_index)

    @guarded
    def _on_patch(self, change, panel: UnitPanel) -> None:
        i = panel.patches.tile_of(change["new"])
        if i is not None and panel.top is not None:
            self.image_index = int(panel.top.image_indices[panel.top.row(panel.unit), i])

    # ------------------------------------------------------------ curve and grid
    def _on_grid_pick(self, layer_a: str, layer_b: str) -> None:
        self.set_layers(layer_a, layer_b)

    @guarded
    def _draw_grid(self, change=None) -> None:
        if self.grid_result is not None:
            self.grid_plot.draw(self.grid_result, self.grid_measure)
            if self.result is not None:
                self.grid_plot.select(self.result.layer_a, self.result.layer_b)
