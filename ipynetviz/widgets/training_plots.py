"""The Training lab's plots (bqplot): loss and accuracy curves of several runs, update-ratio bars, a histogram."""
from __future__ import annotations

import html
import math

import bqplot as bq
import ipywidgets as W
import numpy as np

from .base import LINE_COLORS as COLORS


def smooth(values, alpha: float = 0.1) -> np.ndarray:
    """Exponential moving average (what TensorBoard's smoothing slider does), NaN-safe.

    Example:
        >>> smooth([0.0, 1.0, 1.0], alpha=0.5).tolist()
        [0.0, 0.5, 0.75]
    """
    out = np.empty(len(values))
    acc = None
    for i, v in enumerate(values):
        if v == v:
            acc = v if acc is None else (1 - alpha) * acc + alpha * v
        out[i] = np.nan if acc is None else acc
    return out


def _figure(title: str, y_label: str, css: str, y_min=None, y_max=None, height: int = 220):
    xs = bq.LinearScale()
    ys = bq.LinearScale(min=y_min, max=y_max)
    ax = [bq.Axis(scale=xs, label="step", num_ticks=5),
          bq.Axis(scale=ys, side="left", label=y_label, num_ticks=5, tick_format=".2f")]
    fig = bq.Figure(marks=[], axes=ax, title=title,
                    layout={"width": "380px", "min_width": "380px", "height": f"{height}px"},
                    fig_margin={"top": 30, "bottom": 35, "left": 50, "right": 10})
    fig.add_class(css)
    return fig, {"x": xs, "y": ys}


class Curves:
    """Loss and accuracy against steps, one colour per run: the training batch (smoothed, solid) and the test
    set (dashed, dots at evaluations). ``loss_figure`` and ``accuracy_figure`` carry the CSS classes
    ``t-training-loss`` and ``t-training-accuracy``."""

    def __init__(self):
        self.loss_figure, self._loss_sc = _figure("loss", "loss", "t-training-loss")
        self.accuracy_figure, self._acc_sc = _figure("accuracy", "accuracy", "t-training-accuracy", 0.0, 1.0)
        self.series: list[dict] = []
        self.labels: list[tuple[str, str]] = []
        self.legend = W.HTML("")
        self.legend.add_class("t-training-legend")

    def clear(self) -> None:
        for sc in (self._loss_sc, self._acc_sc):
            sc["x"].min = sc["x"].max = None
        self.series = []
        self.labels = []
        self.legend.value = ""
        self.loss_figure.marks = []
        self.accuracy_figure.marks = []

    def add_run(self, label: str) -> int:
        """New lines for a run; returns its index (its colour)."""
        color = COLORS[len(self.series) % len(COLORS)]
        marks = {}
        for key, fig, sc in (("loss", self.loss_figure, self._loss_sc),
                             ("accuracy", self.accuracy_figure, self._acc_sc)):
            train = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales=sc, colors=[color], stroke_width=1.5)
            test = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales=sc, colors=[color], line_style="dashed",
                            marker="circle", marker_size=12, stroke_width=1.5)
            marks[key], marks[f"test_{key}"] = train, test
            fig.marks = list(fig.marks) + [train, test]
        self.series.append(marks)
        self.labels.append((color, label))
        self.legend.value = " ".join(
            f'<span style="color:{c};font-size:12px;margin-right:10px">&#9644; {html.escape(t)}</span>'
            for c, t in self.labels)
        return len(self.series) - 1

    def set_steps(self, total: int) -> None:
        """Fix the step axis to a run's length (so curves grow to the right; the longest run sets it)."""
        for sc in (self._loss_sc, self._acc_sc):
            current = sc["x"].max if self.series[:-1] and sc["x"].max is not None else 0
            sc["x"].min, sc["x"].max = 0.0, float(max(current, total))

    def update(self, index: int, history) -> int:
        """Redraw run ``index`` from its history; returns the number of points drawn."""
        marks = self.series[index]
        steps = history.steps()
        x = np.asarray(steps["step"], dtype=float)
        if len(x):
            stride = max(1, len(x) // 400)  # a few hundred points are enough for a curve
            xs = np.ascontiguousarray(x[::stride])
            for key in ("loss", "accuracy"):
                with marks[key].hold_sync():
                    marks[key].x = xs
                    marks[key].y = np.ascontiguousarray(smooth(steps[key])[::stride])
        evals = [e for e in history.evals if "test_loss" in e]
        if evals:
            ex = np.array([e["step"] for e in evals], dtype=float)
            for key in ("test_loss", "test_accuracy"):
                with marks[key].hold_sync():
                    marks[key].x = ex
                    marks[key].y = np.array([e[key] for e in evals], dtype=float)
        return len(x)


class RatioBars:
    """Per layer, log10 of the update-to-weight ratio of the latest record (a healthy rate: about -3)."""

    def __init__(self):
        xs, ys = bq.OrdinalScale(), bq.LinearScale(min=-6.0, max=0.0)
        self.bars = bq.Bars(x=[], y=[], scales={"x": xs, "y": ys}, colors=["#1f77b4"], padding=0.2)
        self.reference = bq.Lines(x=[], y=[], scales={"x": xs, "y": ys}, colors=["#999"], line_style="dashed")
        ax = [bq.Axis(scale=xs, label="layer"),
              bq.Axis(scale=ys, side="left", label="log10 update/weight", num_ticks=4)]
        self.figure = bq.Figure(marks=[self.bars, self.reference], axes=ax, title="update / weight per step",
                                layout={"width": "380px", "min_width": "380px", "height": "220px"},
                                fig_margin={"top": 30, "bottom": 35, "left": 50, "right": 10})
        self.figure.add_class("t-training-ratios")

    def update(self, row: dict | None) -> None:
        if not row:
            return
        names = [k for k in row if k != "step"]
        vals = [math.log10(max(row[n]["update_ratio"], 1e-12)) for n in names]
        with self.bars.hold_sync():
            self.bars.x, self.bars.y = names, vals
        self.reference.x, self.reference.y = names, [-3.0] * len(names)


class Histogram:
    """The latest weight histogram of one layer (symmetric bins around 0)."""

    def __init__(self):
        xs, ys = bq.LinearScale(), bq.LinearScale(min=0.0)
        # a filled step line (bqplot's Bars on a linear x scale did not draw here)
        self.bars = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": xs, "y": ys}, colors=["#2ca02c"],
                             fill="bottom", fill_colors=["#2ca02c"], fill_opacities=[0.4], interpolation="step-after")
        ax = [bq.Axis(scale=xs, label="weight", num_ticks=5, tick_format=".2g"),
              bq.Axis(scale=ys, side="left", label="count", num_ticks=4)]
        self.figure = bq.Figure(marks=[self.bars], axes=ax, title="weights",
                                layout={"width": "380px", "min_width": "380px", "height": "220px"},
                                fig_margin={"top": 30, "bottom": 35, "left": 50, "right": 10})
        self.figure.add_class("t-training-histogram")

    def update(self, layer: str, row: dict | None) -> None:
        if not row or layer not in row:
            return
        h = row[layer]
        counts = np.asarray(h["weight"], dtype=float)
        lim = float(h["weight_limit"])
        centres = -lim + np.arange(len(counts)) * (2 * lim / len(counts))  # left edges, for step-after
        # explicit scale limits: bqplot's automatic domain stays stuck after a first degenerate draw
        sx, sy = self.bars.scales["x"], self.bars.scales["y"]
        sx.min, sx.max = -lim, lim
        sy.max = float(max(counts.max(), 1.0))
        with self.bars.hold_sync():
            self.bars.x, self.bars.y = centres, counts
        self.figure.title = f"{layer} weights (step {row['step']})"


class LayerHistograms:
    """Small multiples: the latest gradient histogram of every layer, one figure per layer titled with its name.

    Each figure has its own symmetric x range (gradients of conv1 and fc differ by orders of magnitude), an x axis
    ``gradient`` and a y axis ``count`` in a 12 px font. ``box`` (CSS class ``t-training-grad-histograms``) holds
    the figures; ``figures[layer]`` is one (CSS class ``t-training-grad-<layer>``); ``shown`` is the step drawn.

    Args:
        key: which histogram of a record to draw: ``"grad"`` (default) or ``"weight"``.
        label: the x-axis label.
    """

    FONT = {"font-size": "12px"}

    def __init__(self, key: str = "grad", label: str = "gradient"):
        self.key, self.label = key, label
        self.figures: dict[str, bq.Figure] = {}
        self.lines: dict[str, bq.Lines] = {}
        self.shown: int | None = None
        self._row: dict | None = None
        self.box = W.HBox([W.HTML(f"<i>{html.escape(label)} histograms per layer appear after the first step</i>")],
                          layout={"flex_flow": "row wrap"})
        self.box.add_class(f"t-training-{key}-histograms")

    def _figure(self, layer: str) -> None:
        xs, ys = bq.LinearScale(), bq.LinearScale(min=0.0)
        line = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": xs, "y": ys}, colors=["#9467bd"],
                        fill="bottom", fill_colors=["#9467bd"], fill_opacities=[0.4], interpolation="step-after")
        axes = [bq.Axis(scale=xs, label=self.label, num_ticks=3, tick_format=".1e", tick_style=self.FONT),
                bq.Axis(scale=ys, side="left", label="count", num_ticks=3, tick_format="d", tick_style=self.FONT)]
        fig = bq.Figure(marks=[line], axes=axes, title=layer, title_style={"font-size": "13px"},
                        layout={"width": "230px", "min_width": "230px", "height": "170px"},
                        fig_margin={"top": 25, "bottom": 40, "left": 50, "right": 15})
        fig.add_class(f"t-training-{self.key}-{layer.replace('.', '-')}")
        self.figures[layer], self.lines[layer] = fig, line

    def update(self, row: dict | None) -> None:
        """Draw record ``row`` (``history.histograms[i]``); rows without this histogram (step 0) are skipped."""
        if not row or row is self._row:  # the same record again (views redraw more often than layers record)
            return
        names = [k for k in row if k != "step" and self.key in row[k]]
        if not names:
            return
        self._row = row
        if list(self.figures) != names:
            self.figures, self.lines = {}, {}
            for name in names:
                self._figure(name)
            self.box.children = [self.figures[n] for n in names]
        limit_key = f"{self.key}_limit"
        for name in names:
            counts = np.asarray(row[name][self.key], dtype=float)
            lim = float(row[name][limit_key])
            line = self.lines[name]
            sx, sy = line.scales["x"], line.scales["y"]
            sx.min, sx.max = -lim, lim  # explicit limits, as in Histogram
            sy.max = float(max(counts.max(), 1.0))
            with line.hold_sync():
                line.x = -lim + np.arange(len(counts)) * (2 * lim / len(counts))
                line.y = counts
        self.shown = row["step"]


__all__ = ["Curves", "RatioBars", "Histogram", "LayerHistograms", "smooth", "COLORS"]
