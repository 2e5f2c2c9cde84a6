"""Read-outs of the CorrespondenceMatrix: the sorted matched-correlation curve and the layer x layer grid
(bqplot), the colour legend, and the texts describing a cell and a layer pair."""
from __future__ import annotations

import html
from typing import Callable

import bqplot as bq
import ipywidgets as W
import numpy as np

from ..render import to_data_url
from ..render.heatmap import colorbar
from .base import ColorBar


def matching_of(corr, mode: str):
    return corr.bipartite_ if mode == "bipartite" else corr.semi_


def pair_rank(matching, a_unit: int, b_unit: int) -> int | None:
    """Rank (0 = best) of the pair (a_unit, b_unit) among the matched pairs, or None if not a pair."""
    hit = np.flatnonzero((matching.pairs[:, 0] == a_unit) & (matching.pairs[:, 1] == b_unit))
    if not hit.size:
        return None
    return int((matching.matched_corr > matching.matched_corr[hit[0]]).sum())


def describe_cell(view, cell, corr, mode: str, r: float | None) -> str:
    """HTML for the selected cell of a :class:`MatrixView`: the two units, r, the pair's rank, best partners."""
    (ru, cu), c = cell, corr
    name = {"a": f"A {c.layer_a}", "b": f"B {c.layer_b}"}
    head = f"<b>{html.escape(name[view.row_side])}[{ru}]</b> × <b>{html.escape(name[view.col_side])}[{cu}]</b>: "
    if r is None:
        return head + "correlation undefined: a dead (constant) unit"
    text = head + f"r = <b>{r:.3f}</b>"
    if view.row_side == "a" and view.col_side == "b":
        matching = matching_of(c, mode)
        rank = pair_rank(matching, ru, cu)
        if rank is not None:
            text += f" · a {mode} pair, rank {rank + 1} of {len(matching.pairs)}"
        m = c.correlation_.corr
        best_b, best_a = np.nanargmax(m[ru]), np.nanargmax(m[:, cu])
        text += (f"<br>A{ru}'s best B unit: {best_b} (r {m[ru, best_b]:.3f}); "
                 f"B{cu}'s best A unit: {best_a} (r {m[best_a, cu]:.3f})")
    return text


def alignment_note(insp_a, insp_b, corr) -> list[str]:
    """How maps of different sizes were brought together (empty when the sizes agree)."""
    sa = insp_a.layer_shape(corr.layer_a)[1:]
    sb = insp_b.layer_shape(corr.layer_b)[1:]
    if sa == sb:
        return []
    big, small = ("A", "B") if sa[0] * sa[1] >= sb[0] * sb[1] else ("B", "A")
    return [f"maps of different sizes ({sa[0]}×{sa[1]} vs {sb[0]}×{sb[1]}): net {big}'s map average-pooled "
            f"to net {small}'s size before correlating positions"]


def legend_html(height: int) -> str:
    """The correlation colour bar (+1 red, 0 white, -1 blue) with its labels."""
    bar = to_data_url(colorbar("rdbu", length=128, thickness=10))
    return (f'<div style="display:flex;align-items:stretch;height:{height}px;font-size:11px">'
            f'<img src="{bar}" style="height:100%;width:10px;image-rendering:pixelated">'
            '<div style="display:flex;flex-direction:column;justify-content:space-between;margin-left:3px">'
            '<span>+1</span><span>0</span><span>−1</span></div></div>'
            '<div style="font-size:10px;color:#888">gray: dead</div>')


class MatchCurve:
    """Matched correlations sorted best first, for bipartite and semi matching (Li et al. 2016, Fig. 3),
    a dashed line at 0.9, and a dot on the selected pair. ``figure`` has the CSS class
    ``t-correspondence-curve``."""

    def __init__(self):
        xs, self.y = bq.LinearScale(), bq.LinearScale(min=0.0, max=1.0)
        sc = {"x": xs, "y": self.y}
        self.lines = {m: bq.Lines(x=[0], y=[0], scales=sc, colors=[col], labels=[m], display_legend=True,
                                  stroke_width=2) for m, col in (("bipartite", "#1f77b4"), ("semi", "#ff7f0e"))}
        self.reference = bq.Lines(x=[0, 1], y=[0.9, 0.9], scales=sc, colors=["#999"], line_style="dashed")
        self.dot = bq.Scatter(x=[], y=[], scales=sc, colors=["#ff2d55"], default_size=48)
        self.figure = bq.Figure(
            marks=[self.reference, *self.lines.values(), self.dot], title="matched correlations, sorted",
            axes=[bq.Axis(scale=xs, label="pair (best first)"),
                  bq.Axis(scale=self.y, side="left", label="correlation")],
            legend_location="bottom-left", fig_margin={"top": 40, "bottom": 40, "left": 50, "right": 10},
            layout=W.Layout(width="440px", height="280px"))
        self.figure.add_class("t-correspondence-curve")

    def draw(self, corr, mode: str) -> None:
        low = 0.0
        for m, line in self.lines.items():
            y = matching_of(corr, m).sorted_corr()
            line.x, line.y = np.arange(len(y)), y
            line.stroke_width = 3 if m == mode else 1.5
            low = min(low, float(y.min()) if y.size else 0.0)
        self.y.min = float(np.floor(low * 10) / 10)
        self.reference.x = [0, max(1, corr.correlation_.shape[0] - 1)]

    def mark(self, corr, mode: str, cell) -> None:
        """Put the dot on ``cell`` = (A unit, B unit) if it is a matched pair, else hide it."""
        rank = None if corr is None or cell is None else pair_rank(matching_of(corr, mode), *cell)
        if rank is None:
            self.dot.x, self.dot.y = [], []
            return
        self.dot.x, self.dot.y = [rank], [float(matching_of(corr, mode).sorted_corr()[rank])]


class LayerGridPlot:
    """Linear CKA or mean SVCCA correlation between every layer of A and every layer of B, as a labelled
    bqplot GridHeatMap; a click on a cell calls ``on_pick(layer_a, layer_b)``. ``box`` holds the measure
    toggle (``t-correspondence-grid-measure``), the figure (``t-correspondence-grid``) and a note."""

    def __init__(self, layers, on_pick: Callable[[str, str], None], on_error: Callable[[BaseException], None]):
        la, lb = layers or ((), ())
        self.on_pick, self.on_error = on_pick, on_error
        self.result = None
        shown = len(la) * len(lb) > 1  # bqplot squeezes a 1 x 1 grid away; one pair is the matrix itself
        la, lb = (la, lb) if shown else (("-", " "), ("-", " "))
        self.mark = bq.GridHeatMap(
            color=np.full((len(la), len(lb)), np.nan), row=np.array(la), column=np.array(lb),
            display_format=".2f", interactions={"click": "select"},
            selected_style={"stroke": "#ff2d55", "stroke-width": "4px"},
            scales={"row": bq.OrdinalScale(reverse=True), "column": bq.OrdinalScale(),
                    "color": bq.ColorScale(min=0.0, max=1.0, scheme="viridis")},
            font_style={"font-size": "11px", "fill": "white"})
        self.mark.on_element_click(self._on_click)
        sc = self.mark.scales
        # no hover toolbar: on a figure this small it covered the title
        self.figure = bq.Figure(marks=[self.mark], title="layer × layer similarity", display_toolbar=False,
                                axes=[bq.Axis(scale=sc["row"], side="left", label="net A"),
                                      bq.Axis(scale=sc["column"], label="net B")],
                                fig_margin={"top": 40, "bottom": 40, "left": 60, "right": 10},
                                layout=W.Layout(width="360px", height="280px", visibility="hidden"))
        self.colorbar = ColorBar(width=280, css_class="t-correspondence-grid-colorbar")
        self.colorbar.layout.margin = "0 0 0 70px"  # under the grid's cells
        self.figure.add_class("t-correspondence-grid")  # hidden until computed: no grid of NaN labels
        self.picker = W.ToggleButtons(options=[("CKA", "cka"), ("SVCCA", "svcca")], value="cka",
                                      style={"button_width": "72px"})
        self.picker.add_class("t-correspondence-grid-measure")
        self.info = W.HTML("computing…" if shown else "no layer × layer grid (grid=False, or one layer each)")
        self.info.add_class("t-correspondence-grid-info")
        self.box = W.VBox([self.picker, self.figure, self.colorbar, self.info] if shown else [self.info])

    def draw(self, result, measure: str) -> None:
        self.result = result
        self.mark.color = result.cka if measure == "cka" else result.svcca
        self.colorbar.show("viridis", 0.0, 1.0, "linear CKA (1: equal up to rotation)" if measure == "cka"
                           else "mean SVCCA correlation")
        self.figure.layout.visibility = "visible"
        self.info.value = (f"{'linear CKA' if measure == 'cka' else 'mean SVCCA correlation'} over "
                           f"{result.n_images} images (maps of different sizes average-pooled to the smaller); "
                           "click a cell to compare those layers")

    def select(self, layer_a: str, layer_b: str) -> None:
        g = self.result
        if g is not None and layer_a in g.layers_a and layer_b in g.layers_b:
            self.mark.selected = [[g.layers_a.index(layer_a), g.layers_b.index(layer_b)]]
        elif g is not None:
            self.mark.selected = None

    def _on_click(self, mark, event) -> None:
        try:
            data, g = event.get("data", {}), self.result
            if g is not None:
                self.on_pick(g.layers_a[int(data["rowNum"])], g.layers_b[int(data["columnNum"])])
        except Exception as err:  # shown in the view's error area
            self.on_error(err)

    def click(self, i: int, j: int) -> None:
        """What a browser click on grid cell (i, j) does (for scripts and tests)."""
        self._on_click(self.mark, {"event": "element_click", "data": {"rowNum": i, "columnNum": j}})
