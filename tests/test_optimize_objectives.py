"""Objectives, regularizers and the Adam step against hand computations, NumPy, SciPy and torch.optim."""
from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.ndimage
import torch

from ipynetviz.engine import Class, Inspector, Preprocess, Unit
from ipynetviz.engine.errors import LayerNotFoundError, SettingError, TargetError
from ipynetviz.methods.optimize import (L2, TV, Blur, ClipContribution, ClipNorm, Jitter, LayerNorm, Objective, gram,
                                        objective, visualize)
from ipynetviz.methods.optimize.regularizers import gaussian_blur, total_variation
from ipynetviz.methods.optimize.space import PixelSpace
from ipynetviz.methods.optimize.loop import Adam
from ipynetviz.methods.optimize.objectives import Context, bind_objectives, tv_penalty

from .conftest import small_cnn


@pytest.fixture
def norm_insp():
    """The small CNN behind a normalising transform, so pixel and model input differ."""
    return Inspector(small_cnn(), transform=Preprocess([0.4, 0.5, 0.6], [0.2, 0.25, 0.3]), input_size=(3, 32, 32),
                     device="cpu")


def _context(insp, x, layers):
    with insp.eval_guard(), insp.hooks(capture=layers) as cache:
        logits = insp.model(x)
        return Context(x, PixelSpace(insp).to_pixels(x), logits, dict(cache))


def test_algebra_builds_weighted_sums_of_engine_targets():
    obj = Class(3) - 1e-4 * L2()
    assert [(w, t.describe()) for w, t in obj.terms] == [(1.0, "class 3"), (-1e-4, "L2")]
    obj2 = 2 * (objective(Class(1)) + Unit("conv3", 2)) / 4 - TV(0.5)
    assert [(w, t.describe()) for w, t in obj2.terms] == [(0.5, "class 1"), (0.5, "conv3[2]"), (-0.5, "TV")]
    assert [(w, t.describe()) for w, t in (-LayerNorm("relu2")).terms] == [(-1.0, "norm(relu2)")]
    total = sum([objective(Unit("conv3", c)) for c in range(3)])
    assert [t.describe() for _, t in total.terms] == ["conv3[0]", "conv3[1]", "conv3[2]"]
    assert repr(obj) == "Objective(class 3 - 0.0001*L2)"
    with pytest.raises(SettingError):
        L2() * float("nan")
    with pytest.raises(TargetError, match="cannot optimise"):
        objective("conv3")


def test_engine_targets_compose_directly():
    """Class / Unit take part in arithmetic themselves: no objective() needed to start a sum."""
    def terms(o):
        return [(w, t.describe()) for w, t in o.terms]
    assert terms(Class(3) + Unit("conv3", 5)) == [(1.0, "class 3"), (1.0, "conv3[5]")]
    assert terms(0.5 * Class(3) - Unit("conv3", 5) / 4) == [(0.5, "class 3"), (-0.25, "conv3[5]")]
    assert terms(-Unit("relu2", 1, 2, 3)) == [(-1.0, "relu2[1]@(2,3)")]
    assert terms(Class(2) * 3 + LayerNorm("relu2")) == [(3.0, "class 2"), (1.0, "norm(relu2)")]
    assert terms(sum(Unit("conv3", c) for c in range(3))) == [(1.0, f"conv3[{c}]") for c in range(3)]
    assert terms(1e-4 * L2() - Class(1)) == [(1e-4, "L2"), (-1.0, "class 1")]
    with pytest.raises(TargetError, match="cannot optimise"):
        Class(3) + "conv3"
    with pytest.raises(TypeError):
        Class(3) * "2"
    # still plain, hashable engine targets for attribution and the cache
    assert Class(3) == Class(3) and len({Class(3), Class(3), Unit("conv3", 1)}) == 2


def test_composed_targets_optimise_like_the_explicit_objective(norm_insp):
    from ipynetviz.methods.optimize import visualize
    a = visualize(norm_insp, 0.5 * Class(1) + Unit("conv3", 2), steps=4, lr=0.05)
    b = visualize(norm_insp, objective(Class(1)) * 0.5 + objective(Unit("conv3", 2)), steps=4, lr=0.05)
    np.testing.assert_array_equal(a.images, b.images)


def test_bound_objective_equals_a_hand_computed_score(norm_insp):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 32)
    obj = (Class(3) - 1e-4 * L2() + 0.5 * objective(Unit("relu2", 4)) - 0.1 * TV()
           + 2 * LayerNorm("relu3", channels=[1, 5]))
    bound = bind_objectives(norm_insp, obj, batch=2)
    assert set(bound.layers) == {"relu2", "relu3"} and bound.needs_logits
    ctx = _context(norm_insp, x, list(bound.layers))
    p = ctx.pixels.numpy().astype(np.float64)
    tv = sum((p[:, :, i, j + 1] - p[:, :, i, j]) ** 2 + (p[:, :, i + 1, j] - p[:, :, i, j]) ** 2
             for i in range(31) for j in range(31)).sum(1)
    a3 = ctx.captured["relu3"][:, [1, 5]].double()
    want = (ctx.logits[:, 3].double() - 1e-4 * (x.double() ** 2).sum((1, 2, 3))
            + 0.5 * ctx.captured["relu2"][:, 4].double().mean((1, 2)) - 0.1 * torch.from_numpy(tv)
            + 2 * a3.pow(2).mean((1, 2, 3)).sqrt())
    np.testing.assert_allclose(bound.score(ctx).double().numpy(), want.numpy(), rtol=1e-5, atol=1e-4)


def test_a_list_of_objectives_scores_each_sample_with_its_own(norm_insp):
    x = torch.randn(3, 3, 32, 32)
    bound = bind_objectives(norm_insp, [Unit("conv3", c) for c in (0, 7, 3)])
    ctx = _context(norm_insp, x, ["conv3"])
    want = ctx.captured["conv3"].mean((2, 3))[[0, 1, 2], [0, 7, 3]]
    torch.testing.assert_close(bound.score(ctx), want)
    assert bound.n == 3 and bound.descriptions == ("conv3[0]", "conv3[7]", "conv3[3]")


def test_out_of_range_targets_fail_before_any_work(norm_insp):
    with pytest.raises(TargetError, match="0..4"):
        bind_objectives(norm_insp, Class(5))
    with pytest.raises(TargetError, match="16 channels"):
        bind_objectives(norm_insp, [Unit("conv3", 0), Unit("conv3", 16)])
    with pytest.raises(LayerNotFoundError, match="conv3"):
        bind_objectives(norm_insp, LayerNorm("conv_3"))
    with pytest.raises(TargetError, match="channels \\[99\\]"):
        bind_objectives(norm_insp, LayerNorm("conv3", channels=[99]))


def test_tv_penalty_with_beta_one_matches_a_loop():
    torch.manual_seed(0)
    p = torch.rand(1, 2, 5, 6, dtype=torch.float64)
    a = p.numpy()
    want = sum(np.sqrt((a[0, :, i, j + 1] - a[0, :, i, j]) ** 2 + (a[0, :, i + 1, j] - a[0, :, i, j]) ** 2 + 1e-8)
               for i in range(4) for j in range(5)).sum()
    assert tv_penalty(p, beta=1.0).item() == pytest.approx(want, rel=1e-10)


def test_total_variation_measure_matches_numpy():
    g = np.random.default_rng(0)
    img = g.integers(0, 256, (3, 3, 9, 7), dtype=np.uint8)
    f = img.astype(float) / 255
    want = [(np.abs(np.diff(f[i], axis=2)).sum() + np.abs(np.diff(f[i], axis=1)).sum())
            / (3 * 9 * 6 + 3 * 8 * 7) for i in range(3)]
    np.testing.assert_allclose(total_variation(img), want)
    np.testing.assert_allclose(total_variation(torch.from_numpy(f)), want)
    assert total_variation(np.full((1, 3, 8, 8), 77, np.uint8))[0] == 0


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.7])
def test_gaussian_blur_matches_scipy(sigma):
    g = np.random.default_rng(1)
    img = g.random((2, 3, 16, 12))
    ours = gaussian_blur(torch.from_numpy(img), sigma).numpy()
    ref = scipy.ndimage.gaussian_filter(img, sigma=(0, 0, sigma, sigma), mode="mirror", truncate=3.0)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_clip_norm_clears_exactly_the_low_norm_pixels(norm_insp):
    space = PixelSpace(norm_insp)
    g = torch.Generator().manual_seed(0)
    p = torch.rand(2, 3, 10, 10, generator=g, dtype=torch.float32)
    before = p.clone()
    ClipNorm(30).apply_(p, None, 0, space)
    norms = ((before - space.mean) / space.std).norm(dim=1).numpy()
    for i in range(2):
        thresh = np.quantile(norms[i], 0.3)
        cleared = norms[i] < thresh
        assert cleared.sum() == 30
        np.testing.assert_allclose(p[i][:, torch.from_numpy(cleared)].numpy(),
                                   space.mean[0, :, :, 0].expand(3, 30).numpy())
        np.testing.assert_array_equal(p[i][:, torch.from_numpy(~cleared)], before[i][:, torch.from_numpy(~cleared)])


def test_clip_contribution_uses_the_model_input_gradient_times_input(norm_insp):
    """|sum_c x_c dS/dx_c| computed in model space by autograd equals the pixel-space formula used."""
    space = PixelSpace(norm_insp)
    torch.manual_seed(2)
    p = torch.rand(1, 3, 32, 32)
    x = space.to_model(p).requires_grad_(True)
    with norm_insp.eval_guard():
        gx, = torch.autograd.grad(norm_insp.model(x)[:, 2].sum(), x)
        pp = p.clone().requires_grad_(True)
        gp, = torch.autograd.grad(norm_insp.model(space.to_model(pp))[:, 2].sum(), pp)
    contribution = (x.detach() * gx).sum(1).abs()[0].numpy()
    out = p.clone()
    ClipContribution(25).apply_(out, gp, 0, space)
    cleared = (out != p).any(1)[0].numpy()
    expected = contribution < np.quantile(contribution, 0.25)
    assert (cleared == expected).mean() > 0.995  # float ties at the threshold may differ by a pixel or two


def test_jitter_is_a_seeded_roll_and_blur_runs_every_n_steps(norm_insp):
    p = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    rng_a, rng_b = random.Random(5), random.Random(5)
    out = Jitter(2).shift(p, rng_a)
    dy, dx = rng_b.randint(-2, 2), rng_b.randint(-2, 2)
    torch.testing.assert_close(out, torch.roll(p, (dy, dx), (-2, -1)))
    space = PixelSpace(norm_insp)
    q = torch.rand(1, 3, 8, 8)
    blur = Blur(1.0, every=3)
    for step in range(2):
        r = q.clone()
        blur.apply_(r, None, step, space)
        assert torch.equal(r, q)
    blur.apply_(q_blurred := q.clone(), None, 2, space)
    torch.testing.assert_close(q_blurred, gaussian_blur(q, 1.0))
    for bad in (lambda: Blur(0), lambda: Blur(1, every=0), lambda: Jitter(-1), lambda: ClipNorm(100)):
        with pytest.raises(SettingError):
            bad()


def test_hand_written_adam_matches_torch_optim():
    torch.manual_seed(0)
    a = torch.randn(4, 5)
    b = a.clone().requires_grad_(True)
    ours = Adam(a, lr=0.05)
    ref = torch.optim.Adam([b], lr=0.05)
    for _ in range(7):
        grad = torch.randn(4, 5)
        ours.step(grad)  # ascends
        b.grad = -grad
        ref.step()
    torch.testing.assert_close(a, b.detach())


def test_gram_matches_a_loop():
    torch.manual_seed(0)
    acts = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    g = gram(acts)
    want = np.zeros((2, 4, 4))
    a = acts.numpy().reshape(2, 4, 15)
    for n in range(2):
        for i in range(4):
            for j in range(4):
                want[n, i, j] = sum(a[n, i, p] * a[n, j, p] for p in range(15)) / 15
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-12)
    with pytest.raises(SettingError):
        gram(torch.zeros(4, 4))


def test_pixel_space_round_trip_and_display(norm_insp):
    space = PixelSpace(norm_insp)
    img = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    x = norm_insp.prepare(img)
    np.testing.assert_array_equal(space.to_uint8(x), img.numpy())
    torch.testing.assert_close(space.to_pixels(x), img.float() / 255)
    zeros = space.initial("zeros", 2, (3, 32, 32), 0)
    torch.testing.assert_close(space.to_model(zeros), torch.zeros(2, 3, 32, 32))
    noise_a, noise_b = (space.initial("noise", 1, (3, 8, 8), 3) for _ in range(2))
    assert torch.equal(noise_a, noise_b) and noise_a.min() >= 0 and noise_a.max() <= 1
    with pytest.raises(SettingError, match="init"):
        space.initial("ones", 1, (3, 8, 8), 0)


def test_unknown_transform_optimises_model_input_unclamped():
    insp = Inspector(small_cnn(), transform=lambda pil: torch.zeros(3, 32, 32), input_size=(3, 32, 32), device="cpu")
    space = PixelSpace(insp)
    assert not space.bounded
    r = visualize(insp, Class(1), steps=3, lr=0.5)
    assert r.images.dtype == np.uint8 and r.images.min() == 0 and r.images.max() == 255  # min-max display


@pytest.mark.parametrize("units", [
    [Unit("conv3", c) for c in (1, 4, 9)],                      # fused into one vectorised term
    [Class(1), 2 * objective(Unit("conv3", 2)), LayerNorm("relu2")],  # one scorer per sample
], ids=["fused", "mixed"])
def test_batch_of_objectives_equals_separate_runs(norm_insp, units):
    """Samples do not interact: objectives in one batch give the pictures of single runs."""
    # pixels: batched and single FFTs differ in the last bits, which the Fourier path's logit round trip
    # (after each blur) amplifies near saturated pixels; the samples still do not interact there either
    together = visualize(norm_insp, units, steps=6, lr=0.05, regularizers=[Blur(0.5, 2), 1e-3 * L2()], param="pixels")
    for i, u in enumerate(units):
        alone = visualize(norm_insp, u, steps=6, lr=0.05, regularizers=[Blur(0.5, 2), 1e-3 * L2()], param="pixels")
        torch.testing.assert_close(together.input[i:i + 1], alone.input, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(together.objective[:, i], alone.objective[:, 0], rtol=1e-4, atol=1e-5)


def test_empty_and_mismatched_objective_lists(norm_insp):
    with pytest.raises(SettingError, match="empty"):
        bind_objectives(norm_insp, [])
    with pytest.raises(SettingError, match="batch=2"):
        bind_objectives(norm_insp, [Class(0), Class(1), Class(2)], batch=2)
    assert bind_objectives(norm_insp, Class((0, 1, 2))).n == 3
    assert isinstance(objective(Class(1)), Objective)


@pytest.mark.parametrize("name", ["space", "objectives", "regularizers", "visualize", "invert", "dream", "style",
                                  "adversarial"])
def test_docstring_examples_run(name):
    import doctest
    import importlib
    mod = importlib.import_module(f"ipynetviz.methods.optimize.{name}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
