"""Normalisation and colormaps: arrays -> uint8 RGB, with numpy only (no matplotlib)."""
from __future__ import annotations

import numpy as np

from ..engine.errors import InputError, SettingError


# Anchor colours sampled from the perceptually uniform maps (viridis, inferno) and a diverging blue-white-red;
# intermediate values are linearly interpolated in RGB, which is close enough for display.
_ANCHORS = {
    "viridis": [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
                (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)],
    "inferno": [(0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85), (227, 89, 51),
                (249, 140, 10), (249, 201, 50), (252, 255, 164)],
    "magma": [(0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122), (229, 80, 100),
              (251, 135, 97), (254, 194, 135), (252, 253, 191)],
    "rdbu": [(5, 48, 97), (33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43),
             (103, 0, 31)],
    "gray": [(0, 0, 0), (255, 255, 255)],
}
_LUTS: dict[str, np.ndarray] = {}


def lut(name: str) -> np.ndarray:
    """A 256×3 uint8 lookup table for colormap ``name`` (viridis, inferno, magma, rdbu, gray)."""
    key = name.lower()
    if key not in _ANCHORS:
        raise SettingError(f"unknown colormap {name!r}; choose one of {sorted(_ANCHORS)}")
    if key not in _LUTS:
        anchors = np.asarray(_ANCHORS[key], dtype=np.float64)
        pos = np.linspace(0, 1, len(anchors))
        t = np.linspace(0, 1, 256)
        _LUTS[key] = np.stack([np.interp(t, pos, anchors[:, c]) for c in range(3)], 1).round().astype(np.uint8)
    return _LUTS[key]


def normalize(x, mode: str = "minmax", percentile: float = 99.0, axis=None) -> np.ndarray:
    """Scale an array to [0, 1].

    Args:
        x: array or tensor.
        mode: "minmax" (min -> 0, max -> 1), "symmetric" (0 -> 0.5, max |x| -> 0 or 1; for signed maps such
            as gradients and weights), "abs" (|x| / max |x|), or "percentile" (clip at the given percentile
            of |x|, then symmetric).
        axis: axes over which the statistics are taken (None: all), e.g. (1, 2, 3) for per-image scaling.

    Example:
        >>> normalize(np.array([-2.0, 0.0, 2.0]), "symmetric").tolist()
        [0.0, 0.5, 1.0]
    """
    a = _np(x).astype(np.float64)
    if mode == "minmax":
        lo, hi = a.min(axis=axis, keepdims=True), a.max(axis=axis, keepdims=True)
        return np.where(hi > lo, (a - lo) / np.where(hi > lo, hi - lo, 1), 0.0)
    if mode == "abs":
        m = np.abs(a).max(axis=axis, keepdims=True)
        return np.abs(a) / np.where(m > 0, m, 1)
    if mode in ("symmetric", "percentile"):
        if mode == "percentile":
            m = np.percentile(np.abs(a), percentile, axis=axis, keepdims=True)
        else:
            m = np.abs(a).max(axis=axis, keepdims=True)
        m = np.where(m > 0, m, 1)
        return np.clip(a / (2 * m) + 0.5, 0, 1)
    raise SettingError(f"unknown normalisation {mode!r}; use minmax, symmetric, abs or percentile")


def colorize(x, cmap: str = "viridis", mode: str | None = "minmax") -> np.ndarray:
    """A 2-D map as uint8 RGB (H, W, 3) through a colormap (``mode=None`` if already in [0, 1])."""
    a = _np(x)
    if a.ndim != 2:
        raise InputError(f"colorize takes a 2-D map, got shape {a.shape}")
    v = normalize(a, mode) if mode else np.clip(a, 0, 1)
    return lut(cmap)[(v * 255).round().astype(np.int64)]


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
