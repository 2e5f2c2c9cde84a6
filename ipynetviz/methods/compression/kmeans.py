"""Exact-step 1-D k-means for weight sharing: sort once, then each Lloyd step is O(k log n).

In one dimension the points closest to each of sorted centroids form contiguous runs of the sorted
values, split at the midpoints between neighbouring centroids. So after one sort, an assignment is
``k - 1`` binary searches and every cluster mean is a difference of prefix sums; the iteration stops
when no boundary moves (Lloyd's fixed point, the same one scikit-learn's ``KMeans`` reaches from the
same start). An empty cluster splits the cluster with the largest squared error (scikit-learn moves it to the farthest point).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...engine.checks import check_choice, check_positive_int
from ...engine.errors import SettingError

INITS = ("linear", "density", "forgy")


@dataclass(frozen=True)
class KMeans1D:
    """A 1-D clustering: sorted ``centroids`` (k,), ``labels`` per value, ``inertia`` (sum of squares)."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int


def initial_centroids(values: np.ndarray, k: int, init: str = "linear", seed: int = 0) -> np.ndarray:
    """The paper's three starts (Han et al. 2016, Sec. 3.2), sorted.

    ``"linear"`` spaces the centroids evenly between the smallest and largest value (keeps the rare large
    weights, the paper's best); ``"density"`` spaces them evenly in the CDF (quantiles); ``"forgy"`` picks
    ``k`` distinct values at random (``seed``).

    Example:
        >>> initial_centroids(np.array([0.0, 1.0, 2.0, 10.0]), 2, "linear")
        array([ 0., 10.])
    """
    check_choice(init, "init", INITS)
    v = np.asarray(values, dtype=np.float64)
    if init == "linear":
        return np.linspace(v.min(), v.max(), k)
    if init == "density":
        return np.quantile(v, np.linspace(0.0, 1.0, k))
    unique = np.unique(v)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(unique, size=min(k, len(unique)), replace=False))


def kmeans_1d(values, k: int, init="linear", seed: int = 0, max_iter: int = 300) -> KMeans1D:
    """Cluster 1-D ``values`` into ``k`` groups (Lloyd's algorithm on sorted values).

    Args:
        values: any shape; flattened.
        k: clusters (at most the number of distinct values is used).
        init: ``"linear"``, ``"density"``, ``"forgy"`` or an array of k starting centroids.
        seed: for ``"forgy"``.
        max_iter: Lloyd steps at most.

    Returns:
        A :class:`KMeans1D` with sorted centroids.

    Example:
        >>> r = kmeans_1d([0.0, 0.1, 0.2, 5.0, 5.2], 2)
        >>> r.centroids.round(2).tolist(), r.labels.tolist()
        ([0.1, 5.1], [0, 0, 0, 1, 1])
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    k = check_positive_int(k, "k")
    if len(v) == 0:
        raise SettingError("no values to cluster (every weight of the layer is pruned); prune less")
    order = np.argsort(v, kind="stable")
    s = v[order]
    n_distinct = 1 + int(np.count_nonzero(s[1:] != s[:-1]))
    if n_distinct <= k:
        distinct = np.unique(s)  # every distinct value its own centroid: zero error
        labels = np.searchsorted(distinct, v)
        return KMeans1D(distinct, labels, 0.0, 0)
    c = np.sort(np.asarray(init, dtype=np.float64)) if not isinstance(init, str) else initial_centroids(s, k, init, seed)
    if len(c) != k:
        raise SettingError(f"init has {len(c)} centroids but k={k}; pass k starting values")
    prefix = np.concatenate([[0.0], np.cumsum(s)])
    prefix2 = np.concatenate([[0.0], np.cumsum(s * s)])
    ends_prev = None
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        ends = np.concatenate([np.searchsorted(s, (c[:-1] + c[1:]) / 2, side="right"), [len(s)]])
        starts = np.concatenate([[0], ends[:-1]])
        counts = ends - starts
        if ends_prev is not None and np.array_equal(ends, ends_prev) and counts.all():
            break
        ends_prev = ends
        new = c.copy()
        filled = counts > 0
        new[filled] = (prefix[ends[filled]] - prefix[starts[filled]]) / counts[filled]
        if not filled.all():
            new = _relocate_empty(s, prefix, prefix2, new, filled, starts, ends)
        c = np.sort(new)
    ends = np.concatenate([np.searchsorted(s, (c[:-1] + c[1:]) / 2, side="right"), [len(s)]])
    sorted_labels = np.repeat(np.arange(k), np.diff(np.concatenate([[0], ends])))
    labels = np.empty(len(v), dtype=np.int64)
    labels[order] = sorted_labels
    inertia = float(((s - c[sorted_labels]) ** 2).sum())
    return KMeans1D(c, labels, inertia, n_iter)


def _relocate_empty(s, prefix, prefix2, centroids, filled, starts, ends) -> np.ndarray:
    """Move each empty centroid into the cluster with the largest squared error, one spread above its mean.

    (Splitting the worst cluster lowers the error most; in 1-D its error is a prefix-sum difference.)
    """
    counts = (ends - starts).astype(np.float64)
    sums = prefix[ends] - prefix[starts]
    sse = np.where(counts > 0, prefix2[ends] - prefix2[starts] - sums ** 2 / np.maximum(counts, 1), -1.0)
    for j in np.flatnonzero(~filled):
        worst = int(np.argmax(sse))
        spread = np.sqrt(max(sse[worst], 0.0) / counts[worst])
        centroids[j] = centroids[worst] + spread
        sse[worst] /= 4  # its two halves, roughly
    return centroids


__all__ = ["kmeans_1d", "initial_centroids", "KMeans1D", "INITS"]
