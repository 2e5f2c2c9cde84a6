"""Line charts for notebooks (bqplot): curves with axes, a legend, reference lines and projector-sized fonts.

The notebooks' result plots (training curves, test error against label noise, sorted correlations) are drawn
here, by the plotting library, instead of as Pillow pictures with bitmap fonts: the fonts stay readable on a
projector, hovering a curve names it, and the figure scales with the page.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import bqplot as bq
import ipywidgets as W
import numpy as np

from ..engine.errors import InputError, SettingError
from .base import LINE_COLORS

__all__ = ["line_chart", "COLORS"]

COLORS = LINE_COLORS
FONT = {"font-size": "14px"}


def _xs(name: str, y: np.ndarray, x, x_fraction: bool) -> np.ndarray:
    if x_fraction:
        return np.linspace(0.0, 1.0, len(y)) if len(y) > 1 else np.zeros(len(y))
    if x is None:
        return np.arange(len(y), dtype=float)
    xv = np.asarray(x[name] if isinstance(x, Mapping) else x, dtype=float).reshape(-1)
    if len(xv) != len(y):
        raise InputError(f"series {name!r} has {len(y)} values but its x has {len(xv)}: give one x per value")
    return xv


def line_chart(series: Mapping[str, Sequence[float]], x=None, *, title: str = "", x_label: str = "",
               y_label: str = "", y_range: tuple[float, float] | None = None, hlines: Sequence[float] | Mapping[str, float] = (),
               x_fraction: bool = False, x_format: str = "", y_format: str = "", markers: bool = False,
               legend: str = "top-right", width: int = 560, height: int = 300, css_class: str = "") -> bq.Figure:
    """Curves as a bqplot figure: one line per series, labelled axes, a legend and dashed reference lines.

    Args:
        series: label -> 1-D values (NaN values leave a gap); series may differ in length.
        x: the x values: one array for every series, a mapping label -> array, or None for 0, 1, 2, ...
        title, x_label, y_label: texts (name the quantity and its unit).
        y_range: (low, high) of the y axis; None fits the data.
        hlines: y values drawn as dashed grey reference lines, named in the legend by their value, or a mapping
            label -> y (``{"chance": 0.9}``).
        x_fraction: draw each series over [0, 1] (its i-th of n values at i / (n - 1)), so series of different
            lengths span the same width.
        x_format, y_format: d3 tick formats (".0%", ".2f"); empty for bqplot's default.
        markers: a dot at each value (for a few points, such as one per epoch).
        legend: bqplot legend location ("top-right", "bottom-left", ...).
        width, height: size in pixels.
        css_class: a CSS class for the figure.

    Returns:
        A ``bqplot.Figure`` (display it, or put it in a box).

    Example:
        >>> fig = line_chart({"train": [0.9, 0.5, 0.3], "test": [1.0, 0.7, 0.6]}, title="loss", x_label="epoch",
        ...                  y_label="loss", hlines=[0.5])
        >>> [m.labels[0] for m in fig.marks], [a.label for a in fig.axes]
        (['train', 'test', '0.5'], ['epoch', 'loss'])
    """
    if not series:
        raise InputError("line_chart needs at least one series: pass {label: values}")
    if y_range is not None and not float(y_range[1]) > float(y_range[0]):
        raise SettingError(f"y_range must be (low, high) with high > low, got {tuple(y_range)}")
    xs = bq.LinearScale(min=0.0, max=1.0) if x_fraction else bq.LinearScale()
    ys = bq.LinearScale() if y_range is None else bq.LinearScale(min=float(y_range[0]), max=float(y_range[1]))
    scales = {"x": xs, "y": ys}
    marks, lo, hi = [], np.inf, -np.inf
    for i, (name, values) in enumerate(series.items()):
        y = np.asarray(values, dtype=float).reshape(-1)
        xv = _xs(name, y, x, x_fraction)
        if len(xv):
            lo, hi = min(lo, float(np.nanmin(xv))), max(hi, float(np.nanmax(xv)))
        marks.append(bq.Lines(x=xv, y=y, scales=scales, colors=[COLORS[i % len(COLORS)]], labels=[str(name)],
                              display_legend=True, stroke_width=2, marker="circle" if markers else None,
                              marker_size=24, tooltip=bq.Tooltip(fields=["name"], show_labels=False)))
    if x_fraction:
        lo, hi = 0.0, 1.0
    if not np.isfinite(lo):
        lo, hi = 0.0, 1.0
    refs = hlines.items() if isinstance(hlines, Mapping) else ((f"{h:g}", h) for h in hlines)
    for label, h in refs:
        marks.append(bq.Lines(x=[lo, hi], y=[float(h), float(h)], scales=scales, colors=["#888888"],
                              line_style="dashed", labels=[str(label)], display_legend=True, stroke_width=1.5))
    axes = [bq.Axis(scale=xs, label=x_label, tick_format=x_format or None, tick_style=FONT, num_ticks=6),
            bq.Axis(scale=ys, orientation="vertical", label=y_label, tick_format=y_format or None,
                    tick_style=FONT, num_ticks=6)]
    fig = bq.Figure(marks=marks, axes=axes, title=title, legend_location=legend,
                    title_style={"font-size": "16px"}, legend_text={"font-size": "13px"},
                    fig_margin={"top": 40, "bottom": 50, "left": 65, "right": 20},
                    layout=W.Layout(width=f"{int(width)}px", height=f"{int(height)}px"))
    if css_class:
        fig.add_class(css_class)
    return fig
