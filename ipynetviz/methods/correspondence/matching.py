"""Matching units of two networks from their correlation matrix (Li et al. 2016).

Semi-matching pairs each unit of A with its most correlated unit of B (B units may repeat); bipartite
matching is the one-to-one assignment with the largest total correlation (the Hungarian method, via
SciPy's ``linear_sum_assignment``). Dead units (NaN rows/columns) take part in neither.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ipynetviz.engine.errors import InputError

from .correlation import CorrelationResult

__all__ = ["MatchingResult", "semi_matching", "bipartite_matching"]


@dataclass(frozen=True, eq=False)
class MatchingResult:
    """Pairs (unit of A, unit of B) and their correlations.

    Attributes:
        kind: ``"semi"`` or ``"bipartite"``.
        pairs: (k, 2) int array of (a_index, b_index), ordered by a_index.
        matched_corr: (k,) correlation of each pair.
        n_a, n_b: units in A and B (matched or not).
    """

    kind: str
    pairs: np.ndarray
    matched_corr: np.ndarray
    n_a: int
    n_b: int

    @property
    def total(self) -> float:
        """Sum of the matched correlations (what bipartite matching maximises)."""
        return float(self.matched_corr.sum())

    @property
    def unmatched_a(self) -> np.ndarray:
        """Indices of A units without a partner (dead, or surplus when A is larger)."""
        return np.setdiff1d(np.arange(self.n_a), self.pairs[:, 0])

    @property
    def unmatched_b(self) -> np.ndarray:
        """Indices of B units that no A unit chose."""
        return np.setdiff1d(np.arange(self.n_b), self.pairs[:, 1])

    def count_above(self, threshold: float = 0.9) -> int:
        """Number of pairs whose correlation exceeds `threshold` (Li et al. count units above 0.9)."""
        return int((self.matched_corr > threshold).sum())

    def sorted_corr(self) -> np.ndarray:
        """Matched correlations from best to worst, the curve of Li et al.'s figures."""
        return np.sort(self.matched_corr)[::-1]

    def order(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column orders that put the pairs on the diagonal, best pair first.

        Unmatched units follow in index order. With ``rows, cols = m.order()``,
        ``corr[np.ix_(rows, cols)]`` holds pair i at (i, i). For semi-matching a B unit chosen twice
        appears at its first (best) pair only.
        """
        by_corr = np.argsort(-self.matched_corr, kind="stable")
        rows = self.pairs[by_corr, 0]
        _, first = np.unique(self.pairs[by_corr, 1], return_index=True)
        cols = self.pairs[by_corr, 1][np.sort(first)]
        rows = np.concatenate([rows, self.unmatched_a])
        cols = np.concatenate([cols, self.unmatched_b])
        return rows.astype(np.int64), cols.astype(np.int64)

    def to_numpy(self) -> np.ndarray:
        """The (k, 2) pairs."""
        return self.pairs


def _as_corr(corr) -> np.ndarray:
    if isinstance(corr, CorrelationResult):
        corr = corr.corr
    try:
        import torch
        if isinstance(corr, torch.Tensor):
            corr = corr.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    corr = np.asarray(corr, dtype=np.float64)
    if corr.ndim != 2 or corr.size == 0:
        raise InputError(f"corr must be a non-empty (Ca, Cb) matrix, got shape {corr.shape}; pass "
                         "correlation(a, b) or its .corr")
    if np.isinf(corr).any():
        raise InputError("corr contains inf values; correlations lie in [-1, 1]")
    return corr


def semi_matching(corr) -> MatchingResult:
    """For each unit of A, the unit of B it correlates with most (B units may be chosen many times).

    Args:
        corr: a :class:`CorrelationResult` or a (Ca, Cb) matrix; NaN marks dead units.

    Returns:
        A :class:`MatchingResult` with one pair per live A unit (none when B has no live unit).

    Example:
        >>> semi_matching(np.array([[0.1, 0.9], [0.2, 0.8]])).pairs.tolist()
        [[0, 1], [1, 1]]
    """
    c = _as_corr(corr)
    valid = ~np.isnan(c)
    rows = np.flatnonzero(valid.any(axis=1))
    best = np.argmax(np.where(valid, c, -np.inf)[rows], axis=1) if rows.size else np.zeros(0, np.int64)
    pairs = np.stack([rows, best], axis=1).astype(np.int64) if rows.size else np.zeros((0, 2), np.int64)
    return MatchingResult("semi", pairs, c[pairs[:, 0], pairs[:, 1]], c.shape[0], c.shape[1])


def bipartite_matching(corr) -> MatchingResult:
    """The one-to-one pairing of A and B units with the largest total correlation.

    Solved exactly by SciPy's ``linear_sum_assignment`` (maximize=True) on the live units; a
    rectangular matrix gives min(live A, live B) pairs and leaves the surplus unmatched. A NaN between
    two live units (it cannot occur in a :class:`CorrelationResult`) counts as correlation 0.

    Args:
        corr: a :class:`CorrelationResult` or a (Ca, Cb) matrix; all-NaN rows/columns are dead units.

    Returns:
        A :class:`MatchingResult` ordered by A index.

    Example:
        >>> bipartite_matching(np.array([[0.1, 0.9], [0.2, 0.8]])).pairs.tolist()
        [[0, 1], [1, 0]]
    """
    c = _as_corr(corr)
    rows = np.flatnonzero(~np.isnan(c).all(axis=1))
    cols = np.flatnonzero(~np.isnan(c).all(axis=0))
    if rows.size == 0 or cols.size == 0:
        return MatchingResult("bipartite", np.zeros((0, 2), np.int64), np.zeros(0), c.shape[0], c.shape[1])
    sub = np.nan_to_num(c[np.ix_(rows, cols)], nan=0.0)
    r, k = linear_sum_assignment(sub, maximize=True)
    pairs = np.stack([rows[r], cols[k]], axis=1).astype(np.int64)
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    matched = np.nan_to_num(c[pairs[:, 0], pairs[:, 1]], nan=0.0)
    return MatchingResult("bipartite", pairs, matched, c.shape[0], c.shape[1])
