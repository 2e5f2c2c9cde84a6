"""DFT-SVCCA for conv layers: one small CCA per spatial frequency (Raghu et al. 2017, section 2.1).

Comparing two conv layers with every (channel, position) as a unit means a CCA over C·H·W units. If the
statistics of the maps do not depend on position (translation invariance, with circular boundaries),
the 2-D DFT over positions makes the covariance block diagonal, one C×C block per frequency, so that CCA
splits into H·W independent (complex) CCAs over channels: the cost grows with channels, not positions.
The canonical correlations of all frequencies, pooled, are the canonical correlations of the full CCA
whenever that assumption holds exactly (e.g. a data set closed under circular shifts; the tests use one).

Each channel is centred by its mean over images and positions before the transform (under translation
invariance every non-zero frequency has zero mean), and the SVD step keeps, per frequency, the top
directions explaining a fraction `keep` of that frequency's variance.
"""
from __future__ import annotations

import numpy as np
import torch

from ipynetviz.engine.errors import InputError

from ._inputs import (SpatialSizeError, UndefinedSimilarityError, accumulation_device, align_spatial, as_tensor,
                      check_same_samples, row_chunks, spatial_shape)
from .cca import CCAResult

__all__ = ["dft_svcca"]


def _per_frequency_spectra(cov: torch.Tensor):
    """Eigendecomposition of each frequency's (C, C) Hermitian covariance, largest first, with ranks."""
    lam, vec = torch.linalg.eigh(cov)
    lam, vec = lam.flip(-1), vec.flip(-1)
    rank = ((lam > lam[:, :1] * 1e-11) & (lam > 0)).sum(1)
    return vec, lam.clamp(min=0.0), rank


def _kept_per_frequency(var: torch.Tensor, rank: torch.Tensor, keep) -> torch.Tensor:
    r = var.shape[1]
    if keep is None:
        return rank
    if isinstance(keep, (bool, np.bool_)) or not isinstance(keep, (int, float, np.integer, np.floating)):
        raise InputError(f"keep must be None, a fraction of variance in (0, 1] or a number of directions, "
                         f"got {keep!r}")
    if isinstance(keep, (int, np.integer)):
        if keep < 1:
            raise InputError(f"keep={keep} directions: keep at least 1")
        return rank.clamp(max=int(keep))
    if not 0.0 < keep <= 1.0:
        raise InputError(f"keep={keep}: a fraction of variance must lie in (0, 1]; pass an int for k directions")
    total = var.sum(1, keepdim=True).clamp(min=torch.finfo(var.dtype).tiny)
    frac = torch.cumsum(var, 1) / total
    k = (frac < keep - 1e-12).sum(1) + 1
    return torch.minimum(k.clamp(max=r), rank)


def _frequency_covariances(a: torch.Tensor, b: torch.Tensor, dev: torch.device, batch_size: int | None):
    """Per-frequency covariances (F, Ca, Ca), (F, Cb, Cb), (F, Ca, Cb) of the orthonormal 2-D DFT.

    Each channel is centred by its mean over images and positions; the DFT of a chunk of images is
    formed at a time, so memory holds one chunk's spectrum plus O(F·(Ca + Cb)^2).
    """
    n, (h, w) = a.shape[0], spatial_shape(a)
    mu_a = a.to(dev).mean(dim=(0, 2, 3), dtype=torch.float64)[:, None, None]
    mu_b = b.to(dev).mean(dim=(0, 2, 3), dtype=torch.float64)[:, None, None]
    sums = None
    for rows in row_chunks(n, (a.shape[1] + b.shape[1]) * h * w * 2, batch_size):
        fa = torch.fft.fft2(a[rows].to(dev, torch.float64) - mu_a, norm="ortho")
        fb = torch.fft.fft2(b[rows].to(dev, torch.float64) - mu_b, norm="ortho")
        fa = fa.permute(2, 3, 0, 1).reshape(h * w, -1, a.shape[1])
        fb = fb.permute(2, 3, 0, 1).reshape(h * w, -1, b.shape[1])
        part = (fa.mH @ fa, fb.mH @ fb, fa.mH @ fb)
        sums = part if sums is None else tuple(s_ + p_ for s_, p_ in zip(sums, part))
    return tuple(t / n for t in sums)


def dft_svcca(acts_a, acts_b, keep=0.99, eps: float = 0.0, align: str | None = None,
              batch_size: int | None = None) -> CCAResult:
    """SVCCA between two conv layers, frequency by frequency after a 2-D DFT over positions.

    Args:
        acts_a, acts_b: conv activations (N, Ca, H, W) and (N, Cb, H', W') for the same N images, arrays
            or tensors on any device.
        keep: SVD step per frequency: a fraction of that frequency's variance, a number of directions,
            or None for plain CCA per frequency.
        eps: ridge regulariser per frequency, in units of that frequency's mean channel variance.
        align: how to compare maps of different sizes: None raises, "resize" upsamples the smaller map
            bilinearly, "pool" average-pools the larger map (see :func:`align_spatial`).
        batch_size: images whose spectrum is formed at once (default: ~256 MiB of complex values).

    Returns:
        A :class:`CCAResult` with method "dft_svcca": ``corr`` pools the correlations of all frequencies
        (largest first), ``per_frequency`` is (H, W, k), NaN-padded.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(40, 3, 4, 4))
        >>> mix = np.array([[1., 2, 0], [0, 1, 0], [3, 0, 1]])
        >>> r = dft_svcca(x, np.einsum("dc,nchw->ndhw", mix, x), keep=None)
        >>> r.corr.size, round(r.mean, 6)
        (48, 1.0)
    """
    a, b = as_tensor(acts_a, "A"), as_tensor(acts_b, "B")
    if a.ndim != 4 or b.ndim != 4:
        raise InputError(f"dft_svcca needs conv maps (N, C, H, W), got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}; for (n_samples, units) use svcca")
    if a.shape[0] != b.shape[0]:
        check_same_samples(a, b)
    if spatial_shape(a) != spatial_shape(b):
        if align is None:
            raise SpatialSizeError(
                f"A has {a.shape[2]}x{a.shape[3]} maps but B {b.shape[2]}x{b.shape[3]}: DFT-SVCCA compares "
                "frequency by frequency, so both maps need one size. Pass align='resize' (bilinear "
                "interpolation of the smaller map to the larger size) or align='pool' (average pooling of "
                "the larger map to the smaller size)")
        a, b = align_spatial(a, b, mode=align)
    if eps < 0:
        raise InputError(f"eps must be >= 0, got {eps}")
    n, (h, w) = a.shape[0], spatial_shape(a)
    dev = accumulation_device(a)
    saa, sbb, sab = _frequency_covariances(a, b, dev, batch_size)
    va, var_a, rank_a = _per_frequency_spectra(saa)
    vb, var_b, rank_b = _per_frequency_spectra(sbb)
    ka, kb = _kept_per_frequency(var_a, rank_a, keep), _kept_per_frequency(var_b, rank_b, keep)
    if int(ka.max()) == 0 or int(kb.max()) == 0:
        raise UndefinedSimilarityError("DFT-SVCCA is undefined: one layer has no varying channel on these inputs")
    worst = int((ka + kb).max())
    if eps == 0 and n - 1 < worst:
        raise UndefinedSimilarityError(
            f"DFT-SVCCA is undefined here: {n} images for up to {worst} directions at one frequency (each "
            f"frequency is a CCA over channels with the images as samples, {a.shape[1]} and {b.shape[1]} "
            "channels). Use more images, keep fewer directions (keep=k), regularise with eps > 0, or use "
            "linear_cka")

    def whitening(var, k, ridge):
        # 1/sqrt(variance) on the kept directions (with the ridge term), 0 on the dropped ones
        kept = torch.arange(var.shape[1], device=dev)[None, :] < k[:, None]
        mean_var = var.sum(1, keepdim=True) / var.shape[1]
        safe = torch.where(kept, var, torch.ones_like(var))
        return torch.where(kept, (safe + ridge * mean_var).rsqrt(), torch.zeros_like(var))

    m = va.mH @ sab @ vb
    m = m * whitening(var_a, ka, eps)[:, :, None].to(m.dtype) * whitening(var_b, kb, eps)[:, None, :].to(m.dtype)
    rho = torch.linalg.svdvals(m).clamp(0.0, 1.0)
    k_f = torch.minimum(ka, kb)
    valid = torch.arange(rho.shape[1], device=dev)[None, :] < k_f[:, None]
    per_freq = torch.where(valid, rho, torch.full_like(rho, float("nan"))).reshape(h, w, -1)
    pooled = torch.sort(rho[valid], descending=True).values
    return CCAResult(corr=pooled.cpu().numpy(), weights=np.full(pooled.numel(), 1.0 / pooled.numel()),
                     method="dft_svcca", dims_a=int(ka.max()), dims_b=int(kb.max()), n_samples=n,
                     per_frequency=per_freq.cpu().numpy())
