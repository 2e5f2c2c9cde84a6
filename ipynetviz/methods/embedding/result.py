"""The result of an embedding: 2-D coordinates plus everything needed to draw and reproduce them."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class EmbeddingResult:
    """A map of N points, each a row of features (an image's code at a layer, or its pixels).

    Attributes:
        coords: (N, n_components) float32 coordinates (N x 2 for a map).
        labels: (N,) int64 class of each point; all 0 when the data had no labels (see ``has_labels``).
        indices: (N,) int64 position of each point in the data set it came from.
        method: "pca", "tsne" or "umap".
        settings: every parameter used (after automatic adjustments, e.g. a reduced perplexity or pooling),
            with timings in seconds.
        trustworthiness: scikit-learn's trustworthiness of the map (10 neighbours; on a subsample for big N,
            see ``settings["trustworthiness_points"]``), or None when not computed.
        cancelled: True when t-SNE was stopped early: ``coords`` is then the last layout reached.
        explained_variance_ratio: PCA only: share of the variance along each axis.
        has_labels: False when the data set had no labels (drawn in a single colour).

    Example:
        >>> e = EmbeddingResult(np.zeros((3, 2), np.float32), np.zeros(3, np.int64), np.arange(3), "pca", {})
        >>> len(e), e.to_numpy().shape
        (3, (3, 2))
    """

    coords: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    method: str
    settings: dict = field(default_factory=dict)
    trustworthiness: float | None = None
    cancelled: bool = False
    explained_variance_ratio: np.ndarray | None = None
    has_labels: bool = True

    def __post_init__(self):
        for name in ("coords", "labels", "indices", "explained_variance_ratio"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)  # frozen means frozen: a widget cannot corrupt a cached result

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def classes(self) -> np.ndarray:
        """The distinct labels, sorted."""
        return np.unique(self.labels)

    @property
    def complete(self) -> bool:
        """False when a cancel stopped t-SNE early (the house-wide meaning, see ipynetviz.engine.control)."""
        return not self.cancelled

    def to_numpy(self) -> np.ndarray:
        """The (N, n_components) coordinates."""
        return self.coords

    def __repr__(self) -> str:
        t = "n/a" if self.trustworthiness is None else f"{self.trustworthiness:.3f}"
        extra = ", cancelled" if self.cancelled else ""
        return (f"EmbeddingResult(method={self.method!r}, points={len(self)}, classes={len(self.classes)}, "
                f"trustworthiness={t}{extra})")
