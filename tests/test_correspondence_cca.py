"""CCA, SVCCA, PWCCA and DFT-SVCCA against implementations written here from the papers' definitions."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from ipynetviz.engine.errors import InputError
from ipynetviz.methods.correspondence import (SpatialSizeError, StreamingMoments, UndefinedSimilarityError, cca,
                                              dft_svcca, pwcca, svcca)
from ipynetviz.methods.correspondence.cca import cca_from_moments
cca_module = importlib.import_module("ipynetviz.methods.correspondence.cca")  # the package's `cca` is the function

torch.set_num_threads(2)


# ---- references, from the definitions -------------------------------------------------------------------
def ref_cca(x, y, eps_a=0.0, eps_b=0.0):
    """Canonical correlations: square roots of the eigenvalues of Σxx⁻¹ Σxy Σyy⁻¹ Σyx."""
    x, y = x - x.mean(0), y - y.mean(0)
    n = len(x)
    sxx = x.conj().T @ x / n + eps_a * np.eye(x.shape[1])
    syy = y.conj().T @ y / n + eps_b * np.eye(y.shape[1])
    sxy = x.conj().T @ y / n
    mat = np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.conj().T)
    ev = np.sort(np.linalg.eigvals(mat).real)[::-1][: min(x.shape[1], y.shape[1])]
    return np.sqrt(np.clip(ev, 0, 1))


def ref_pca_reduce(x, keep):
    """Project centred x onto its top principal directions (a variance fraction or k of them)."""
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    if isinstance(keep, float):
        frac = np.cumsum(s ** 2) / np.sum(s ** 2)
        keep = int(np.searchsorted(frac, keep - 1e-12) + 1)
    return x @ vt[:keep].T


def ref_pwcca(x, y):
    """Morcos et al. 2018: weight_i ∝ Σ_j |<h_i, x_j>| with h_i the unit-norm canonical variates of x."""
    x, y = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = x.T @ x, y.T @ y, x.T @ y
    mat = np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T)
    ev, vec = np.linalg.eig(mat)
    order = np.argsort(-ev.real)[: min(x.shape[1], y.shape[1])]
    rho = np.sqrt(np.clip(ev.real[order], 0, 1))
    h = x @ vec.real[:, order]
    h /= np.linalg.norm(h, axis=0)
    alpha = np.abs(h.T @ x).sum(1)
    return float(np.sum(alpha * rho) / alpha.sum()), alpha / alpha.sum(), rho


def pair(n=400, ca=6, cb=5, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    a = z @ rng.normal(size=(4, ca)) + noise * rng.normal(size=(n, ca)) + rng.normal(size=ca) * 4
    b = np.tanh(z @ rng.normal(size=(4, cb))) + noise * rng.normal(size=(n, cb))
    return a, b


# ---- CCA ------------------------------------------------------------------------------------------------
def test_cca_equals_eigenvalue_definition_both_paths():
    a, b = pair()
    r = cca(a, b)
    assert r.method == "cca" and r.corr.shape == (5,) and r.dims_a == 6 and r.dims_b == 5
    np.testing.assert_allclose(r.corr, ref_cca(a, b), atol=1e-8)
    assert np.all(np.diff(r.corr) <= 0) and r.mean == pytest.approx(r.corr.mean()) == pytest.approx(r.value)
    assert r.top(2) == pytest.approx(r.corr[:2].mean())
    streamed = cca(iter([(a[i:i + 64], b[i:i + 64]) for i in range(0, 400, 64)]))   # covariance path
    np.testing.assert_allclose(streamed.corr, r.corr, atol=1e-8)
    m = StreamingMoments().update(a, b)
    np.testing.assert_allclose(cca_from_moments(m).corr, r.corr, atol=1e-8)


def test_cca_invariant_to_invertible_linear_maps():
    a, b = pair(seed=1)
    rng = np.random.default_rng(9)
    ma, mb = rng.normal(size=(6, 6)), rng.normal(size=(5, 5))
    np.testing.assert_allclose(cca(a @ ma + 3, b @ mb - 1).corr, cca(a, b).corr, atol=1e-8)
    np.testing.assert_allclose(cca(b, a).corr, cca(a, b).corr, atol=1e-10)


def test_regularised_cca_matches_ridge_definition():
    a, b = pair(seed=2)
    eps = 0.1
    ea = eps * np.trace(np.cov(a.T, bias=True)) / 6
    eb = eps * np.trace(np.cov(b.T, bias=True)) / 5
    r = cca(a, b, eps=eps)
    np.testing.assert_allclose(r.corr, ref_cca(a, b, ea, eb), atol=1e-8)
    assert np.all(r.corr < cca(a, b).corr + 1e-12)
    np.testing.assert_allclose(cca_from_moments(StreamingMoments().update(a, b), eps=eps).corr, r.corr, atol=1e-8)


def test_redundant_and_dead_units_reduce_to_the_rank():
    a, b = pair(seed=3)
    a2 = np.c_[a, a[:, 0] + 2 * a[:, 1], np.zeros(400)]         # one collinear unit, one dead unit
    r = cca(a2, b)
    assert r.dims_a == 6
    np.testing.assert_allclose(r.corr, ref_cca(a, b), atol=1e-8)
    np.testing.assert_allclose(cca_from_moments(StreamingMoments().update(a2, b)).corr, r.corr, atol=1e-6)


def test_too_few_samples_is_undefined_and_says_what_to_do():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 20)), rng.normal(size=(30, 20))
    with pytest.raises(UndefinedSimilarityError, match="linear_cka") as err:
        cca(a, b)
    assert "30 samples" in str(err.value) and "more samples" in str(err.value)
    r = svcca(a, b, keep=5)                                        # fewer directions: defined again
    assert r.dims_a == 5 and r.corr.size == 5
    assert cca(a, b, eps=0.5).corr.max() < 1.0                     # regularised: defined
    with pytest.raises(UndefinedSimilarityError, match="no varying unit"):
        cca(np.ones((50, 3)), rng.normal(size=(50, 2)))
    with pytest.raises(InputError, match="acts_b"):
        cca(a)
    with pytest.raises(InputError, match="keep"):
        svcca(a, b, keep=1.5)
    with pytest.raises(InputError, match="keep"):
        svcca(a, b, keep=0)


# ---- SVCCA ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0.99, 0.9, 3])
def test_svcca_is_pca_then_cca(keep):
    rng = np.random.default_rng(5)
    z = rng.normal(size=(600, 3)) * [5.0, 3.0, 2.0]
    a = z @ rng.normal(size=(3, 10)) + 0.3 * rng.normal(size=(600, 10))
    b = np.tanh(z[:, :2] @ rng.normal(size=(2, 8))) + 0.2 * rng.normal(size=(600, 8))
    r = svcca(a, b, keep=keep)
    ra, rb = ref_pca_reduce(a, keep), ref_pca_reduce(b, keep)
    assert (r.dims_a, r.dims_b) == (ra.shape[1], rb.shape[1])
    np.testing.assert_allclose(r.corr, ref_cca(ra, rb), atol=1e-8)
    m = StreamingMoments()
    for i in range(0, 600, 128):
        m.update(a[i:i + 128], b[i:i + 128])
    np.testing.assert_allclose(cca_from_moments(m, keep=keep, method="svcca").corr, r.corr, atol=1e-7)


def test_svcca_finds_the_shared_subspace_despite_noise_units():
    rng = np.random.default_rng(6)
    z = rng.normal(size=(2000, 3)) * 10
    a = np.c_[z @ rng.normal(size=(3, 8)), rng.normal(size=(2000, 4)) * 0.05]
    b = np.c_[z @ rng.normal(size=(3, 6)), rng.normal(size=(2000, 6)) * 0.05]
    assert svcca(a, b, keep=0.99).mean > 0.999
    assert cca(a, b).mean < 0.6                                    # the noise directions drag plain CCA down


# ---- PWCCA ----------------------------------------------------------------------------------------------
def test_pwcca_matches_the_papers_weighting():
    for seed in (7, 8):
        a, b = pair(n=500, ca=4, cb=6, seed=seed)
        value, weights, rho = ref_pwcca(a, b)
        r = pwcca(a, b)
        np.testing.assert_allclose(r.corr, rho, atol=1e-8)
        np.testing.assert_allclose(r.weights, weights, atol=1e-8)
        assert r.value == pytest.approx(value, abs=1e-10) and r.method == "pwcca"
        vb, wb, _ = ref_pwcca(b, a)
        assert pwcca(a, b, weights_from="b").value == pytest.approx(vb, abs=1e-10)
        m = StreamingMoments().update(a, b)
        assert cca_from_moments(m, method="pwcca").value == pytest.approx(value, abs=1e-8)


# ---- DFT-SVCCA ------------------------------------------------------------------------------------------
def conv_pair(n=20, ca=3, cb=2, h=4, w=4, seed=0):
    """Conv-like maps: circular 3x3 convolutions of shared noise, B a nonlinear function of A plus noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, h, w, generator=g, dtype=torch.float64)
    conv = lambda t, c: torch.nn.functional.conv2d(torch.nn.functional.pad(t, (1, 1, 1, 1), mode="circular"),
                                                   torch.randn(c, t.shape[1], 3, 3, generator=g,
                                                               dtype=torch.float64))
    a = conv(x, ca) + 0.5 * torch.randn(n, ca, h, w, generator=g, dtype=torch.float64)
    b = conv(torch.tanh(a), cb) + 0.5 * torch.randn(n, cb, h, w, generator=g, dtype=torch.float64)
    return a, b


def all_circular_shifts(x):
    """Every image at every circular shift: a data set whose statistics are exactly translation invariant."""
    h, w = x.shape[2:]
    return torch.cat([torch.roll(x, (dy, dx), dims=(2, 3)) for dy in range(h) for dx in range(w)])


def test_dft_svcca_equals_full_cca_when_translation_invariance_holds():
    a, b = conv_pair()
    r = dft_svcca(a, b, keep=None)
    assert r.corr.size == 16 * 2 and r.per_frequency.shape == (4, 4, 2) and r.n_samples == 20
    aa, bb = all_circular_shifts(a), all_circular_shifts(b)
    full = ref_cca(aa.reshape(len(aa), -1).numpy(), bb.reshape(len(bb), -1).numpy())   # 48 x 32 units
    np.testing.assert_allclose(r.corr, full, atol=1e-7)


def test_dft_svcca_per_frequency_is_a_complex_cca_over_channels():
    a, b = conv_pair(n=60, ca=5, cb=4, h=6, w=5, seed=1)
    r = dft_svcca(a, b, keep=0.9)
    fa = torch.fft.fft2(a - a.mean(dim=(0, 2, 3), keepdim=True), norm="ortho").numpy()
    fb = torch.fft.fft2(b - b.mean(dim=(0, 2, 3), keepdim=True), norm="ortho").numpy()
    for (u, v) in [(0, 0), (1, 2), (5, 4)]:
        xa, xb = fa[:, :, u, v], fb[:, :, u, v]

        def reduce(x):  # no centring: a non-zero frequency has mean zero under translation invariance
            _, s, vh = np.linalg.svd(x, full_matrices=False)
            k = int(np.searchsorted(np.cumsum(s ** 2) / np.sum(s ** 2), 0.9 - 1e-12) + 1)
            return x @ vh[:k].conj().T

        ra, rb = reduce(xa), reduce(xb)
        # complex CCA from the definition, without centring
        saa, sbb, sab = ra.conj().T @ ra, rb.conj().T @ rb, ra.conj().T @ rb
        ev = np.linalg.eigvals(np.linalg.solve(saa, sab) @ np.linalg.solve(sbb, sab.conj().T)).real
        ref = np.sqrt(np.clip(np.sort(ev)[::-1][: min(ra.shape[1], rb.shape[1])], 0, 1))
        got = r.per_frequency[u, v]
        np.testing.assert_allclose(got[~np.isnan(got)], ref, atol=1e-8)


def test_dft_svcca_invariant_to_channel_mixing_and_aligns_sizes():
    a, _ = conv_pair(n=30, ca=4)
    mix = torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    r = dft_svcca(a, torch.einsum("dc,nchw->ndhw", mix, a), keep=None)
    np.testing.assert_allclose(r.corr, 1.0, atol=1e-8)
    big = torch.nn.functional.interpolate(a, size=(8, 8), mode="bilinear", align_corners=False)
    with pytest.raises(SpatialSizeError, match="align='resize'"):
        dft_svcca(a, big)
    resized = dft_svcca(a, big, keep=None, align="resize")
    np.testing.assert_allclose(resized.corr, 1.0, atol=1e-8)        # the same map, resized back
    assert resized.per_frequency.shape[:2] == (8, 8)
    assert dft_svcca(a, big, align="pool").per_frequency.shape[:2] == (4, 4)
    with pytest.raises(UndefinedSimilarityError, match="more images"):
        dft_svcca(a[:5], a[:5])
    with pytest.raises(InputError, match="conv maps"):
        dft_svcca(a.reshape(30, -1), a.reshape(30, -1))


def test_dft_svcca_chunking_and_ridge():
    a, b = conv_pair(n=40, ca=4, cb=3, seed=4)
    whole = dft_svcca(a, b, keep=None)
    np.testing.assert_allclose(dft_svcca(a, b, keep=None, batch_size=3).corr, whole.corr, atol=1e-10)
    ridge = dft_svcca(a, b, keep=None, eps=0.5)
    assert ridge.corr.size == whole.corr.size and np.all(ridge.corr <= whole.corr.max() + 1e-12)
    assert ridge.mean < whole.mean
    # per frequency, the ridge term is eps times that frequency's mean channel variance (definition, complex)
    fa = torch.fft.fft2(a - a.mean(dim=(0, 2, 3), keepdim=True), norm="ortho").numpy()[:, :, 1, 2]
    fb = torch.fft.fft2(b - b.mean(dim=(0, 2, 3), keepdim=True), norm="ortho").numpy()[:, :, 1, 2]
    n = len(fa)
    saa, sbb, sab = fa.conj().T @ fa / n, fb.conj().T @ fb / n, fa.conj().T @ fb / n
    saa += 0.5 * np.trace(saa).real / 4 * np.eye(4)
    sbb += 0.5 * np.trace(sbb).real / 3 * np.eye(3)
    ev = np.linalg.eigvals(np.linalg.solve(saa, sab) @ np.linalg.solve(sbb, sab.conj().T)).real
    np.testing.assert_allclose(ridge.per_frequency[1, 2], np.sqrt(np.sort(ev)[::-1][:3]), atol=1e-8)


def test_data_path_threshold_does_not_change_results(monkeypatch):
    a, b = pair(seed=11)
    small = svcca(a, b, keep=0.95)
    monkeypatch.setattr(cca_module, "_DATA_PATH_MAX_VALUES", 10)     # force the covariance path
    np.testing.assert_allclose(svcca(a, b, keep=0.95).corr, small.corr, atol=1e-8)
