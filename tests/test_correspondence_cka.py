"""Linear CKA against HSIC with an explicit centring matrix, and its invariances (Kornblith et al. 2019)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ipynetviz.methods.correspondence import SampleCountError, StreamingMoments, UndefinedSimilarityError, linear_cka
from ipynetviz.methods.correspondence.cka import linear_cka_from_moments


def hsic(k, l_):
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l_ @ h) / (n - 1) ** 2


def ref_cka(x, y):
    k, l_ = x @ x.T, y @ y.T
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def pair(n=120, ca=10, cb=7, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    a = z @ rng.normal(size=(3, ca)) + rng.normal(size=(n, ca)) + 2
    b = np.maximum(z @ rng.normal(size=(3, cb)), 0) + 0.5 * rng.normal(size=(n, cb))
    return a, b


@pytest.mark.parametrize("shape", [(120, 10, 7), (15, 40, 30)])   # feature form and Gram form
def test_equals_hsic_definition(shape):
    a, b = pair(*shape)
    assert linear_cka(a, b) == pytest.approx(ref_cka(a, b), abs=1e-10)
    m = StreamingMoments()
    for i in range(0, shape[0], 8):
        m.update(a[i:i + 8], b[i:i + 8])
    assert linear_cka_from_moments(m) == pytest.approx(ref_cka(a, b), abs=1e-10)
    assert linear_cka(iter([(a[:7], b[:7]), (a[7:], b[7:])])) == pytest.approx(ref_cka(a, b), abs=1e-10)


def test_invariances():
    a, b = pair(seed=1)
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    base = linear_cka(a, b)
    assert linear_cka(a @ q * 3.5 + 1, b) == pytest.approx(base, abs=1e-10)      # orthogonal, isotropic scale
    assert linear_cka(b, a) == pytest.approx(base, abs=1e-12)                    # symmetric
    stretched = a * rng.uniform(0.1, 10, size=10)                                # not invariant to this
    assert abs(linear_cka(stretched, b) - base) > 1e-3
    assert linear_cka(a, a) == pytest.approx(1.0, abs=1e-12)
    assert 0.0 <= base <= 1.0


def test_conv_maps_and_tensors():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 4, 5, 5, generator=g)
    b = torch.relu(torch.einsum("dc,nchw->ndhw", torch.randn(3, 4, generator=g), a))
    fa = a.permute(0, 2, 3, 1).reshape(-1, 4).double().numpy()
    fb = b.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    assert linear_cka(a, b) == pytest.approx(ref_cka(fa, fb), abs=1e-6)


def test_defined_with_fewer_samples_than_units_and_errors():
    a, b = pair(n=10, ca=50, cb=60)
    assert 0 < linear_cka(a, b) <= 1
    with pytest.raises(SampleCountError):
        linear_cka(a, b[:9])
    with pytest.raises(UndefinedSimilarityError, match="no varying unit"):
        linear_cka(np.ones((10, 3)), b)
