"""Canonical correlation analysis of two layers: CCA, SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018).

CCA finds directions in the space of A's units and in the space of B's units whose projections are
maximally correlated; the canonical correlations are the cosines of the principal angles between the
two centred column spaces (Björck & Golub 1973). They are computed as the singular values of Uaᵀ Ub,
where Ua, Ub are orthonormal bases from the SVD of the centred activations (or, equivalently, from the
eigendecomposition of streamed covariances, when the activations are too many to hold).
SVCCA first keeps the top singular directions of each layer (a fraction of the variance, or k), then
runs CCA; PWCCA averages the canonical correlations weighted by how much of A each direction accounts for.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ipynetviz.engine.errors import InputError

from ._inputs import UndefinedSimilarityError, as_tensor, check_same_samples, flatten_positions
from .moments import StreamingMoments, accumulate

__all__ = ["CCAResult", "cca", "svcca", "pwcca", "cca_from_moments"]

# In-memory activations up to this many float64 values go through the SVD of the data (most precise);
# larger ones are streamed into covariances, whose eigendecomposition gives the same bases.
_DATA_PATH_MAX_VALUES = 1 << 25


@dataclass(frozen=True, eq=False)
class CCAResult:
    """Canonical correlations of two layers and their summary.

    Attributes:
        corr: canonical correlations, largest first (pooled over frequencies for DFT-SVCCA).
        weights: non-negative weights summing to 1 that define ``value``: uniform for CCA and SVCCA,
            projection weights for PWCCA.
        method: "cca", "svcca", "pwcca" or "dft_svcca".
        dims_a, dims_b: directions of each layer that entered CCA (after the SVD step; largest over
            frequencies for DFT-SVCCA).
        n_samples: samples used.
        per_frequency: DFT-SVCCA only: (H, W, k) correlations per frequency, NaN-padded.
    """

    corr: np.ndarray
    weights: np.ndarray
    method: str
    dims_a: int
    dims_b: int
    n_samples: int
    per_frequency: np.ndarray | None = None

    @property
    def mean(self) -> float:
        """Mean canonical correlation (the SVCCA similarity)."""
        return float(self.corr.mean())

    @property
    def value(self) -> float:
        """The method's similarity: the weighted mean of the correlations (plain mean except PWCCA)."""
        return float(np.dot(self.weights, self.corr))

    def top(self, k: int) -> float:
        """Mean of the k largest canonical correlations."""
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        return float(self.corr[:k].mean())

    def to_numpy(self) -> np.ndarray:
        """The canonical correlations."""
        return self.corr


@dataclass(frozen=True)
class _Side:
    """One layer's principal directions V (C, r), variances λ (r,), largest first, and optional basis U (n, r)."""

    directions: torch.Tensor
    variances: torch.Tensor
    basis: torch.Tensor | None
    mean_variance: float  # trace / C, the scale of the regulariser

    def truncate(self, k: int) -> "_Side":
        return _Side(self.directions[:, :k], self.variances[:k],
                     None if self.basis is None else self.basis[:, :k], self.mean_variance)


def _side_from_data(x: torch.Tensor) -> _Side:
    n, c = x.shape
    xc = x - x.mean(0)
    u, s, vh = torch.linalg.svd(xc, full_matrices=False)
    r = int((s > s[0] * max(n, c) * torch.finfo(s.dtype).eps).sum()) if s.numel() and s[0] > 0 else 0
    lam = s[:r].square() / n
    return _Side(vh[:r].mT, lam, u[:, :r], float(s.square().sum() / n / c))


def _side_from_cov(cov: torch.Tensor) -> _Side:
    lam, vec = torch.linalg.eigh(cov)
    lam, vec = lam.flip(0), vec.flip(1)
    r = int((lam > lam[0] * 1e-11).sum()) if lam.numel() and lam[0] > 0 else 0
    return _Side(vec[:, :r], lam[:r], None, float(torch.diagonal(cov).sum() / cov.shape[0]))


def _kept(side: _Side, keep) -> int:
    """Directions kept: all (None), the k largest (int), or the fewest explaining a fraction of the variance."""
    r = side.variances.numel()
    if keep is None:
        return r
    if isinstance(keep, (bool, np.bool_)) or not isinstance(keep, (int, float, np.integer, np.floating)):
        raise InputError(f"keep must be None, a fraction of variance in (0, 1] or a number of directions, "
                         f"got {keep!r}")
    if isinstance(keep, (int, np.integer)):
        if keep < 1:
            raise InputError(f"keep={keep} directions: keep at least 1")
        return min(int(keep), r)
    if not 0.0 < keep <= 1.0:
        raise InputError(f"keep={keep}: a fraction of variance must lie in (0, 1]; pass an int for k directions")
    if r == 0:
        return 0
    frac = torch.cumsum(side.variances, 0) / side.variances.sum()
    return min(r, int((frac < keep - 1e-12).sum()) + 1)


def _check_defined(n: int, ka: int, kb: int, units: tuple[int, int], eps: float, what: str) -> None:
    if ka == 0 or kb == 0:
        raise UndefinedSimilarityError(f"{what} is undefined: layer {'A' if ka == 0 else 'B'} has no varying "
                                       "unit (all units are constant on these inputs)")
    if eps == 0 and n - 1 < ka + kb:
        raise UndefinedSimilarityError(
            f"{what} is undefined here: {n} samples for {ka} + {kb} directions ({units[0]} and {units[1]} "
            f"units). With n - 1 < {ka + kb}, at least {ka + kb - n + 1} canonical correlations equal 1 whatever "
            "the networks compute. Use linear_cka (defined for any number of samples), collect more samples "
            "(10x the units is common advice; every position of a conv map counts), keep fewer directions "
            "with svcca(keep=k), or regularise with eps > 0")


def _canonical(side_a: _Side, side_b: _Side, cross: torch.Tensor | None, eps: float, weights_from: str | None):
    """Canonical correlations (and PWCCA weights) from two sides and, without bases, Σab."""
    if side_a.basis is not None and side_b.basis is not None:
        m = side_a.basis.mT @ side_b.basis
    else:
        m = (side_a.directions.mT @ cross @ side_b.directions)
        m = m / side_a.variances.sqrt()[:, None] / side_b.variances.sqrt()[None, :]
    lam_a, lam_b = side_a.variances, side_b.variances
    reg_a = lam_a + eps * side_a.mean_variance
    reg_b = lam_b + eps * side_b.mean_variance
    if eps:
        m = m * (lam_a / reg_a).sqrt()[:, None] * (lam_b / reg_b).sqrt()[None, :]
    p, rho, qh = torch.linalg.svd(m)
    k = min(lam_a.numel(), lam_b.numel())
    rho = rho[:k].clamp(0.0, 1.0)
    if weights_from is None:
        return rho, torch.full_like(rho, 1.0 / k)
    side, reg, dirs = (side_a, reg_a, p[:, :k]) if weights_from == "a" else (side_b, reg_b, qh[:k].mT)
    # Canonical variate i of the layer is h_i = X_c V diag(reg^-1/2) dirs_i; its inner products with the
    # centred units are n·V diag(λ) g_i and its norm is sqrt(n·g_iᵀ diag(λ) g_i) (Morcos et al., eq. 2).
    g = dirs / reg.sqrt()[:, None]
    proj = side.directions @ (side.variances[:, None] * g)
    norm = (side.variances[:, None] * g.square()).sum(0).sqrt()
    alpha = proj.abs().sum(0) / norm
    return rho, alpha / alpha.sum()


def _sides(a, b, batch_size):
    """Both layers' spectra: from the data when small and in memory, else from streamed covariances."""
    if isinstance(a, (np.ndarray, torch.Tensor)):
        if b is None:
            raise InputError("CCA compares two layers: pass acts_b (CCA of a layer with itself is trivially 1)")
        ta, tb = as_tensor(a, "A"), as_tensor(b, "B")
        check_same_samples(ta, tb)
        ta, tb = flatten_positions(ta), flatten_positions(tb)
        if ta.shape[0] * (ta.shape[1] + tb.shape[1]) <= _DATA_PATH_MAX_VALUES:
            dev = torch.device("cpu") if ta.device.type == "mps" else ta.device
            side_a = _side_from_data(ta.to(dev, torch.float64))
            side_b = _side_from_data(tb.to(dev, torch.float64))
            return side_a, side_b, None, ta.shape[0], (ta.shape[1], tb.shape[1])
    acc = accumulate(StreamingMoments(), a, b, batch_size)
    return _sides_from_moments(acc)


def _sides_from_moments(acc: StreamingMoments):
    if acc.within:
        raise InputError("CCA compares two layers: the moments were accumulated within one net")
    acc.check()
    saa, sbb, sab = acc.covariances()
    return _side_from_cov(saa), _side_from_cov(sbb), sab, acc.n_samples, acc.n_units


def _run(sides, keep, eps, method, weights_from) -> CCAResult:
    if eps < 0:
        raise InputError(f"eps must be >= 0, got {eps}")
    if weights_from not in (None, "a", "b"):
        raise InputError(f"weights_from must be 'a' or 'b', got {weights_from!r}")
    side_a, side_b, cross, n, units = sides
    ka, kb = _kept(side_a, keep), _kept(side_b, keep)
    _check_defined(n, ka, kb, units, eps, method.upper())
    rho, w = _canonical(side_a.truncate(ka), side_b.truncate(kb), cross, eps, weights_from)
    return CCAResult(corr=rho.cpu().numpy(), weights=w.cpu().numpy(), method=method, dims_a=ka, dims_b=kb,
                     n_samples=n)


def cca(acts_a, acts_b=None, eps: float = 0.0, batch_size: int | None = None) -> CCAResult:
    """Canonical correlations between two layers' activations.

    Args:
        acts_a, acts_b: (n_samples, Ca) and (n_samples, Cb), or conv maps (N, C, H, W) with every position
            a sample; or acts_a an iterable of (a, b) batches (then streamed).
        eps: ridge regulariser: each covariance gets eps times its mean unit variance added to the
            diagonal (0 = plain CCA, which needs more samples than directions).
        batch_size: leading items per streamed chunk.

    Returns:
        A :class:`CCAResult` with min(rank A, rank B) correlations, largest first.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=(500, 3)); b = a @ rng.normal(size=(3, 3))
        >>> np.round(cca(a, b).corr, 6).tolist()
        [1.0, 1.0, 1.0]
    """
    return _run(_sides(acts_a, acts_b, batch_size), None, eps, "cca", None)


def svcca(acts_a, acts_b=None, keep=0.99, eps: float = 0.0, batch_size: int | None = None) -> CCAResult:
    """SVCCA (Raghu et al. 2017): keep each layer's top singular directions, then CCA between them.

    Args:
        acts_a, acts_b: as for :func:`cca`.
        keep: a float in (0, 1] keeps the fewest directions explaining that fraction of the variance
            (the paper's 0.99); an int keeps that many directions; None keeps all (plain CCA).
        eps, batch_size: as for :func:`cca`.

    Returns:
        A :class:`CCAResult`; ``.mean`` is the SVCCA similarity, ``.top(k)`` the mean of the top k.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(1000, 2)) * [10, 5]
        >>> a = z @ rng.normal(size=(2, 6)) + 0.01 * rng.normal(size=(1000, 6))
        >>> r = svcca(a, z, keep=0.99); (r.dims_a, r.dims_b, round(r.mean, 3))
        (2, 2, 1.0)
    """
    return _run(_sides(acts_a, acts_b, batch_size), keep, eps, "svcca", None)


def pwcca(acts_a, acts_b=None, keep=None, eps: float = 0.0, weights_from: str = "a",
          batch_size: int | None = None) -> CCAResult:
    """PWCCA (Morcos et al. 2018): canonical correlations weighted by how much of a layer they account for.

    The weight of canonical direction i is ``sum_j |<h_i, x_j>|`` over the (centred) units x_j of the
    weighting layer, h_i its unit-norm canonical variate; weights are normalised to sum to 1. The measure
    is asymmetric: `weights_from` picks the layer whose units define the weights.

    Args:
        acts_a, acts_b, eps, batch_size: as for :func:`cca`.
        keep: optional SVD step as in :func:`svcca` (None: none, as in the paper).
        weights_from: "a" or "b".

    Returns:
        A :class:`CCAResult`; ``.value`` is the PWCCA similarity, ``.weights`` the projection weights.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=(500, 4)); r = pwcca(a, a[:, ::-1] * 2)
        >>> round(r.value, 6)
        1.0
    """
    return _run(_sides(acts_a, acts_b, batch_size), keep, eps, "pwcca", weights_from)


def cca_from_moments(moments: StreamingMoments, keep=None, eps: float = 0.0, method: str = "cca",
                     weights_from: str = "a") -> CCAResult:
    """CCA, SVCCA or PWCCA from an accumulator already fed with both layers (one pass serves all three).

    Args:
        moments: a :class:`StreamingMoments` with full covariances, updated with (a, b) batches.
        keep: None for CCA/PWCCA, the SVD step for SVCCA.
        eps: ridge regulariser as in :func:`cca`.
        method: "cca", "svcca" or "pwcca".
        weights_from: PWCCA's weighting layer.

    Returns:
        A :class:`CCAResult`.

    Example:
        >>> m = StreamingMoments().update(np.eye(6)[:, :2] + np.arange(6)[:, None], np.eye(6)[:, 2:4])
        >>> cca_from_moments(m).corr.shape
        (2,)
    """
    if method not in ("cca", "svcca", "pwcca"):
        raise InputError(f"method must be 'cca', 'svcca' or 'pwcca', got {method!r}")
    return _run(_sides_from_moments(moments), keep, eps, method, weights_from if method == "pwcca" else None)
