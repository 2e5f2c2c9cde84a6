"""The picture optimisers against Captum and brute force, bad input, interruption and a clean model afterwards."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from captum.robust import FGSM, PGD

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")

from ipynetviz.engine import Class, Inspector, Preprocess, Unit, hooks_left
from ipynetviz.engine.errors import InputError, LayerNotFoundError, SettingError, TargetError
from ipynetviz.methods.optimize import (L2, TV, Blur, Jitter, LayerNorm, LogProb, adversarial, deep_dream, gram,
                                        invert, style_transfer, visualize)
from ipynetviz.methods.optimize.space import PixelSpace

from .conftest import small_cnn

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


@pytest.fixture
def guarded():
    """An inspector over a model in *training* mode with one frozen parameter, and a check that all is restored."""
    model = small_cnn()
    model.train()
    model.conv1.bias.requires_grad_(False)
    insp = Inspector(model, transform=Preprocess(MEAN, STD), input_size=(3, 32, 32), device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}

    def check():
        assert hooks_left(model) == []
        assert all(p.grad is None for p in model.parameters())
        assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
        assert all(m.training for m in model.modules())
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), k
    yield insp, check
    check()


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=g)


def _pixel_forward(insp):
    space = PixelSpace(insp)
    model = insp.model
    return lambda p: model(space.to_model(p))


# ---------------------------------------------------------------- adversarial vs Captum and brute force
@pytest.mark.parametrize("target", [None, 2])
def test_fgsm_matches_captum(guarded, images, target):
    insp, check = guarded
    r = adversarial(insp, images, target=target, eps=8 / 255, steps=1)
    check()
    p0 = images.float() / 255
    lab = torch.as_tensor(r.labels if target is None else r.target)
    fgsm = FGSM(_pixel_forward(insp), loss_func=torch.nn.CrossEntropyLoss(reduction="none"), lower_bound=0,
                upper_bound=1)
    fgsm.zero_thresh = 0.0  # Captum leaves pixels with |gradient| <= 1e-6 alone; plain FGSM moves them too
    with insp.eval_guard():
        ref = fgsm.perturb(p0, 8 / 255, lab, targeted=target is not None)
    ours = PixelSpace(insp).to_pixels(r.input)
    assert (ours - ref).abs().max() < 1e-5
    assert r.settings["attack"] == "FGSM" and r.steps_done == 1
    assert r.linf.max() <= 8 / 255 + 1e-6
    # eps is in pixel units: the uint8 pictures differ by at most 8 grey levels, the model input by 8/255/std
    assert np.abs(r.images.astype(int) - images.numpy().astype(int)).max() <= 8
    dx = (r.input - insp.prepare(images)).abs().amax(dim=(0, 2, 3))
    assert torch.all(dx <= torch.tensor(8 / 255) / torch.tensor(STD) + 1e-5)


def test_pgd_linf_matches_captum(guarded, images):
    insp, _ = guarded
    r = adversarial(insp, images, target=(1, 2, 3, 4), eps=6 / 255, steps=5, step_size=2 / 255)
    pgd = PGD(_pixel_forward(insp), loss_func=torch.nn.CrossEntropyLoss(reduction="none"), lower_bound=0,
              upper_bound=1)
    pgd.fgsm.zero_thresh = 0.0
    with insp.eval_guard():
        ref = pgd.perturb(images.float() / 255, 6 / 255, 2 / 255, 5, torch.tensor([1, 2, 3, 4]), targeted=True)
    assert (PixelSpace(insp).to_pixels(r.input) - ref).abs().max() < 1e-5


def _margin(z, cls):
    """Carlini & Wagner's margin: the class's logit minus the largest other one."""
    own = z.gather(1, cls[:, None])[:, 0]
    return own - z.scatter(1, cls[:, None], float("-inf")).amax(1)


@pytest.mark.parametrize("target", [None, (1, 2, 3, 4)])
def test_pgd_with_the_margin_loss_matches_captum(guarded, images, target):
    insp, check = guarded
    r = adversarial(insp, images, target=target, eps=6 / 255, steps=5, step_size=2 / 255, loss="margin")
    check()
    # Captum ascends the loss untargeted and descends it targeted: "best other minus own" serves both
    pgd = PGD(_pixel_forward(insp), loss_func=lambda z, cls: -_margin(z, cls), lower_bound=0, upper_bound=1)
    pgd.fgsm.zero_thresh = 0.0
    cls = torch.as_tensor(r.labels if target is None else r.target)
    with insp.eval_guard():
        ref = pgd.perturb(images.float() / 255, 6 / 255, 2 / 255, 5, cls, targeted=target is not None)
    assert (PixelSpace(insp).to_pixels(r.input) - ref).abs().max() < 1e-5
    assert r.settings["loss"] == "margin" and r.settings["restarts"] == 1


def _restarted_pgd(insp, images, target, eps, steps, step_size, restarts, seed):
    """Brute force: each run on its own, from the starts the generator draws, keeping each image's best margin."""
    forward = _pixel_forward(insp)
    p0 = images.float() / 255
    n = len(p0)
    cls = torch.full((n,), target)
    gen = torch.Generator().manual_seed(seed)
    best, best_m = torch.zeros_like(p0), torch.full((n,), float("-inf"))
    with insp.eval_guard():
        for run in range(restarts):
            rows = torch.arange(n) if run == 0 else torch.nonzero(best_m <= 0).flatten()
            if len(rows) == 0:
                break
            base = p0[rows]
            d = torch.zeros_like(base) if run == 0 else (torch.rand(base.shape, generator=gen) * 2 - 1) * eps
            d = (base + d).clamp(0, 1) - base
            for _ in range(steps):
                d.requires_grad_(True)
                g, = torch.autograd.grad(_margin(forward(base + d), cls[rows]).sum(), d)
                d = ((base + (d + step_size * g.sign()).clamp(-eps, eps)).clamp(0, 1) - base).detach()
            with torch.no_grad():
                m = _margin(forward(base + d), cls[rows])
            better = m > best_m[rows]
            best_m[rows[better]], best[rows[better]] = m[better], d[better]
    return best, best_m


def test_restarts_keep_each_images_best_run(guarded):
    insp, check = guarded
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    eps, steps, size = 1 / 255, 2, 0.25 / 255
    once = adversarial(insp, images, target=1, eps=eps, steps=steps, step_size=size, loss="margin")
    r = adversarial(insp, images, target=1, eps=eps, steps=steps, step_size=size, loss="margin", restarts=4, seed=5)
    check()
    want, want_margin = _restarted_pgd(insp, images, 1, eps, steps, size, 4, seed=5)
    assert (r.perturbation - want).abs().max() < 1e-5
    np.testing.assert_array_equal(r.fooled, (want_margin > 0).numpy())
    # some images resisted the first run, so every later run was made; the fooled ones were left alone
    assert 0 < once.fooled.sum() < len(images) and r.steps_done == 4 * steps
    assert torch.equal(r.perturbation[once.fooled], once.perturbation[once.fooled])
    with insp.eval_guard(), torch.no_grad():
        forward, cls = _pixel_forward(insp), torch.full((8,), 1)
        m_once = _margin(forward(images.float() / 255 + once.perturbation), cls)
        m_best = _margin(forward(images.float() / 255 + r.perturbation), cls)
    assert torch.all(m_best >= m_once - 1e-6)
    late = r.fooled & ~once.fooled
    assert np.all(r.fooled_at[late] > steps) and np.all(r.fooled_at[late] <= 4 * steps)
    assert r.linf.max() <= eps + 1e-6 and r.settings["restarts"] == 4


def test_pgd_l2_stays_in_the_ball_and_one_step_is_a_normalised_gradient(guarded, images):
    insp, check = guarded
    r = adversarial(insp, images, eps=0.5, steps=6, norm="l2")
    assert r.l2.max() <= 0.5 + 1e-5 and r.settings["norm"] == "l2"
    p = PixelSpace(insp).to_pixels(r.input)
    assert p.min() >= -1e-6 and p.max() <= 1 + 1e-6
    one = adversarial(insp, images, eps=0.1, steps=1, norm="l2")
    x = (images.float() / 255).requires_grad_(True)
    with insp.eval_guard():
        loss = torch.nn.functional.cross_entropy(_pixel_forward(insp)(x), torch.as_tensor(one.labels), reduction="sum")
        g, = torch.autograd.grad(loss, x)
    want = (images.float() / 255 + 0.1 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
    assert (PixelSpace(insp).to_pixels(one.input) - want).abs().max() < 1e-5
    check()


def test_fooled_at_equals_the_first_step_a_shorter_attack_succeeds(guarded, images):
    insp, _ = guarded
    k, size = 6, 1 / 255
    full = adversarial(insp, images, target=3, eps=4 / 255, steps=k, step_size=size)
    first = np.full(len(images), -1)
    for steps in range(k, 0, -1):  # brute force: every prefix run on its own
        r = adversarial(insp, images, target=3, eps=4 / 255, steps=steps, step_size=size)
        first[r.fooled] = steps
    want = np.where(full.fooled | (first > 0), first, -1)
    np.testing.assert_array_equal(full.fooled_at, want)
    assert full.success_rate == full.fooled.mean()


# ---------------------------------------------------------------- the other optimisers
def test_visualize_raises_its_objective_and_reports_settings(guarded):
    insp, check = guarded
    seen = []
    r = visualize(insp, LogProb(3) - 1e-3 * L2(), steps=12, lr=0.05, regularizers=[Blur(0.5, 4), Jitter(1)],
                  init="noise", callback=lambda res: seen.append(res.steps_done), callback_every=5)
    check()
    assert seen == [5, 10, 12]
    assert r.objective.shape == (12, 1) and r.objective[-1, 0] > r.objective[0, 0]
    assert r.images.shape == (1, 3, 32, 32) and r.images.dtype == np.uint8
    assert r.settings["regularizers"] == ["Blur(sigma=0.5, every=4)", "Jitter(pixels=1)"]
    assert not r.interrupted and r.steps_done == 12 and r.descriptions == ("log p(class 3) - 0.001*L2",)
    assert r.render().shape == (32, 32, 3)
    layer = visualize(insp, LayerNorm("relu2"), steps=8, lr=0.05)
    assert layer.objective[-1, 0] > layer.objective[0, 0]


def test_invert_reports_the_code_error_of_the_returned_picture(guarded, images):
    insp, check = guarded
    r = invert(insp, images[:2], "relu1", steps=40, lr=0.05, tv=0.1, regularizers=[Jitter(1)])
    check()
    acts = insp.activations(r.input, ["relu1"])["relu1"]
    target = insp.activations(images[:2], ["relu1"])["relu1"]
    want = (acts - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1)
    np.testing.assert_allclose(r.relative_error, want.numpy(), rtol=1e-4)
    assert r.terms["relative_error"][-1].mean() < r.terms["relative_error"][0].mean()
    np.testing.assert_array_equal(r.original, images[:2].numpy())


def test_deep_dream_raises_the_layer_norm_every_step(guarded, images):
    insp, check = guarded
    r = deep_dream(insp, images[:1], "relu2", octaves=2, steps=4, jitter=0)
    check()
    assert r.sizes == ((23, 23), (32, 32)) and r.norms.shape == (2, 5, 1)
    assert np.all(np.diff(r.norms[..., 0], axis=1) > 0)
    assert r.images.shape == (1, 3, 32, 32) and r.steps_done == 8


def test_style_transfer_lowers_the_style_loss_and_resizes_the_style_image(guarded, images):
    insp, check = guarded
    style = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)  # HWC, another size
    r = style_transfer(insp, images[:1], style, "relu2", ["relu1", "relu2"], steps=25, lr=0.05, style_weight=5,
                       tv=0.1)
    check()
    assert r.settings["style_resized_from"] == (48, 40)
    assert r.terms["style_loss"][-1, 0] < 0.5 * r.terms["style_loss"][0, 0]
    assert r.terms["content_loss"][0, 0] < 1e-10  # it starts from the content image
    assert r.images.shape == (1, 3, 32, 32)


# ---------------------------------------------------------------- bad input: clear errors, model untouched
BAD = [
    (lambda i, x: visualize(i, Class(1), steps=0), SettingError, "steps must be a positive integer"),
    (lambda i, x: visualize(i, Class(1), steps=-3), SettingError, "steps=1 or more"),
    (lambda i, x: visualize(i, Class(1), steps=2.5), SettingError, "steps"),
    (lambda i, x: visualize(i, Class(1), lr=0.0), SettingError, "lr must be a finite number > 0"),
    (lambda i, x: visualize(i, Class(1), lr=float("nan")), SettingError, "lr"),
    (lambda i, x: visualize(i, Class(1), callback_every=0), SettingError, "callback_every"),
    (lambda i, x: visualize(i, Class(5)), TargetError, "out of range"),
    (lambda i, x: visualize(i, Unit("conv3", 40)), TargetError, "channel 40 does not exist"),
    (lambda i, x: visualize(i, LayerNorm("conv9")), LayerNotFoundError, "no layer"),
    (lambda i, x: visualize(i, Class(1), regularizers=["blur"]), SettingError, "unknown regularizer"),
    (lambda i, x: invert(i, x, "relu1", steps=0), SettingError, "steps"),
    (lambda i, x: invert(i, x, "relu_1"), LayerNotFoundError, "did you mean"),
    (lambda i, x: invert(i, x, "relu1", lr=float("inf")), SettingError, "lr"),
    (lambda i, x: deep_dream(i, x, "relu1", octaves=0), SettingError, "octaves"),
    (lambda i, x: deep_dream(i, x, "relu1", octave_scale=1.0), SettingError, "octave_scale"),
    (lambda i, x: style_transfer(i, x, x[:1], "relu1", []), SettingError, "style layer"),
    (lambda i, x: style_transfer(i, x, x[:1], "relu1", ["relu2"], content_weight=0, style_weight=0),
     SettingError, "both 0"),
    (lambda i, x: style_transfer(i, x, x[:2], "relu1", ["relu2"]), SettingError, "one style image"),
    (lambda i, x: adversarial(i, x, target=5), TargetError, "out of range"),
    (lambda i, x: adversarial(i, x, eps=0), SettingError, "eps"),
    (lambda i, x: adversarial(i, x, eps=float("nan")), SettingError, "eps"),
    (lambda i, x: adversarial(i, x, norm="l3"), SettingError, "linf"),
    (lambda i, x: adversarial(i, x, labels=[0, 1]), InputError, "one label per image"),
    (lambda i, x: adversarial(i, x, steps=0), SettingError, "steps"),
    (lambda i, x: adversarial(i, x, loss="hinge"), SettingError, "margin"),
    (lambda i, x: adversarial(i, x, restarts=0), SettingError, "restarts"),
]


@pytest.mark.parametrize("call,error,match", BAD)
def test_bad_input_fails_clearly_and_leaves_the_model_as_it_was(guarded, images, call, error, match):
    insp, check = guarded
    with pytest.raises(error, match=match):
        call(insp, images)
    check()


def _interrupt_at(step):
    def callback(result):
        if result.steps_done >= step:
            raise KeyboardInterrupt
    return callback


def test_interrupted_runs_keep_their_partial_result(guarded, images):
    insp, check = guarded
    r = visualize(insp, [Class(0), Class(1)], steps=50, callback=_interrupt_at(4), callback_every=2)
    assert r.interrupted and r.steps_done == 4 and r.objective.shape == (4, 2) and r.images.shape[0] == 2
    check()
    r = invert(insp, images[:1], "relu2", steps=50, callback=_interrupt_at(3), callback_every=3)
    assert r.interrupted and r.steps_done == 3 and r.terms["relative_error"].shape == (3, 1)
    check()
    r = style_transfer(insp, images[:1], images[1], "relu2", ["relu1"], steps=50, callback=_interrupt_at(2), callback_every=1)
    assert r.interrupted and r.steps_done == 2 and r.style_loss.shape == (1,)
    check()
    stop = threading.Event()
    r = deep_dream(insp, images[:1], "relu2", octaves=3, steps=4, callback=lambda res: stop.set(), callback_every=2,
                   cancel=stop)
    assert r.interrupted and r.steps_done == 2 and np.isnan(r.norms[1:]).all() and r.images.shape == (1, 3, 32, 32)
    check()
    calls = iter(range(100))
    r = adversarial(insp, images, steps=20, cancel=lambda: next(calls) >= 3)
    assert r.interrupted and r.steps_done == 3 and r.input.shape == (4, 3, 32, 32)
    check()


def test_a_cancelled_event_stops_before_the_first_step(guarded):
    insp, check = guarded
    stop = threading.Event()
    stop.set()
    r = visualize(insp, Class(2), steps=10, cancel=stop)
    assert r.interrupted and r.steps_done == 0 and r.objective.shape == (0, 1)
    np.testing.assert_array_equal(r.images, PixelSpace(insp).to_uint8(torch.zeros(1, 3, 32, 32)))
    check()


def test_an_error_inside_the_callback_propagates_and_the_model_is_clean(guarded):
    insp, check = guarded

    def broken(result):
        raise RuntimeError("callback failed")
    with pytest.raises(RuntimeError, match="callback failed"):
        visualize(insp, Class(1), steps=5, callback=broken, callback_every=1)
    check()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_results_on_cuda_match_cpu(images):
    cpu = Inspector(small_cnn(), transform=Preprocess(MEAN, STD), input_size=(3, 32, 32), device="cpu")
    gpu = Inspector(small_cnn(), transform=Preprocess(MEAN, STD), input_size=(3, 32, 32), device="cuda")
    kw = dict(steps=5, lr=0.05, regularizers=[TV(0.1), Blur(0.5, 2)])
    a, b = visualize(cpu, [Class(0), Unit("conv3", 2)], **kw), visualize(gpu, [Class(0), Unit("conv3", 2)], **kw)
    torch.testing.assert_close(a.input, b.input, atol=2e-3, rtol=1e-3)
    ra, rb = adversarial(cpu, images, target=1, steps=3), adversarial(gpu, images, target=1, steps=3)
    assert ra.linf.max() <= 8 / 255 + 1e-6 and rb.linf.max() <= 8 / 255 + 1e-6
    assert gram(torch.ones(1, 2, 2, 2, device="cuda")).device.type == "cuda"
    assert hooks_left(gpu.model) == []
