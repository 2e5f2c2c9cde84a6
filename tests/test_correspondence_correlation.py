"""Streamed unit-by-unit correlation (Li et al. 2016) against NumPy's corrcoef, dead units, bad input."""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from ipynetviz.engine.errors import InputError, IpynetvizError
from ipynetviz.methods.correspondence import (SampleCountError, SpatialSizeError, StreamingCorrelation,
                                              StreamingMoments, correlation)
from ipynetviz.methods.correspondence._inputs import align_spatial, flatten_positions

torch.set_num_threads(2)


def related(n=600, ca=7, cb=5, seed=0):
    """Two sets of units sharing latent factors, with different scales and offsets."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    a = z @ rng.normal(size=(4, ca)) + rng.normal(size=(n, ca)) * 0.5 + rng.normal(size=ca) * 3
    b = np.maximum(z @ rng.normal(size=(4, cb)) + rng.normal(size=(n, cb)), 0) * rng.uniform(0.1, 10, size=cb)
    return a, b


def corrcoef_block(a, b):
    return np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1]:]


def test_equals_numpy_corrcoef_in_batches():
    a, b = related()
    r = correlation(a, b, batch_size=37)
    np.testing.assert_allclose(r.corr, corrcoef_block(a, b), atol=1e-10)
    assert r.corr.shape == (7, 5) and r.n_samples == 600 and not r.within
    np.testing.assert_allclose(r.std_b, b.std(0), rtol=1e-10)
    np.testing.assert_allclose(r.mean_a, a.mean(0), rtol=1e-10)
    assert r.to_numpy() is r.corr


def test_batch_size_does_not_change_the_result():
    a, b = related(n=300)
    one = correlation(a, b, batch_size=300).corr
    for bs in (1, 2, 299):
        np.testing.assert_allclose(correlation(a, b, batch_size=bs).corr, one, atol=1e-12)


def test_iterable_of_batch_pairs_and_accumulator_match():
    a, b = related()
    batches = [(torch.from_numpy(a[i:i + 100]).float(), torch.from_numpy(b[i:i + 100]).float())
               for i in range(0, 600, 100)]
    r = correlation(iter(batches))
    ref = corrcoef_block(np.concatenate([x for x, _ in batches]).astype(np.float64),
                         np.concatenate([y for _, y in batches]).astype(np.float64))
    np.testing.assert_allclose(r.corr, ref, atol=1e-5)
    acc = StreamingCorrelation()
    for x, y in batches:
        acc.update(x, y)
    np.testing.assert_allclose(acc.result().corr, r.corr, atol=1e-12)


def test_callers_arrays_are_not_modified():
    a, b = related()
    a0, b0 = a.copy(), b.copy()
    correlation(a, b)
    ta = torch.from_numpy(a)
    correlation(ta, ta)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_within_net_correlation():
    a, _ = related()
    r = correlation(a, batch_size=50)
    assert r.within and r.corr.shape == (7, 7)
    np.testing.assert_allclose(r.corr, np.corrcoef(a.T), atol=1e-10)
    np.testing.assert_array_equal(np.diag(r.corr), np.ones(7))
    r2 = correlation([a[:300], a[300:]])
    np.testing.assert_allclose(r2.corr, r.corr, atol=1e-12)


def test_large_means_do_not_cancel():
    """Raw sums of squares would lose ~all digits here; the pairwise merge keeps them."""
    rng = np.random.default_rng(1)
    a = 1e7 + rng.normal(size=(2000, 3))
    b = a[:, :2] * 0.5 + rng.normal(size=(2000, 2)) - 3e6
    np.testing.assert_allclose(correlation(a, b, batch_size=64).corr, corrcoef_block(a, b), atol=1e-8)


def test_conv_maps_every_position_is_a_sample():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 4, 5, 3)).astype(np.float32)
    b = np.tanh(a[:, :3] * 2 + rng.normal(size=(6, 3, 5, 3))).astype(np.float32)
    fa, fb = flatten_positions(a), flatten_positions(b)
    assert fa.shape == (6 * 5 * 3, 4)
    # row (n*H + y)*W + x is image n at (y, x)
    assert fa[(2 * 5 + 4) * 3 + 1, 3] == a[2, 3, 4, 1]
    r = correlation(torch.from_numpy(a), torch.from_numpy(b), batch_size=4)
    np.testing.assert_allclose(r.corr, corrcoef_block(fa.astype(np.float64), fb.astype(np.float64)), atol=1e-5)
    assert r.n_samples == 90
    tflat = flatten_positions(torch.from_numpy(a))
    np.testing.assert_array_equal(tflat.numpy(), fa)


def test_dead_units_are_reported_not_spread():
    a, b = related(n=400)
    a[:, 2] = 0.0                      # a dead ReLU
    b[:, 4] = 3.25                     # constant, non-zero
    r = correlation(a, b, batch_size=33)
    assert r.dead_a.tolist() == [False, False, True, False, False, False, False]
    assert r.dead_b.tolist() == [False, False, False, False, True]
    assert np.isnan(r.corr[2]).all() and np.isnan(r.corr[:, 4]).all()
    live = np.ix_(~r.dead_a, ~r.dead_b)
    assert not np.isnan(r.corr[live]).any()
    np.testing.assert_allclose(r.corr[live], corrcoef_block(a[:, ~r.dead_a], b[:, ~r.dead_b]), atol=1e-10)
    w = correlation(a)
    assert np.isnan(w.corr[2]).all() and np.isnan(w.corr[:, 2]).all() and np.isnan(w.corr).sum() == 13


def test_constant_with_rounding_is_dead_but_tiny_scale_is_live():
    rng = np.random.default_rng(3)
    a = np.c_[np.full(500, 0.1), rng.normal(size=500) * 1e-6]
    r = correlation(a, rng.normal(size=(500, 2)), batch_size=7)
    assert r.dead_a.tolist() == [True, False]


def test_mismatched_samples_and_spatial_sizes_raise_clear_errors():
    a, b = related()
    with pytest.raises(SampleCountError, match="600 samples but B has 599"):
        correlation(a, b[:599])
    assert issubclass(SampleCountError, IpynetvizError) and issubclass(SampleCountError, ValueError)
    with pytest.raises(SpatialSizeError, match="align_spatial"):
        correlation(np.zeros((2, 3, 8, 8)), np.zeros((2, 3, 4, 4)))
    with pytest.raises(InputError, match="units but earlier batches had 7"):
        correlation([(a[:10], b[:10]), (a[10:20, :6], b[10:20])])
    with pytest.raises(InputError, match="NaN"):
        bad = a.copy(); bad[5, 1] = np.nan
        correlation(bad, b)
    with pytest.raises(InputError, match="at least 2 samples"):
        correlation(a[:1], b[:1])
    with pytest.raises(InputError, match="same kind of batch"):
        correlation([(a[:10], b[:10]), a[10:20]])
    with pytest.raises(InputError, match="shape"):
        correlation(np.zeros(5), np.zeros(5))
    with pytest.raises(SampleCountError, match="empty"):
        correlation(iter([]))


def test_align_spatial_resize_and_pool():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)
    b = rng.normal(size=(3, 5, 8, 8)).astype(np.float32)
    a2, b2 = align_spatial(a, b, mode="resize")
    assert a2.shape == (3, 2, 8, 8) and b2.shape == (3, 5, 8, 8)
    np.testing.assert_array_equal(b2.numpy(), b)
    # bilinear upsampling x2 with half-pixel centres: the output at (1, 1) averages inputs (0,0),(0,1),(1,0),(1,1)
    w = np.array([0.75, 0.25])
    np.testing.assert_allclose(a2[0, 0, 1, 1].item(), w @ a[0, 0, :2, :2] @ w, rtol=1e-5)
    a3, b3 = align_spatial(a, b, mode="pool")
    assert b3.shape == (3, 5, 4, 4)
    np.testing.assert_allclose(b3[1, 2, 3, 0].item(), b[1, 2, 6:8, 0:2].mean(), rtol=1e-5)
    r = correlation(*align_spatial(a, b, mode="pool"))
    assert r.n_samples == 3 * 16
    with pytest.raises(InputError, match="'resize' or 'pool'"):
        align_spatial(a, b, mode="crop")


def test_moments_merge_equals_whole_covariance():
    a, b = related(n=500)
    m = StreamingMoments()
    for i in range(0, 500, 70):
        m.update(a[i:i + 70], b[i:i + 70])
    saa, sbb, sab = (t.numpy() for t in m.covariances())
    full = np.cov(np.c_[a, b].T, bias=True)
    np.testing.assert_allclose(saa, full[:7, :7], atol=1e-10)
    np.testing.assert_allclose(sbb, full[7:, 7:], atol=1e-10)
    np.testing.assert_allclose(sab, full[:7, 7:], atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_streams_on_the_device_of_the_data():
    a, b = related()
    ta, tb = torch.from_numpy(a).float().cuda(), torch.from_numpy(b).float().cuda()
    acc = StreamingCorrelation()
    acc.update(ta[:300], tb[:300]).update(ta[300:], tb[300:])
    assert acc.m2_ab.device.type == "cuda" and acc.m2_ab.dtype == torch.float64
    np.testing.assert_allclose(acc.result().corr, corrcoef_block(a.astype(np.float32).astype(np.float64),
                                                                 b.astype(np.float32).astype(np.float64)),
                               atol=1e-5)


def test_docstring_examples_run():
    import importlib
    failed = attempted = 0
    for name in ("_inputs", "cca", "cka", "correlation", "dft", "matching", "moments", "regression"):
        mod = importlib.import_module(f"ipynetviz.methods.correspondence.{name}")
        res = doctest.testmod(mod, extraglobs={"np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
        failed, attempted = failed + res.failed, attempted + res.attempted
    assert failed == 0 and attempted > 20
