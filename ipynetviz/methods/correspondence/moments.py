"""Running means and second moments of two layers' units, merged batch by batch in float64.

Every similarity in this package (correlation, regression, CCA, CKA) is a function of the means and the
centred second moments of the two sets of units, so one pass over a data set, batch by batch on the device
of the activations, is enough; memory is O((Ca + Cb)^2) at most and never O(N*C).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from ipynetviz.engine.errors import InputError
from ipynetviz.engine.state import MomentState

from ._inputs import (SampleCountError, as_tensor, check_same_samples, flatten_positions, positions_per_item,
                      row_chunks)

__all__ = ["StreamingMoments", "accumulate"]


class StreamingMoments(MomentState):
    """Running sums of two layers' activations: means, centred sums of squares and cross-products.

    Each batch is centred on its own mean and merged with the running state by the pairwise update of
    Chan, Golub & LeVeque (1979), all in float64 on the device of the first batch. This is the
    "running sums, sums of squares and cross-products" recipe, without the cancellation that raw sums
    suffer when a unit's mean is large compared with its spread. The sums and their ``merge`` live in the
    engine's :class:`~ipynetviz.engine.state.MomentState` (shards of a scan merge exactly); this class adds
    the checks and shapes of activations (conv maps, every position a sample).

    Args:
        full_a: keep the full (Ca, Ca) moment matrix of A (needed by CCA, CKA, within-net correlation);
            otherwise only its diagonal.
        full_b: the same for B.

    Example:
        >>> m = StreamingMoments()
        >>> m.update(np.random.rand(100, 3), np.random.rand(100, 2)).n_samples
        100
    """

    def update(self, a_batch, b_batch=None) -> "StreamingMoments":
        """Add one batch: `a_batch` (n, Ca) or (n, Ca, H, W) and `b_batch` for the same n inputs (or None).

        With `b_batch` None throughout, the moments are within-net (A against itself).
        """
        a = as_tensor(a_batch, "A batch")
        b = None if b_batch is None else as_tensor(b_batch, "B batch")
        if b is not None:
            check_same_samples(a, b, " in this batch")
        a = flatten_positions(a)
        b = None if b is None else flatten_positions(b)
        self.update_flat(a, b)
        return self

    def check(self, min_samples: int = 2) -> None:
        """Raise unless enough finite samples were seen."""
        if self.n_samples < min_samples:
            raise InputError(f"need at least {min_samples} samples, got {self.n_samples}")
        state = [self.mean_a, self.m2_a] + ([] if self.within else [self.mean_b, self.m2_b])
        if not all(bool(torch.isfinite(t).all()) for t in state):
            raise InputError("the activations contain NaN or inf values; check the inputs and the model")

    def variances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-unit population variances of A and B (float64 on the accumulation device)."""
        var_a = (torch.diagonal(self.m2_a) if self.full_a else self.m2_a) / self.n_samples
        if self.within:
            return var_a, var_a
        var_b = (torch.diagonal(self.m2_b) if self.full_b else self.m2_b) / self.n_samples
        return var_a, var_b

    def covariances(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Population covariance matrices (Σaa, Σbb, Σab); needs `full_a` and `full_b`."""
        if not self.full_a or not (self.within or self.full_b):
            raise InputError("full covariances need StreamingMoments(full_a=True, full_b=True)")
        n = self.n_samples
        if self.within:
            s = self.m2_a / n
            return s, s, s
        return self.m2_a / n, self.m2_b / n, self.m2_ab / n

    def cross_covariance(self) -> torch.Tensor:
        """Population cross-covariance Σab (Ca, Cb)."""
        return (self.m2_a if self.within else self.m2_ab) / self.n_samples


def _is_array(x) -> bool:
    return isinstance(x, (np.ndarray, torch.Tensor))


def accumulate(acc: StreamingMoments, acts_a, acts_b=None, batch_size: int | None = None) -> StreamingMoments:
    """Feed activations into an accumulator: in-memory arrays in chunks, or an iterable of batches.

    Args:
        acc: the accumulator to update.
        acts_a: an array/tensor (n_samples, Ca) or (N, Ca, H, W); or an iterable yielding batches, each
            either one array (within-net) or a pair ``(a_batch, b_batch)``.
        acts_b: the other layer's array for the same samples, or None (within-net, or batches in acts_a).
        batch_size: leading items (images for conv maps) per chunk of an in-memory array; the default
            keeps each float64 chunk near 128 MiB.

    Returns:
        `acc`, updated.
    """
    if _is_array(acts_a):
        a = as_tensor(acts_a, "A")
        b = None if acts_b is None else as_tensor(acts_b, "B")
        if b is not None:
            check_same_samples(a, b)
        width = a.shape[1] * positions_per_item(a) + (0 if b is None else b.shape[1] * positions_per_item(b))
        for rows in row_chunks(a.shape[0], width, batch_size):
            acc.update(a[rows], None if b is None else b[rows])
        return acc
    if acts_b is not None:
        raise InputError("pass either two arrays (acts_a, acts_b) or one iterable of (a_batch, b_batch) pairs, "
                         f"not an iterable with a separate acts_b ({type(acts_b).__name__})")
    if not isinstance(acts_a, Iterable):
        raise InputError(f"activations must be an array, a tensor or an iterable of batches, got "
                         f"{type(acts_a).__name__}")
    for item in acts_a:
        if _is_array(item):
            acc.update(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            acc.update(item[0], item[1])
        else:
            raise InputError("each batch must be an array (within-net) or a pair (a_batch, b_batch), got "
                             f"{type(item).__name__}")
    if acc.n_samples == 0:
        raise SampleCountError("the iterable of batches was empty: no samples to compare")
    return acc
