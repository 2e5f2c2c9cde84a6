"""TransferPlot: Yosinski et al.'s Figure 2 (accuracy vs n for BnB, BnB+, AnB, AnB+) filling in as networks finish.

A thin view over :func:`ipynetviz.methods.dynamics.transfer_experiment`. Accuracies are drawn relative to baseB
(each network minus the mean baseB accuracy), so the paper's curves (ImageNet halves, top-1 near 0.625; dashed,
n = 1..7) and ours (a teaching set with higher accuracies, n = 1..weight layers - 1) share one axis: what is
compared is the shape, the drops and gains against the baseline, not the level. A click on a network's point
shows its conv1 filters beside those of the base network it copied them from.
"""
from __future__ import annotations

import html
import threading

import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets

from ..engine.control import Stop
from ..engine.errors import PartialResultError
from ..methods.dynamics import CONDITIONS, PAPER_FIG2, transfer_experiment
from ..render import tile
from .base import ClickImage, View

_COLORS = {"BnB": "#1f77b4", "BnB+": "#17becf", "AnB": "#d62728", "AnB+": "#ff7f0e"}
_OFFSET = {"BnB": -0.09, "BnB+": -0.03, "AnB": 0.03, "AnB+": 0.09}  # points side by side at one n


def filter_picture(weights: np.ndarray, scale: int = 6) -> np.ndarray:
    """conv1 weights (out, in, kh, kw) as one mosaic: RGB for 3 input channels, gray otherwise, each filter
    scaled to its own range.

    Example:
        >>> filter_picture(np.random.rand(4, 1, 3, 3), scale=2).shape
        (15, 15, 3)
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w if w.shape[1] == 3 else w[:, :1].repeat(3, axis=1)
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    hi = w.max(axis=(1, 2, 3), keepdims=True)
    pictures = (w - lo) / np.where(hi > lo, hi - lo, 1.0)
    return tile(pictures, pad=1, scale=scale)[0]


class TransferPlot(View):
    """Run a transfer experiment and watch Figure 2 fill in.

    Args:
        data, split, n_layers, seeds, model, **settings: as for
            :func:`~ipynetviz.methods.dynamics.transfer_experiment` (epochs, lr, batch_size, n_train, ...).
        show_paper: draw the paper's curves (dashed, read off its Fig. 2) beside ours.
        autostart: start at once.
        result: a finished :class:`~ipynetviz.methods.dynamics.TransferResult` to draw (no training).
        selection, synchronous: as for every view.

    Traits: read-outs ``state`` ("idle", "running", "done", "stopped", "failed"), ``networks`` (finished so far),
    ``selected`` (index of the clicked network in ``result.records``, -1 for none). ``result`` is the last
    :class:`~ipynetviz.methods.dynamics.TransferResult`.

    Example:
        >>> view = TransferPlot("digits", seeds=(0, 1), epochs=3, autostart=True)   # doctest: +SKIP
    """

    state = traitlets.Unicode("idle")
    networks = traitlets.Int(0)
    selected = traitlets.Int(-1)

    def __init__(self, data="digits", split=None, n_layers=None, seeds=(0,), model="digits-cnn",
                 show_paper: bool = True, autostart: bool = False, result=None, selection=None,
                 synchronous: bool = False, **settings):
        super().__init__(selection=selection, synchronous=synchronous, css_class="t-transfer-plot")
        self.args = dict(data=data, split=split, n_layers=n_layers, seeds=seeds, model=model, **settings)
        self.result = None
        self._stop = threading.Event()
        self.xs, self.ys = bq.LinearScale(min=0.5), bq.LinearScale()
        sc = {"x": self.xs, "y": self.ys}
        self.baseline = bq.Lines(x=[0.5, 7.5], y=[0.0, 0.0], scales=sc, colors=["black"], line_style="dotted",
                                 labels=["baseB"], display_legend=True)
        self.paper = {c: bq.Lines(x=np.array(PAPER_FIG2["n"], float),
                                  y=np.array(PAPER_FIG2[c]) - PAPER_FIG2["baseB"], scales=sc, colors=[_COLORS[c]],
                                  line_style="dashed", opacity=[0.5], labels=[f"{c} (paper)"],
                                  display_legend=True, visible=bool(show_paper))
                      for c in CONDITIONS[2:]}
        self.lines = {c: bq.Lines(x=np.zeros(0), y=np.zeros(0), scales=sc, colors=[_COLORS[c]], labels=[c],
                                  display_legend=True, stroke_width=2.5)  # no markers: the dots are the scatter
                      for c in CONDITIONS[2:]}
        # the default interactions (hover: tooltip) keep element clicks coming; "click": "select" would take them
        self.points = bq.Scatter(x=np.zeros(0), y=np.zeros(0), scales=sc, default_size=24, stroke="white")
        self.points.on_element_click(self._on_point_click)
        self._point_records: list[int] = []
        self.figure = bq.Figure(marks=[self.baseline, *self.paper.values(), *self.lines.values(), self.points],
                                title="accuracy on B relative to baseB (ours solid, paper dashed)",
                                axes=[bq.Axis(scale=self.xs, label="n: layers copied from the base network"),
                                      bq.Axis(scale=self.ys, orientation="vertical", label="accuracy − baseB",
                                              tick_format=".2f")],
                                legend_location="bottom-left",
                                fig_margin={"top": 40, "bottom": 50, "left": 60, "right": 10},
                                layout=W.Layout(width="620px", height="400px"))
        self.figure.add_class("t-transfer-figure")
        self.progress = W.IntProgress(0, min=0, max=1, description="networks")
        self.progress.add_class("t-transfer-progress")
        self.start_button = W.Button(description="Start", icon="play")
        self.start_button.add_class("t-transfer-start")
        self.start_button.on_click(lambda _: self.start())
        self.stop_button = W.Button(description="Stop", icon="stop")
        self.stop_button.add_class("t-transfer-stop")
        self.stop_button.on_click(lambda _: self.stop())
        self.filters = ClickImage(css_class="t-transfer-filters")
        self.source_filters = ClickImage(css_class="t-transfer-source-filters")
        self.filters_info = W.HTML("click a point: that network's conv1 filters beside its base network's")
        self.table = W.HTML("")
        self.table.add_class("t-transfer-table")
        self.body.children = [W.HBox([self.start_button, self.stop_button, self.progress]),
                              W.HBox([self.figure, W.VBox([self.filters_info,
                                                           W.HBox([self.filters, self.source_filters])])]),
                              self.table]
        if result is not None:
            self._show(result)
        if autostart:
            self.start()

    def start(self):
        """Train every network in the background; the plot fills in as each finishes."""
        self._stop = threading.Event()
        stop, args = self._stop, dict(self.args)
        self.state = "running"

        def progress(done, total):
            self.progress.max, self.progress.value = total, done

        def job(ticket):
            try:
                return transfer_experiment(**args, cancel=Stop(ticket, stop), progress=progress,
                                           callback=ticket.emit)
            except PartialResultError as err:  # a network failed: the finished ones stay drawn, the error shows
                if err.partial is not None:
                    self._show(err.partial)
                self.state = "failed"
                raise
        return self.submit(job, on_result=self._show, on_partial=self._show, busy="training networks…")

    def stop(self) -> None:
        """Stop after the network being trained; the finished ones stay drawn."""
        self._stop.set()

    def _show(self, result) -> None:
        self.result = result
        base = result.accuracies("baseB")
        self.networks = len(result.records)
        if result.complete:
            self.state = "done"
        elif self._stop.is_set():
            self.state = "stopped"
        self.table.value = f"<pre>{html.escape(str(result))}</pre>"
        if not base.size:
            return
        b = float(base.mean())
        for cond, line in self.lines.items():
            ns = [n for n in result.n_layers if result.accuracies(cond, n).size]
            with line.hold_sync():
                line.x = np.array(ns, float)
                line.y = np.array([result.accuracies(cond, n).mean() - b for n in ns])
        shown = [(i, r) for i, r in enumerate(result.records) if r.condition in _OFFSET]
        self._point_records = [i for i, _ in shown]
        with self.points.hold_sync():
            self.points.x = np.array([r.n + _OFFSET[r.condition] for _, r in shown], float)
            self.points.y = np.array([r.accuracy - b for _, r in shown], float)
            self.points.colors = [_COLORS[r.condition] for _, r in shown] or ["black"]
        self.xs.max = float(max(7, max(result.n_layers)) + 0.5)

    def _on_point_click(self, mark, event) -> None:
        with self.error.capture():
            self.pick(self._point_records[int(event["data"]["index"])])

    def click(self, point: int) -> None:
        """What a browser click on scatter point ``point`` does (scripts and tests)."""
        self._on_point_click(self.points, {"event": "element_click", "data": {"index": point}})

    def pick(self, record_index: int) -> None:
        """Show network ``record_index``'s conv1 filters beside those of the base network it copied from."""
        rec = self.result.records[record_index]
        source_name = "baseA" if rec.condition.startswith("A") else "baseB"
        source = next(r for r in self.result.records if r.condition == source_name and r.seed == rec.seed)
        self.selected = int(record_index)
        if rec.conv1 is None:
            self.filters_info.value = "this network has no conv layer"
            return
        self.filters.set_image(filter_picture(rec.conv1))
        self.source_filters.set_image(filter_picture(source.conv1))
        how = "copied and frozen" if not rec.condition.endswith("+") else "copied, then fine-tuned"
        self.filters_info.value = html.escape(
            f"{rec.condition} n={rec.n} seed {rec.seed} (accuracy {rec.accuracy:.3f}): conv1 {how} "
            f"(left) | {source_name}'s conv1 (right)")


__all__ = ["TransferPlot", "filter_picture"]
