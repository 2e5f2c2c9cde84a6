"""Pictures of the Compression lab, drawn with NumPy (a PNG a test can recompute byte for byte).

``weight_histogram``: the layer's weights with the pruned gap and the shared values as red markers (Deep
Compression's Fig. 4); ``sparsity_pattern``: kept weights black on white (Fig. 5's left); ``gap_histogram``:
the relative indices (Fig. 5's right).
"""
from __future__ import annotations

import numpy as np

BAR = np.array([31, 119, 180], np.uint8)
MARK = np.array([214, 39, 40], np.uint8)
AXIS = np.array([120, 120, 120], np.uint8)


def bars(counts: np.ndarray, height: int = 120, width: int | None = None, color=BAR,
         markers: np.ndarray | None = None) -> np.ndarray:
    """A bar chart of ``counts`` (one bar per bin, ``width // bins`` pixels wide) with optional marker columns.

    Example:
        >>> bars(np.array([1, 3]), height=4, width=4)[:, :, 0].tolist()
        [[255, 255, 31, 31], [255, 255, 31, 31], [31, 31, 31, 31], [120, 120, 120, 120]]
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = len(counts)
    width = width or 2 * n
    px = max(1, width // max(n, 1))
    img = np.full((height, px * n, 3), 255, np.uint8)
    top = counts.max() if n and counts.max() > 0 else 1.0
    h = np.rint((height - 1) * counts / top).astype(int)
    rows = np.arange(height)[:, None]
    filled = rows >= (height - 1 - np.repeat(h, px))[None, :]
    img[filled] = color
    img[-1] = AXIS
    if markers is not None:
        for col in np.asarray(markers, dtype=int):
            if 0 <= col < n:
                img[: height // 4, col * px:(col + 1) * px] = MARK
    return img


def weight_histogram(weights: np.ndarray, limit: float, centroids: np.ndarray | None = None, bins: int = 120,
                     height: int = 120) -> np.ndarray:
    """Histogram of the nonzero ``weights`` over [-limit, limit]; each centroid marked by a red tick at the top."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    w = w[w != 0]
    edges = np.linspace(-limit, limit, bins + 1)
    counts = np.histogram(np.clip(w, -limit, limit), bins=edges)[0]
    marks = None
    if centroids is not None and len(centroids):
        c = np.asarray(centroids, dtype=np.float64)
        marks = np.clip(np.searchsorted(edges, c[c != 0], side="right") - 1, 0, bins - 1)
    return bars(counts, height=height, width=3 * bins, markers=marks)


def sparsity_pattern(mask: np.ndarray, max_side: int = 200) -> np.ndarray:
    """Kept weights black on white; a conv weight (O, I, kh, kw) as O rows of I*kh*kw; large ones pooled (any kept)."""
    m = np.asarray(mask, dtype=bool)
    m = m.reshape(m.shape[0], -1)
    fy, fx = -(-m.shape[0] // max_side), -(-m.shape[1] // max_side)
    h, w = -(-m.shape[0] // fy), -(-m.shape[1] // fx)
    padded = np.zeros((h * fy, w * fx), bool)
    padded[:m.shape[0], :m.shape[1]] = m
    share = padded.reshape(h, fy, w, fx).mean(axis=(1, 3))
    gray = np.rint(255 * (1 - share)).astype(np.uint8)
    scale = max(1, max_side // max(h, w))
    gray = np.repeat(np.repeat(gray, scale, 0), scale, 1)
    return np.repeat(gray[:, :, None], 3, axis=2)


def gap_histogram(diffs: np.ndarray, index_bits: int, height: int = 80) -> np.ndarray:
    """Counts of each relative index value 0 .. 2**index_bits - 1 (the last bin holds the filler gaps)."""
    counts = np.bincount(np.asarray(diffs, dtype=np.int64), minlength=1 << index_bits)[:1 << index_bits]
    return bars(counts, height=height, width=max(64, 4 * len(counts)), color=np.array([44, 160, 44], np.uint8))


__all__ = ["bars", "weight_histogram", "sparsity_pattern", "gap_histogram"]
