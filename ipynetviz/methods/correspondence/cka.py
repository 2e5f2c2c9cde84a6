"""Linear centred kernel alignment (Kornblith et al. 2019).

Linear CKA is HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels K = XXᵀ, L = YYᵀ, which for
centred features equals ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F). It is invariant to orthogonal transforms and
isotropic scaling of either layer, not to arbitrary invertible maps, and, unlike CCA, it is defined
for any number of samples.
"""
from __future__ import annotations

import numpy as np
import torch

from ipynetviz.engine.errors import InputError

from ._inputs import UndefinedSimilarityError, accumulation_device, as_tensor, check_same_samples, flatten_positions
from .moments import StreamingMoments, accumulate

__all__ = ["linear_cka", "linear_cka_from_moments"]


def _cka_ratio(cross: float, self_a: float, self_b: float) -> float:
    if self_a <= 0 or self_b <= 0:
        raise UndefinedSimilarityError(f"linear CKA is undefined: layer {'A' if self_a <= 0 else 'B'} has no "
                                       "varying unit on these inputs (all units constant)")
    return float(min(1.0, max(0.0, cross / np.sqrt(self_a * self_b))))


def linear_cka_from_moments(moments: StreamingMoments) -> float:
    """Linear CKA from an accumulator with full covariances (one streamed pass over the data).

    Args:
        moments: a :class:`StreamingMoments` updated with (a, b) batches.

    Returns:
        CKA in [0, 1].

    Example:
        >>> x = np.random.default_rng(0).normal(size=(50, 3))
        >>> round(linear_cka_from_moments(StreamingMoments().update(x, 2 * x)), 6)
        1.0
    """
    if moments.within:
        raise InputError("linear CKA compares two layers: the moments were accumulated within one net")
    moments.check()
    saa, sbb, sab = moments.covariances()
    return _cka_ratio(float(sab.square().sum()), float(saa.square().sum()), float(sbb.square().sum()))


def linear_cka(acts_a, acts_b=None, batch_size: int | None = None) -> float:
    """Linear CKA between two layers' activations for the same inputs.

    Args:
        acts_a, acts_b: (n_samples, Ca) and (n_samples, Cb), or conv maps (N, C, H, W) with every position
            a sample; or acts_a an iterable of (a, b) batches (then streamed).
        batch_size: leading items per streamed chunk.

    Returns:
        CKA in [0, 1] (1 when the layers differ by an orthogonal map and a scale).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(20, 5)); q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
        >>> round(linear_cka(x, 3 * x @ q), 6)
        1.0
    """
    if isinstance(acts_a, (np.ndarray, torch.Tensor)):
        if acts_b is None:
            raise InputError("linear CKA compares two layers: pass acts_b")
        a, b = as_tensor(acts_a, "A"), as_tensor(acts_b, "B")
        check_same_samples(a, b)
        a, b = flatten_positions(a), flatten_positions(b)
        n, ca, cb = a.shape[0], a.shape[1], b.shape[1]
        # Gram (n x n) form when samples are fewer than units, feature form otherwise: same value.
        if n < ca + cb and n * (ca + cb) <= 1 << 26:
            dev = accumulation_device(a)
            ac = a.to(dev, torch.float64)
            bc = b.to(dev, torch.float64)
            ac, bc = ac - ac.mean(0), bc - bc.mean(0)
            k, l_ = ac @ ac.T, bc @ bc.T
            return _cka_ratio(float((k * l_).sum()), float(k.square().sum()), float(l_.square().sum()))
    return linear_cka_from_moments(accumulate(StreamingMoments(), acts_a, acts_b, batch_size))
