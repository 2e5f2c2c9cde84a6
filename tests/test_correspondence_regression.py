"""Predicting units of A from units of B: against scikit-learn and hand-derived cases."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Lasso, LinearRegression
from sklearn.preprocessing import StandardScaler

from ipynetviz.engine.errors import InputError
from ipynetviz.methods.correspondence import SampleCountError, regression


def layers(n=800, ca=4, cb=9, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(n, cb)) @ rng.normal(size=(cb, cb)) * 0.5 + rng.normal(size=cb)
    w = rng.normal(size=(cb, ca)) * (rng.random(size=(cb, ca)) < 0.4)
    a = b @ w + rng.normal(size=(n, ca)) * rng.uniform(0.2, 2.0, size=ca) + 7
    return a, b


def test_least_squares_matches_sklearn_on_standardised_units():
    a, b = layers()
    r = regression(a, b, batch_size=101)
    bs = StandardScaler().fit_transform(b)
    as_ = StandardScaler().fit_transform(a)
    for i in range(a.shape[1]):
        lr = LinearRegression().fit(bs, as_[:, i])
        mse = np.mean((as_[:, i] - lr.predict(bs)) ** 2)
        assert r.loss[i] == pytest.approx(mse, abs=1e-9)
        assert r.loss[i] == pytest.approx(1 - lr.score(bs, as_[:, i]), abs=1e-9)  # MSE / variance
        np.testing.assert_allclose(r.coef[i], lr.coef_, atol=1e-8)
    assert r.alpha is None and r.n_iter == 0 and r.units_used.tolist() == [9] * 4


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.3])
def test_lasso_matches_sklearn(alpha):
    a, b = layers(seed=1)
    r = regression(a, b, l1=alpha)
    assert r.converged and r.alpha == alpha
    bs = StandardScaler().fit_transform(b)
    as_ = StandardScaler().fit_transform(a)
    for i in range(a.shape[1]):
        la = Lasso(alpha=alpha, tol=1e-12, max_iter=100_000).fit(bs, as_[:, i])
        np.testing.assert_allclose(r.coef[i], la.coef_, atol=1e-6)
        assert r.units_used[i] == np.count_nonzero(la.coef_)
        assert r.loss[i] == pytest.approx(np.mean((as_[:, i] - la.predict(bs)) ** 2), abs=1e-7)
    lsq = regression(a, b)
    assert np.all(r.loss >= lsq.loss - 1e-12)                 # sparsity costs loss...
    assert r.mean_units_used < lsq.mean_units_used            # ...and buys fewer units


def test_hand_derived_cases():
    rng = np.random.default_rng(2)
    b = rng.normal(size=(500, 3))
    bc = b - b.mean(0)
    exact = 2 * b[:, :1] - b[:, 2:3] + 5
    noise = rng.normal(size=(500, 1))
    noise = noise - noise.mean()
    orthogonal = noise - bc @ np.linalg.lstsq(bc, noise, rcond=None)[0]   # zero sample correlation with B
    r = regression(np.c_[exact, orthogonal], b)
    assert r.loss[0] == pytest.approx(0.0, abs=1e-12)
    assert r.loss[1] == pytest.approx(1.0, abs=1e-12)         # no correlation -> 1.0
    # One predictor with correlation rho: lasso gives w = sign(rho) max(|rho| - alpha, 0) and
    # loss 1 - 2 rho w + w^2 (standardised units).
    y = b[:, :1] + rng.normal(size=(500, 1))
    rho = np.corrcoef(y[:, 0], b[:, 0])[0, 1]
    for alpha in (0.1, 0.5, 0.9):
        w = np.sign(rho) * max(abs(rho) - alpha, 0.0)
        one = regression(y, b[:, :1], l1=alpha)
        assert one.coef[0, 0] == pytest.approx(w, abs=1e-12)
        assert one.loss[0] == pytest.approx(1 - 2 * rho * w + w * w, abs=1e-12)
        assert one.units_used[0] == (w != 0)


def test_large_alpha_uses_no_units():
    a, b = layers(seed=3)
    r = regression(a, b, l1=10.0)
    assert r.units_used.tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(r.loss, 1.0)


def test_dead_units_and_conv_maps():
    rng = np.random.default_rng(4)
    b = rng.normal(size=(20, 5, 4, 4))
    b[:, 3] = 0.0                                                   # dead B unit
    a = np.stack([b[:, 0] - b[:, 1], np.full((20, 4, 4), 2.0), np.tanh(b[:, 2])], axis=1)  # A unit 1 dead
    r = regression(a, b, l1=None, batch_size=3)
    assert r.dead_a.tolist() == [False, True, False] and r.dead_b.tolist() == [False, False, False, True, False]
    assert np.isnan(r.loss[1]) and r.units_used[1] == 0
    assert r.loss[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(r.coef[:, 3] == 0) and r.units_used[0] == 4
    fa = np.moveaxis(a, 1, -1).reshape(-1, 3)
    fb = np.moveaxis(b, 1, -1).reshape(-1, 5)[:, [0, 1, 2, 4]]
    fit = LinearRegression().fit(fb, fa[:, 2])
    assert r.loss[2] == pytest.approx(1 - fit.score(fb, fa[:, 2]), abs=1e-9)
    assert r.n_samples == 320 and r.mean_loss == pytest.approx(np.nanmean(r.loss))


def test_bad_input():
    a, b = layers()
    with pytest.raises(SampleCountError):
        regression(a, b[:10])
    with pytest.raises(InputError, match="acts_b"):
        regression(a)
    with pytest.raises(InputError, match="non-negative"):
        regression(a, b, l1=-1.0)
