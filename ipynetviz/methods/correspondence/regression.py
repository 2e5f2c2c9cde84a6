"""Predicting each unit of A from all units of B: least squares and sparse (L1) linear regression.

Li et al. (2016) ask whether a unit of one network is a *linear combination* of a few units of another,
rather than a copy of one. Both layers are standardised (zero mean, unit variance per unit), so the
mean squared error of a prediction is the normalised square loss: MSE / variance of the unit, 1.0 for
no linear relation at all. Everything is computed from streamed moments, so it scales to all positions
of many images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipynetviz.engine.errors import InputError

from .correlation import dead_units
from .moments import StreamingMoments, accumulate

__all__ = ["RegressionResult", "regression"]


@dataclass(frozen=True, eq=False)
class RegressionResult:
    """Per-unit fit of A's units from B's units.

    Attributes:
        loss: (Ca,) normalised square loss (MSE / variance) of each A unit, in-sample; NaN for dead A units.
        units_used: (Ca,) number of B units with a non-zero coefficient in each prediction.
        coef: (Ca, Cb) coefficients on standardised units (zero for dead B units).
        alpha: the L1 weight, or None for least squares.
        dead_a, dead_b: constant units (excluded).
        n_samples: samples the fit used.
        n_iter: coordinate-descent sweeps (0 for least squares).
        converged: False if the L1 fit hit `max_iter`.
    """

    loss: np.ndarray
    units_used: np.ndarray
    coef: np.ndarray
    alpha: float | None
    dead_a: np.ndarray
    dead_b: np.ndarray
    n_samples: int
    n_iter: int
    converged: bool

    @property
    def mean_loss(self) -> float:
        """Mean normalised square loss over the live A units."""
        return float(np.nanmean(self.loss)) if (~self.dead_a).any() else float("nan")

    @property
    def mean_units_used(self) -> float:
        """Mean number of B units per prediction, over the live A units."""
        return float(self.units_used[~self.dead_a].mean()) if (~self.dead_a).any() else float("nan")

    def to_numpy(self) -> np.ndarray:
        """The (Ca,) losses."""
        return self.loss


def _lasso_gram(gram: np.ndarray, xy: np.ndarray, alpha: float, max_iter: int, tol: float):
    """Coordinate descent for min_w ½ wᵀGw − xyᵀw + α‖w‖₁, all targets (columns of `xy`) at once.

    With G = XᵀX/n and xy = Xᵀy/n this is scikit-learn's Lasso objective (1/2n)‖y − Xw‖² + α‖w‖₁.
    """
    p = gram.shape[0]
    w = np.zeros_like(xy)
    resid = xy.copy()  # xy - G @ w, kept up to date
    diag = np.diag(gram).copy()
    for sweep in range(1, max_iter + 1):
        max_change = 0.0
        for j in range(p):
            rho = resid[j] + diag[j] * w[j]
            new = np.sign(rho) * np.maximum(np.abs(rho) - alpha, 0.0) / diag[j]
            delta = new - w[j]
            change = np.abs(delta).max()
            if change > 0.0:
                resid -= np.outer(gram[:, j], delta)
                w[j] = new
                max_change = max(max_change, change)
        if max_change <= tol:
            return w, sweep, True
    return w, max_iter, False


def regression(acts_a, acts_b=None, l1: float | None = None, batch_size: int | None = None,
               max_iter: int = 5000, tol: float = 1e-9, dead_rtol: float = 1e-12) -> RegressionResult:
    """Predict every unit of A linearly from all units of B; report the loss and the units used.

    Both layers are standardised first, so with ``l1=alpha`` the fit minimises scikit-learn's Lasso
    objective ``(1/2n)·‖a − B·w‖² + alpha·‖w‖₁`` for each standardised A unit ``a`` (solved by
    coordinate descent on B's correlation matrix); ``l1=None`` (or 0) is ordinary least squares.

    Args:
        acts_a: activations of A, (n_samples, Ca) or (N, Ca, H, W); or an iterable of (a, b) batches.
        acts_b: activations of B for the same inputs.
        l1: the L1 weight alpha on standardised units, or None for least squares.
        batch_size: leading items per streamed chunk of in-memory arrays.
        max_iter, tol: coordinate-descent sweeps and the largest coefficient change that stops them.
        dead_rtol: relative spread under which a unit is constant (see ``StreamingCorrelation.result``).

    Returns:
        A :class:`RegressionResult`: in-sample normalised square loss per A unit (1.0 = no linear
        relation) and non-zero coefficients per prediction.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> b = rng.normal(size=(2000, 5)); a = b[:, :1] * 3 + b[:, 1:2]
        >>> r = regression(a, b)
        >>> round(r.mean_loss, 8), int(r.units_used[0])
        (0.0, 5)
    """
    if l1 is not None and not (np.isfinite(l1) and l1 >= 0):
        raise InputError(f"l1 must be None (least squares) or a non-negative number, got {l1!r}")
    acc = accumulate(StreamingMoments(full_a=False, full_b=True), acts_a, acts_b, batch_size)
    if acc.within:
        raise InputError("regression predicts A from another layer B: pass acts_b (or (a, b) batch pairs)")
    acc.check()
    var_a, var_b = (v.cpu().numpy() for v in acc.variances())
    std_a, std_b = np.sqrt(var_a), np.sqrt(var_b)
    dead_a = dead_units(acc.mean_a.cpu(), acc.variances()[0].cpu().sqrt(), dead_rtol).numpy()
    dead_b = dead_units(acc.mean_b.cpu(), acc.variances()[1].cpu().sqrt(), dead_rtol).numpy()
    live_a, live_b = np.flatnonzero(~dead_a), np.flatnonzero(~dead_b)
    ca, cb = dead_a.size, dead_b.size
    loss = np.full(ca, np.nan)
    units = np.zeros(ca, dtype=np.int64)
    coef = np.zeros((ca, cb))
    n_iter, converged = 0, True
    alpha = None if l1 is None or l1 == 0 else float(l1)
    if live_a.size and not live_b.size:
        loss[live_a] = 1.0
    elif live_a.size:
        n = acc.n_samples
        sbb = acc.m2_b.cpu().numpy()[np.ix_(live_b, live_b)] / n
        sab = acc.m2_ab.cpu().numpy()[np.ix_(live_a, live_b)] / n
        gram = sbb / np.outer(std_b[live_b], std_b[live_b])
        xy = (sab / np.outer(std_a[live_a], std_b[live_b])).T  # (Cb_live, Ca_live)
        if alpha is None:
            w = np.linalg.lstsq(gram, xy, rcond=None)[0]
        else:
            w, n_iter, converged = _lasso_gram(gram, xy, alpha, max_iter, tol)
        fit = 1.0 - 2.0 * np.sum(xy * w, axis=0) + np.sum(w * (gram @ w), axis=0)
        loss[live_a] = np.clip(fit, 0.0, None)
        units[live_a] = np.count_nonzero(w, axis=0)
        coef[np.ix_(live_a, live_b)] = w.T
    return RegressionResult(loss=loss, units_used=units, coef=coef, alpha=alpha, dead_a=dead_a, dead_b=dead_b,
                            n_samples=acc.n_samples, n_iter=n_iter, converged=converged)
