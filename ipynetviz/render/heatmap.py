"""Matrices and curves as pictures: a correlation matrix at one pixel per cell, a colour bar, a line plot.

A matrix drawn at one pixel per cell and zoomed by the browser (``image-rendering: pixelated``) stays one
small PNG even at 512 x 512 units, and a click's pixel coordinate is the cell's (row, column) directly.
The line plot is a static picture (numpy + Pillow) for notebooks that must read well without a kernel.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..engine.errors import InputError, SettingError
from .colors import _np, lut

__all__ = ["matrix_picture", "colorbar", "line_plot", "nice_ticks", "PALETTE"]

# distinguishable line colours (Tableau 10's first six)
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))


def matrix_picture(matrix, vmin: float = -1.0, vmax: float = 1.0, cmap: str = "rdbu",
                   nan_rgb: tuple[int, int, int] = (150, 150, 150)) -> np.ndarray:
    """A matrix as uint8 RGB (rows, cols, 3), one pixel per cell, values clipped to [vmin, vmax].

    Args:
        matrix: 2-D array or tensor.
        vmin, vmax: values drawn at the two ends of the colormap (default -1 and 1, for correlations).
        cmap: a colormap name of :func:`ipynetviz.render.lut` (default "rdbu": blue -1, white 0, red 1).
        nan_rgb: colour of NaN cells (undefined values, e.g. dead units' correlations).

    Returns:
        uint8 array (rows, cols, 3).

    Example:
        >>> matrix_picture(np.array([[-1.0, 1.0, np.nan]]))[0].tolist()
        [[5, 48, 97], [103, 0, 31], [150, 150, 150]]
    """
    m = _np(matrix).astype(np.float64)
    if m.ndim != 2:
        raise InputError(f"matrix_picture takes a 2-D matrix, got shape {m.shape}")
    if not vmax > vmin:
        raise SettingError(f"vmax ({vmax}) must be larger than vmin ({vmin})")
    nan = np.isnan(m)
    v = np.clip((np.where(nan, vmin, m) - vmin) / (vmax - vmin), 0.0, 1.0)
    out = lut(cmap)[(v * 255).round().astype(np.int64)]
    out[nan] = nan_rgb
    return out


def colorbar(cmap: str = "rdbu", length: int = 256, thickness: int = 12, vertical: bool = True) -> np.ndarray:
    """The colormap as a bar, uint8 RGB; vertical bars have the high end at the top.

    Example:
        >>> colorbar("gray", length=4, thickness=2)[:, 0, 0].tolist()
        [255, 170, 85, 0]
    """
    ramp = lut(cmap)[np.linspace(255, 0, length).round().astype(np.int64)]  # (length, 3), high first
    bar = np.repeat(ramp[:, None], thickness, axis=1)
    return bar if vertical else bar.transpose(1, 0, 2)[:, ::-1]


def _font():
    return ImageFont.load_default()


def nice_ticks(lo: float, hi: float, most: int = 6) -> np.ndarray:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [lo, hi], at most ``most``.

    Example:
        >>> nice_ticks(-0.1, 1.0).tolist()
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    span = max(hi - lo, 1e-12)
    base = 10.0 ** np.floor(np.log10(span / most))
    step = next(m * base for m in (1, 2, 2.5, 5, 10, 20) if np.floor(span / (m * base) + 1e-9) + 1 <= most)
    ticks = np.arange(np.ceil(lo / step - 1e-9) * step, hi + step * 1e-9, step)
    return np.round(ticks, 10) + 0.0  # + 0.0: no "-0" label


def line_plot(series: Mapping[str, np.ndarray], size: tuple[int, int] = (360, 220), ylim=(0.0, 1.0),
              hlines=(), title: str = "", xlabel: str = "", ylabel: str = "", colors=None,
              x_fraction: bool = False, legend: str = "top right") -> np.ndarray:
    """Curves y[i] over x = 0, 1, 2, ... as a static picture with axes, ticks and a legend.

    Args:
        series: label -> 1-D values (NaN values are skipped); series may differ in length.
        x_fraction: draw each series over x in [0, 1] (its i-th of n values at i / (n - 1)), so series of
            different lengths span the same width.
        legend: "top right" or "bottom left".
        size: (width, height) of the picture in pixels.
        ylim: (low, high) of the y axis; values outside are clipped to the frame.
        hlines: y values drawn as thin dashed reference lines (e.g. 0.9).
        title, xlabel, ylabel: texts.
        colors: RGB tuples per series (default :data:`PALETTE`).

    Returns:
        uint8 array (height, width, 3).

    Example:
        >>> line_plot({"a": np.linspace(0, 1, 5)}).shape
        (220, 360, 3)
    """
    width, height = size
    lo, hi = float(ylim[0]), float(ylim[1])
    if not hi > lo:
        raise SettingError(f"ylim must be (low, high) with high > low, got {ylim}")
    if not series:
        raise InputError("line_plot needs at least one series")
    if legend not in ("top right", "bottom left"):
        raise SettingError(f"legend must be 'top right' or 'bottom left', got {legend!r}")
    colors = list(colors or PALETTE)
    font = _font()
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 34, 10, 18 if title else 8, 28 if xlabel else 18
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    n = max(len(np.asarray(v).reshape(-1)) for v in series.values())
    xmax = 1.0 if x_fraction else float(max(n - 1, 1))

    def px(x, y):
        return (x0 + (x1 - x0) * x / xmax, y1 - (y1 - y0) * (np.clip(y, lo, hi) - lo) / (hi - lo))

    for t in nice_ticks(lo, hi):  # y ticks and grid
        _, yy = px(0, t)
        draw.line([(x0, yy), (x1, yy)], fill=(235, 235, 235))
        label = f"{t:g}"
        draw.text((x0 - 4 - draw.textlength(label, font=font), yy - 6), label, fill=(80, 80, 80), font=font)
    xticks = nice_ticks(0, xmax) if x_fraction else nice_ticks(0, xmax).round().astype(int)
    for t in np.unique(xticks):
        xx, _ = px(t, lo)
        draw.line([(xx, y1), (xx, y1 + 3)], fill=(80, 80, 80))
        label = f"{t:g}"
        w = draw.textlength(label, font=font)
        draw.text((min(xx - w / 2, width - 2 - w), y1 + 4), label, fill=(80, 80, 80), font=font)
    for h in hlines:
        _, yy = px(0, h)
        for xs in range(int(x0), int(x1), 6):
            draw.line([(xs, yy), (min(xs + 3, x1), yy)], fill=(120, 120, 120))
    draw.rectangle([x0, y0, x1, y1], outline=(80, 80, 80))
    for k, (label, values) in enumerate(series.items()):
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        color = tuple(colors[k % len(colors)])
        ok = np.flatnonzero(~np.isnan(v))
        scale = 1.0 / max(len(v) - 1, 1) if x_fraction else 1.0
        points = [px(i * scale, v[i]) for i in ok]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        elif points:
            x, y = points[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
        if legend == "bottom left":
            lx, ly = x0 + 6, y1 - 4 - 12 * (len(series) - k)
        else:
            lx, ly = x1 - 90, y0 + 4 + 12 * k
        draw.line([(lx, ly + 5), (lx + 14, ly + 5)], fill=color, width=2)
        draw.text((lx + 18, ly), str(label)[:14], fill=(40, 40, 40), font=font)
    if title:
        draw.text((x0, 3), title, fill=(0, 0, 0), font=font)
    if xlabel:
        draw.text(((x0 + x1) / 2 - 3 * len(xlabel), height - 13), xlabel, fill=(60, 60, 60), font=font)
    if ylabel:
        draw.text((x0 + 4, y0 + 2), ylabel, fill=(60, 60, 60), font=font)
    return np.asarray(img)
