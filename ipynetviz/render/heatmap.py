"""Matrices as pictures: a correlation matrix at one pixel per cell, a colour bar, and nice tick values.

A matrix drawn at one pixel per cell and zoomed by the browser (``image-rendering: pixelated``) stays one
small PNG even at 512 x 512 units, and a click's pixel coordinate is the cell's (row, column) directly.
Line plots are bqplot figures (:func:`ipynetviz.widgets.charts.line_chart`), not pictures.
"""
from __future__ import annotations

import numpy as np

from ..engine.errors import InputError, SettingError
from .colors import _np, lut

__all__ = ["matrix_picture", "colorbar", "nice_ticks"]


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
