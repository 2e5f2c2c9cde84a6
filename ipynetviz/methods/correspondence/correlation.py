"""Unit-by-unit Pearson correlation between two layers (or within one), streamed over batches.

Li et al. (2016), "Convergent Learning", correlate every unit of one network with every unit of another
over a data set, each spatial position of a conv map counting as a sample. The matrix is accumulated
batch by batch on the device of the activations, so memory is O(Ca*Cb), not O(N*C).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ipynetviz.engine.errors import InputError

from .moments import StreamingMoments, accumulate

__all__ = ["CorrelationResult", "StreamingCorrelation", "correlation", "correlation_from_moments", "dead_units"]


@dataclass(frozen=True, eq=False)
class CorrelationResult:
    """Pearson correlations between the units of A (rows) and B (columns).

    Attributes:
        corr: (Ca, Cb) float64; NaN only in the rows of dead A units and the columns of dead B units,
            whose correlation is undefined (zero variance).
        mean_a, std_a, mean_b, std_b: per-unit mean and population standard deviation.
        dead_a, dead_b: boolean masks of the constant (dead) units.
        n_samples: samples seen (images times positions for conv maps).
        within: True for a layer against itself (then B is A).
    """

    corr: np.ndarray
    mean_a: np.ndarray
    std_a: np.ndarray
    mean_b: np.ndarray
    std_b: np.ndarray
    dead_a: np.ndarray
    dead_b: np.ndarray
    n_samples: int
    within: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.corr.shape

    def to_numpy(self) -> np.ndarray:
        """The (Ca, Cb) correlation matrix."""
        return self.corr


def dead_units(mean: torch.Tensor, std: torch.Tensor, rtol: float) -> torch.Tensor:
    """Units whose spread is zero, or below `rtol` times their mean's size (constant up to rounding)."""
    return std <= rtol * mean.abs()


class StreamingCorrelation(StreamingMoments):
    """Accumulate the Pearson correlation of two layers batch by batch; memory O(Ca*Cb).

    Call ``update(a_batch, b_batch)`` for every batch (``update(a_batch)`` for within-net correlation),
    then ``result()``. Sums are float64 on the device of the first batch.

    Example:
        >>> acc = StreamingCorrelation()
        >>> x = np.random.default_rng(0).normal(size=(500, 4))
        >>> for rows in (slice(0, 200), slice(200, 500)):
        ...     _ = acc.update(x[rows, :2], x[rows, 2:])
        >>> bool(np.allclose(acc.result().corr, np.corrcoef(x.T)[:2, 2:]))
        True
    """

    def __init__(self):
        super().__init__(full_a=False, full_b=False)

    def result(self, dead_rtol: float = 1e-12) -> CorrelationResult:
        """The correlation matrix of everything seen so far.

        Args:
            dead_rtol: a unit is dead (constant) when its standard deviation is at most this times the
                size of its mean (exactly zero for a unit that is always 0, as a dead ReLU is). A constant
                unit's float64 rounding leaves a spread near 1e-16 of its value, while a float32 unit that
                varies at all varies by at least 6e-8 of it: the default 1e-12 separates the two.

        Returns:
            A :class:`CorrelationResult`.
        """
        return correlation_from_moments(self, "between", dead_rtol)


def _pearson(cross, mean_a, var_a, mean_b, var_b, n, within, dead_rtol) -> CorrelationResult:
    std_a, std_b = var_a.sqrt(), var_b.sqrt()
    dead_a = dead_units(mean_a, std_a, dead_rtol)
    dead_b = dead_a if within else dead_units(mean_b, std_b, dead_rtol)
    safe_a = torch.where(dead_a, torch.ones_like(std_a), std_a)
    safe_b = torch.where(dead_b, torch.ones_like(std_b), std_b)
    corr = (cross / n) / safe_a[:, None] / safe_b[None, :]
    corr = corr.clamp_(-1.0, 1.0)
    corr[dead_a, :] = float("nan")
    corr[:, dead_b] = float("nan")
    if within:
        live = torch.nonzero(~dead_a).flatten()
        corr[live, live] = 1.0
    as_np = lambda t: t.detach().cpu().numpy()  # noqa: E731
    return CorrelationResult(corr=as_np(corr), mean_a=as_np(mean_a), std_a=as_np(std_a), mean_b=as_np(mean_b),
                             std_b=as_np(std_b), dead_a=as_np(dead_a), dead_b=as_np(dead_b), n_samples=n,
                             within=bool(within))


def correlation_from_moments(moments: StreamingMoments, which: str = "between",
                             dead_rtol: float = 1e-12) -> CorrelationResult:
    """Correlation matrix from an accumulator: A against B, or within A or within B (full moments needed).

    Args:
        moments: a fed :class:`StreamingMoments` (or :class:`StreamingCorrelation`).
        which: "between" (A rows, B columns; for within-net moments, A against A), "a" or "b".
        dead_rtol: see :meth:`StreamingCorrelation.result`.

    Returns:
        A :class:`CorrelationResult`.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(100, 3))
        >>> m = StreamingMoments().update(x, x[:, :2])
        >>> correlation_from_moments(m, "a").corr.shape, correlation_from_moments(m, "b").within
        ((3, 3), True)
    """
    if which not in ("between", "a", "b"):
        raise InputError(f"which must be 'between', 'a' or 'b', got {which!r}")
    moments.check()
    var_a, var_b = moments.variances()
    n = moments.n_samples
    if which == "between":
        if moments.within:
            return _pearson(moments.m2_a, moments.mean_a, var_a, moments.mean_a, var_a, n, True, dead_rtol)
        return _pearson(moments.m2_ab, moments.mean_a, var_a, moments.mean_b, var_b, n, False, dead_rtol)
    full = moments.full_a if which == "a" or moments.within else moments.full_b
    if not full:
        raise InputError(f"within-{which.upper()} correlation needs the full moments of {which.upper()}: "
                         f"use StreamingMoments(full_{which}=True)")
    if which == "a" or moments.within:
        return _pearson(moments.m2_a, moments.mean_a, var_a, moments.mean_a, var_a, n, True, dead_rtol)
    return _pearson(moments.m2_b, moments.mean_b, var_b, moments.mean_b, var_b, n, True, dead_rtol)


def correlation(acts_a, acts_b=None, batch_size: int | None = None,
                dead_rtol: float = 1e-12) -> CorrelationResult:
    """Pearson correlation of every unit of A with every unit of B (or of A with itself), streamed.

    Args:
        acts_a: activations of layer A, (n_samples, Ca) or conv maps (N, Ca, H, W) (every position a
            sample), as a NumPy array or tensor on any device; or an iterable of batches, each an array
            (within-net) or a pair ``(a_batch, b_batch)``.
        acts_b: activations of layer B for the same inputs, or None for within-net correlation.
        batch_size: leading items (images) per step for in-memory arrays; None picks ~128 MiB chunks.
        dead_rtol: see :meth:`StreamingCorrelation.result`.

    Returns:
        A :class:`CorrelationResult`; ``.corr`` equals ``np.corrcoef`` on the live units.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=(1000, 3)); b = np.c_[a[:, 0] * 2 + 1, np.zeros(1000)]
        >>> r = correlation(a, b)
        >>> round(float(r.corr[0, 0]), 6), r.dead_b.tolist()
        (1.0, [False, True])
    """
    if isinstance(acts_a, (dict, str)) or isinstance(acts_b, (dict, str)):
        raise InputError("correlation takes activations (arrays or tensors), not a "
                         f"{type(acts_a).__name__}; use compare(insp_a, insp_b, dataset, ...) for networks")
    acc = accumulate(StreamingCorrelation(), acts_a, acts_b, batch_size)
    return acc.result(dead_rtol=dead_rtol)
