"""Parametrizations, robustness transforms, diversity and multifaceted views (issue 13), against independent
references: a brute-force inverse DFT, a hand-computed eigen whitening, loops over Gram matrices, hand-built
transformed pictures, and torch-lucent 0.1.8 where it is installed."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

import ipynetviz as nv
from ipynetviz.engine import Class, Inspector, InputError, Preprocess, SettingError, Unit, hooks_left
from ipynetviz.methods.optimize import (L2, TV, Blur, CenterBias, ClipContribution, ClipNorm, Diversity, Fourier,
                                        Jitter, LogProb, Pad, Pixels, RandomRotate, RandomScale, colour_covariance,
                                        multifaceted, visualize)
from ipynetviz.methods.optimize.diversity import gram_similarity
from ipynetviz.methods.optimize.param import colour_sqrt, fourier_scale
from ipynetviz.methods.optimize.space import PixelSpace
from ipynetviz.methods.optimize.transforms import affine
from tests.conftest import small_cnn


def _space(c=3, h=8, w=6, mean=0.5, std=0.5):
    insp = Inspector(torch.nn.Conv2d(c, 2, 1).double(), transform=Preprocess([mean] * c, [std] * c),
                     input_size=(c, h, w), device="cpu")
    return PixelSpace(insp)


class FixedRng:
    """A stand-in for random.Random that returns given values in order."""

    def __init__(self, *values):
        self.values = list(values)

    def randint(self, a, b):
        return self.values.pop(0)

    def uniform(self, a, b):
        return self.values.pop(0)


# ---------------------------------------------------------------- Fourier
def _brute_irfft2(spec: np.ndarray, h: int, w: int) -> np.ndarray:
    """x[m, n] = sum over the half spectrum of weight * Re(X[k, l] e^{2 pi i (km/h + ln/w)}) / sqrt(hw)."""
    out = np.zeros((h, w))
    for m in range(h):
        for n in range(w):
            total = 0.0
            for k in range(h):
                for l in range(spec.shape[1]):
                    weight = 1.0 if l == 0 or (w % 2 == 0 and l == w // 2) else 2.0
                    total += weight * (spec[k, l] * np.exp(2j * np.pi * (k * m / h + l * n / w))).real
            out[m, n] = total / math.sqrt(h * w)
    return out


def test_fourier_scale_is_one_over_frequency_with_a_floor():
    s = fourier_scale(4, 4, 1.0)
    assert s.shape == (4, 3)
    assert s[0, 0] == pytest.approx(4.0)             # DC: floor 1 / max(h, w)
    assert s[0, 1] == pytest.approx(4.0)             # f = 1/4
    assert s[1, 1] == pytest.approx(1 / math.sqrt(2 / 16))
    assert s[2, 2] == pytest.approx(1 / math.sqrt(0.5))
    assert fourier_scale(4, 4, 2.0)[2, 2] == pytest.approx(2.0)


def test_fourier_forward_matches_a_brute_force_inverse_dft_and_the_inverse_matches_numpy():
    h, w, decay = 5, 6, 1.3
    space = _space(c=1, h=h, w=w)
    bound = Fourier(decay=decay).bind(space, (1, 1, h, w))
    g = torch.Generator().manual_seed(0)
    real = torch.randn(h, w, generator=g, dtype=torch.float64)
    theta = torch.view_as_real(torch.fft.rfft2(real, norm="ortho")).reshape(1, 1, h, w // 2 + 1, 2).clone()
    theta += 0.3 * torch.randn(theta.shape, generator=g, dtype=torch.float64)
    gain = fourier_scale(h, w, decay) / 4
    spec = (theta[0, 0, ..., 0] + 1j * theta[0, 0, ..., 1]).numpy() * gain
    spatial = _brute_irfft2(spec, h, w)
    expected = 1 / (1 + np.exp(-spatial))
    assert np.allclose(bound.to_pixels(theta)[0, 0].numpy(), expected, atol=1e-10)

    p = torch.rand(1, 1, h, w, generator=g, dtype=torch.float64) * 0.9 + 0.05
    logit = np.log(p.numpy() / (1 - p.numpy()))[0, 0]
    ref = np.fft.rfft2(logit, norm="ortho") / gain
    got = bound.from_pixels(p)[0, 0].numpy()
    assert np.allclose(got[..., 0] + 1j * got[..., 1], ref, atol=1e-9)
    assert torch.allclose(bound.to_pixels(bound.from_pixels(p)), p, atol=1e-10)


# ---------------------------------------------------------------- decorrelated colour
def test_colour_covariance_matches_a_hand_loop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 3, 4, 5), dtype=np.uint8)
    px = images.transpose(0, 2, 3, 1).reshape(-1, 3).astype(np.float64) / 255
    mean = px.mean(0)
    cov = sum(np.outer(v - mean, v - mean) for v in px) / (len(px) - 1)
    assert np.allclose(colour_covariance(images), cov)


def test_colour_root_is_the_eigen_square_root_and_decorrelates_the_data():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + 0.1 * np.eye(3)
    vals, vecs = np.linalg.eigh(cov)
    hand = vecs @ np.diag(np.sqrt(vals)) @ vecs.T
    hand /= max(np.linalg.norm(hand[:, j]) for j in range(3))
    root = colour_sqrt(cov, 3)
    assert np.allclose(root, hand)
    assert np.allclose(root @ root.T / (root @ root.T)[0, 0], cov / cov[0, 0])  # a square root, up to scale
    # data drawn with this covariance come out white through the inverse of the root
    z = rng.multivariate_normal(np.zeros(3), cov, size=20000)
    white = z @ np.linalg.inv(root).T
    c = np.cov(white.T)
    assert np.allclose(c / c[0, 0], np.eye(3), atol=0.05)


def test_decorrelated_pixels_mix_colour_then_squash():
    space = _space(c=3, h=2, w=2)
    cov = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
    bound = Pixels(colour=cov).bind(space, (1, 3, 2, 2))
    theta = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    root = colour_sqrt(cov, 3)
    expected = 1 / (1 + np.exp(-np.einsum("cd,dhw->chw", root, theta[0].numpy())))
    assert np.allclose(bound.to_pixels(theta)[0].numpy(), expected)
    assert torch.allclose(bound.from_pixels(bound.to_pixels(theta)), theta, atol=1e-8)


# ---------------------------------------------------------------- transforms
def test_rotation_by_90_degrees_is_rot90_and_zoom_matches_hand_bilinear():
    x = torch.arange(36.0, dtype=torch.float64).view(1, 1, 6, 6)
    assert torch.allclose(RandomRotate(90).shift(x, FixedRng(90.0)), torch.rot90(x, 1, (-2, -1)), atol=1e-9)
    assert torch.equal(RandomRotate(0).shift(x, FixedRng(0.0)), x)
    s = 1.5
    got = RandomScale(1.2, 1.8).shift(x, FixedRng(s))[0, 0].numpy()
    a = x[0, 0].numpy()
    for i in range(6):
        for j in range(6):
            # output pixel centre -> source coordinates about the centre (2.5, 2.5), then bilinear
            sy, sx = (i - 2.5) / s + 2.5, (j - 2.5) / s + 2.5
            y0, x0 = int(math.floor(sy)), int(math.floor(sx))
            fy, fx = sy - y0, sx - x0
            v = (a[y0, x0] * (1 - fy) * (1 - fx) + a[y0 + 1, x0] * fy * (1 - fx)
                 + a[y0, x0 + 1] * (1 - fy) * fx + a[y0 + 1, x0 + 1] * fy * fx)
            assert got[i, j] == pytest.approx(v, abs=1e-9)


def test_pad_is_a_constant_border_and_a_crop_back():
    x = torch.arange(16.0).view(1, 1, 4, 4) / 16
    got = Pad(2, value=0.25).shift(x, FixedRng(1, 3))
    hand = np.full((8, 8), 0.25)
    hand[2:6, 2:6] = x[0, 0].numpy()
    assert np.allclose(got[0, 0].numpy(), hand[1:5, 3:7])
    assert got.shape == x.shape


def test_center_bias_leaves_the_centre_and_calms_the_border_late_in_the_run():
    cb = CenterBias(final=0.5, strength=1.0)
    cb.begin(30)
    assert cb.radius(0) == pytest.approx(math.sqrt(2)) and cb.radius(29) == pytest.approx(0.5)
    space = _space(c=3, h=16, w=16)
    p = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    before = p.clone()
    cb.apply_(p, None, 29, space)
    assert torch.equal(p[..., 7:9, 7:9], before[..., 7:9, 7:9])  # centre untouched
    assert (p[..., 0, 0] - 0.5).abs().max() < (before[..., 0, 0] - 0.5).abs().max()  # corner pulled to grey


# ---------------------------------------------------------------- diversity
def test_gram_similarity_matches_a_brute_force_loop():
    a = torch.rand(3, 4, 2, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grams = []
    for i in range(3):
        f = a[i].reshape(4, -1).numpy()
        g = np.array([[sum(f[c, k] * f[d, k] for k in range(6)) for d in range(4)] for c in range(4)])
        grams.append(g.ravel() / np.linalg.norm(g))
    hand = [np.mean([grams[i] @ grams[j] for j in range(3) if j != i]) for i in range(3)]
    assert np.allclose(gram_similarity(a).numpy(), hand)


def test_diversity_pushes_a_batch_apart():
    insp = Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu")
    same = visualize(insp, Unit("conv3", 2), steps=24, batch=3, regularizers=[], init="noise", seed=0)
    apart = visualize(insp, Unit("conv3", 2), steps=24, batch=3, regularizers=[3.0 * Diversity("relu2")],
                      init="noise", seed=0)
    sim = {k: float(gram_similarity(insp.activations(r.input, ["relu2"])["relu2"]).mean())
           for k, r in (("same", same), ("apart", apart))}
    assert sim["apart"] < sim["same"]
    assert hooks_left(insp.model) == []


# ---------------------------------------------------------------- every parametrization with every regularizer
@pytest.mark.parametrize("param", ["pixels", "fourier", Pixels(colour=np.eye(3) + 0.5), Fourier(decay=1.0)],
                         ids=["pixels", "fourier", "colour-pixels", "fourier-1"])
def test_any_parametrization_runs_with_any_regularizer(param):
    insp = Inspector(small_cnn(), transform=Preprocess([0.5] * 3, [0.25] * 3), input_size=(3, 32, 32), device="cpu")
    regs = [1e-3 * L2(), TV(0.01), Blur(0.5, every=2), Jitter(1), ClipNorm(5), ClipContribution(5), Pad(2),
            RandomScale(0.9, 1.1), RandomRotate(5), CenterBias(), Diversity("relu2")]
    r = visualize(insp, Class(1), steps=6, batch=2, regularizers=regs, param=param)
    assert r.images.shape == (2, 3, 32, 32) and np.isfinite(r.objective).all()
    assert hooks_left(insp.model) == [] and all(p.grad is None for p in insp.model.parameters())


# ---------------------------------------------------------------- multifaceted
def test_multifaceted_clusters_the_top_images_and_starts_from_their_means():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU())
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).view(2, 3, 1, 1))
        m[0].bias.zero_()
    insp = Inspector(m, transform=Preprocess([0.0] * 3, [1.0] * 3), input_size=(3, 4, 4), device="cpu")
    images = np.zeros((10, 3, 4, 4), dtype=np.uint8)
    images[:4, 0] = 250        # red: unit 0 high
    images[4:8, 1] = 240       # green: unit 0 high
    images[8:] = 10            # dark: low, not in the top 8
    r = multifaceted(insp, Unit("1", 0), images, facets=2, top=8, layer="0", steps=2, regularizers=[],
                     param="pixels")
    assert sorted(r.top.tolist()) == list(range(8))
    assert sorted(sorted(x.tolist()) for x in r.members) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    red = [i for i, x in enumerate(r.members) if 0 in x][0]
    assert np.array_equal(r.means[red], images[0])
    assert hooks_left(insp.model) == []


# ---------------------------------------------------------------- bad input
def test_bad_input_names_the_fix_and_leaves_no_hook():
    insp = Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu")
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    bad = [
        (SettingError, "positive definite", lambda: visualize(insp, Class(0), steps=1,
                                                              param=Fourier(colour=np.ones((3, 3))))),
        (SettingError, "channel", lambda: visualize(insp, Class(0), steps=1, param=Fourier(colour=np.eye(1)))),
        (InputError, "Fourier(size=(32, 32))", lambda: visualize(insp, Class(0), steps=1,
                                                                 param=Fourier(size=(64, 64)))),
        (SettingError, "RandomRotate(5)", lambda: RandomRotate(-5)),
        (SettingError, "0 < low <= high", lambda: RandomScale(-0.5, 1.0)),
        (SettingError, "0 < low <= high", lambda: RandomScale(1.2, 0.8)),
        (SettingError, "facets<=3", lambda: multifaceted(insp, Class(0), images, facets=4, top=3, steps=1)),
        (SettingError, "top<=4", lambda: multifaceted(insp, Class(0), images, facets=2, top=9, steps=1)),
        (SettingError, "batch=4", lambda: visualize(insp, Unit("conv3", 1), steps=1,
                                                    regularizers=[Diversity("relu2")])),
        (SettingError, "'pixels', 'fourier'", lambda: visualize(insp, Class(0), steps=1, param="wavelet")),
    ]
    for err, text, call in bad:
        with pytest.raises(err) as info:
            call()
        assert text in str(info.value), str(info.value)
        assert hooks_left(insp.model) == []


# ---------------------------------------------------------------- the trained teaching model
def test_default_class_pictures_are_classified_and_smoother_than_pixel_ascent():
    from ipynetviz.methods.optimize import high_frequency_fraction
    insp = nv.zoo.load("shapes-cnn", device="cpu")
    objs = [LogProb(k) for k in (0, 3, 7)]
    default = visualize(insp, objs, steps=32)
    plain = visualize(insp, objs, steps=32, param="pixels", regularizers=None)
    p = insp.predict(default.input)[0].numpy()[[0, 1, 2], [0, 3, 7]]
    hf_default, hf_plain = high_frequency_fraction(default.images), high_frequency_fraction(plain.images)
    print(f"\nprobabilities {p.round(4)}; high-frequency fraction default {hf_default.round(3)} "
          f"pixels {hf_plain.round(3)}")
    assert p.min() >= 0.99
    assert hf_default.mean() < 0.5 * hf_plain.mean()


# ---------------------------------------------------------------- torch-lucent as a reference
def test_fourier_and_diversity_match_torch_lucent():
    pytest.importorskip("lucent.optvis.param.spatial")
    from lucent.optvis import objectives
    from lucent.optvis.param import spatial
    h, w = 8, 6
    torch.manual_seed(0)
    params, image_f = spatial.fft_image((2, 3, h, w), sd=0.5, decay_power=1.0)
    theirs = torch.sigmoid(image_f()).detach().double()
    bound = Fourier(decay=1.0).bind(_space(c=3, h=h, w=w), (2, 3, h, w))
    ours = bound.to_pixels(params[0].detach().double())
    assert torch.allclose(ours, theirs, atol=1e-6)

    acts = torch.rand(4, 5, 3, 3, generator=torch.Generator().manual_seed(1))
    lucent_value = objectives.diversity("x")(lambda name: acts)
    # Lucent's value is -(sum_i sum_{j != i} cos(G_i, G_j)) / n; ours is each sample's mean over j != i
    assert float(lucent_value) == pytest.approx(-float(gram_similarity(acts).sum()) * 3 / 4, rel=1e-5)
