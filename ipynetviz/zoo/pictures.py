"""Pictures of the teaching nets for the README: the conv1 filter grid."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ipynetviz.render import normalize, tile


def filter_grid(weight, scale: int = 8, pad: int = 2, ncols: int | None = 8) -> np.ndarray:
    """Tile first-layer filters into one RGB picture, each filter scaled symmetrically around 0.

    Zero weight is mid-grey; each filter is divided by its own largest absolute weight, so
    positive and negative parts keep their balance (the usual AlexNet-style filter picture).

    Args:
        weight: conv weight (out, 1 or 3, kh, kw), tensor or array.
        scale: enlargement of each filter (nearest neighbour).
        pad: white gap between filters, in pixels.
        ncols: filters per row.

    Returns:
        uint8 (H, W, 3) picture.

    Example:
        >>> filter_grid(np.random.randn(32, 3, 7, 7), scale=4, pad=1).shape
        (117, 233, 3)
    """
    w = np.asarray(weight.detach().cpu() if hasattr(weight, "detach") else weight, dtype=np.float64)
    w = normalize(w, "symmetric", axis=(1, 2, 3))
    if w.shape[1] == 1:
        w = np.repeat(w, 3, axis=1)
    picture, _ = tile(w, ncols=ncols, pad=pad, scale=scale)
    return picture


def save_filter_grid(weight, path, **kwargs) -> Path:
    """Write :func:`filter_grid` of ``weight`` as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(filter_grid(weight, **kwargs)).save(path)
    return path
