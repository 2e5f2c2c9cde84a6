"""Occlusion against Captum and brute force; incremental inference against the plain model on many architectures."""
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ipynetviz.engine import Class, Inspector, LatestExecutor, Preprocess, Unit, hooks_left
from ipynetviz.methods.attribution import OcclusionResult, occlusion
from ipynetviz.methods.attribution.occlusion import grid_positions
from ipynetviz.methods.attribution.incremental import build_runner, occlude
from tests.conftest import small_cnn
from tests.test_attribution_gradients import random_torchvision

captum_attr = pytest.importorskip("captum.attr")


def _captum_occlusion(model, x, window, stride, baselines, target):
    c = x.shape[1]
    return captum_attr.Occlusion(model).attribute(
        x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride), baselines=baselines,
        target=target, perturbations_per_eval=16)


@pytest.mark.parametrize("fill", ["zero", "mean", "blur", (0.2, 0.5, 0.9)])
def test_attribution_equals_captum_occlusion_on_a_small_cnn(fill):
    model = small_cnn(seed=1).eval()
    insp = Inspector(model, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(2, 3, 32, 32)
    r = occlusion(insp, x, target=Class((1, 3)), window=8, stride=5, fill=fill, batch_size=7)
    want = _captum_occlusion(model, x, 8, 5, r.fill_inputs, torch.tensor([1, 3]))
    # Captum spreads the same value over the window's channels; ours is one map per image
    assert torch.equal(want[:, 0], want[:, 2])
    assert np.abs(r.attribution() - want[:, 0].numpy()).max() <= 1e-5
    assert r.scores.shape == (2, 6, 6)  # ceil((32 - 8) / 5) + 1 positions, the last clipped
    assert r.box(5, 5) == (25, 32, 25, 32)


def test_resnet18_incremental_equals_captum_and_brute_force():
    model = random_torchvision("resnet18")
    insp = Inspector(model, input_size=(3, 64, 64), device="cpu")
    x = torch.randn(1, 3, 64, 64)
    fast = occlusion(insp, x, target=5, window=16, stride=12)
    plain = occlusion(insp, x, target=5, window=16, stride=12, incremental=False)
    assert fast.incremental and not plain.incremental
    assert (fast.scores - plain.scores).abs().max() <= 1e-4
    want = _captum_occlusion(model, x, 16, 12, 0.0, 5)
    assert np.abs(fast.attribution() - want[:, 0].numpy()).max() <= 1e-4
    assert hooks_left(model) == []


class Odd(nn.Module):
    """Every layer kind the incremental path analyses, with awkward settings: 'same' padding with an even
    dilated kernel, ceil-mode pooling, asymmetric padding, groups, average pooling, in-place and functional
    ReLUs, a constant scale, a skip connection, a channel concat and a squeeze-excitation gate (a product with
    a tensor that depends on the whole image, so it must not be treated as element-wise)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.c1 = nn.Conv2d(3, 8, 4, padding="same", dilation=2)
        self.p1 = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=(1, 2), groups=2)
        self.a = nn.AvgPool2d(3, 1, padding=1)
        self.c3 = nn.Conv2d(8, 8, 5, padding=2)
        self.b = nn.BatchNorm2d(8)
        self.se = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 5)
        with torch.no_grad():
            self.b.running_mean.normal_()
            self.b.running_var.uniform_(0.5, 2)

    def forward(self, x):
        y = F.relu(self.c1(x))
        y = self.p1(y)
        y = torch.relu(self.c2(y))
        z = self.a(y) * 0.5 + y
        z = self.b(self.c3(z)).relu_()
        z = torch.cat([z, y], 1)[:, :8]
        z = z * torch.sigmoid(self.se(z.mean((2, 3), keepdim=True)))
        return self.fc(z.mean((2, 3)))


def _brute(model, x, fill, boxes):
    with torch.no_grad():
        return model(occlude(x, fill, boxes))


ARCHS = [("odd", 37), ("vgg11", 40), ("alexnet", 67), ("squeezenet1_0", 48)]


@pytest.mark.parametrize("arch,size", ARCHS)
def test_incremental_runner_equals_the_plain_model(arch, size):
    model = Odd().eval() if arch == "odd" else random_torchvision(arch)
    x = torch.randn(1, 3, size, size)
    fill = torch.randn_like(x)
    with torch.no_grad():
        runner = build_runner(model, x)
        assert runner is not None
        for window, stride in [(7, 4), (12, 9)]:
            ys = grid_positions(size, window, stride)
            yy, xx = np.meshgrid(ys, ys, indexing="ij")
            boxes = np.stack([yy.ravel(), np.minimum(yy.ravel() + window, size),
                              xx.ravel(), np.minimum(xx.ravel() + window, size)], 1)[:20]
            got = runner.run(boxes, x, fill)
            want = _brute(model, x, fill, boxes)
            assert runner.incremental_nodes >= 3, "nothing was computed incrementally"
            assert (got - want).abs().max() <= 1e-5 * max(1.0, float(want.abs().max()))


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, so occlusion must fall back to plain batches."""

    def __init__(self):
        super().__init__()
        self.net = small_cnn(seed=5)

    def forward(self, x):
        if x.sum() > 1e9:
            return -self.net(x)
        return self.net(x)


def test_untraceable_model_falls_back_to_plain_batches_with_the_same_result():
    model = Branchy().eval()
    insp = Inspector(model, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(1, 3, 32, 32)
    r = occlusion(insp, x, target=2, window=8, stride=4)
    assert not r.incremental
    want = _captum_occlusion(model, x, 8, 4, 0.0, 2)
    assert np.abs(r.attribution() - want[:, 0].numpy()).max() <= 1e-5


def test_scores_probabilities_and_baseline_are_the_models():
    model = small_cnn(seed=6).eval()
    insp = Inspector(model, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(1, 3, 32, 32)
    r = occlusion(insp, x, window=10, stride=6, fill="mean")
    pred = int(model(x).argmax())
    assert r.target_classes == (pred,)
    with torch.no_grad():
        assert torch.allclose(r.baseline_score, model(x)[:, pred], atol=1e-5)
        occluded = r.occluded(0, 2, 1)
        logits = model(occluded)
    y0, y1, x0, x1 = r.box(2, 1)
    assert torch.equal(occluded[0, :, y0:y1, x0:x1], x[0].mean((1, 2), keepdim=True).expand(3, y1 - y0, x1 - x0))
    assert abs(float(r.scores[0, 2, 1]) - float(logits[0, pred])) <= 1e-5
    assert abs(float(r.probabilities[0, 2, 1]) - float(logits.softmax(1)[0, pred])) <= 1e-6
    assert np.allclose(r.drop(), (r.baseline_score.view(-1, 1, 1) - r.scores).numpy())
    assert r.cell_at(y0 + 5, x0 + 5) == (2, 1)


def test_unit_target_scores_the_mean_of_a_feature_map():
    model = small_cnn(seed=7).eval()
    insp = Inspector(model, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(1, 3, 32, 32)
    fast = occlusion(insp, x, target=Unit("relu2", 3), window=8, stride=8)
    plain = occlusion(insp, x, target=Unit("relu2", 3), window=8, stride=8, incremental=False)
    assert fast.probabilities is None and fast.target_classes is None
    with torch.no_grad():
        occ = occlude(x, torch.zeros_like(x), np.array([[8, 16, 16, 24]]))
        want = model[:6](occ)[0, 3].mean()
    assert abs(float(fast.scores[0, 1, 2]) - float(want)) <= 1e-5
    assert (fast.scores - plain.scores).abs().max() <= 1e-5


def test_progressive_mode_shows_a_coarse_grid_first_then_the_same_final_result():
    model = small_cnn(seed=8).eval()
    insp = Inspector(model, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(1, 3, 32, 32)
    seen = []
    final = occlusion(insp, x, target=0, window=8, stride=4, progressive=True, callback=seen.append)
    assert [s.complete for s in seen] == [False, True]
    coarse = seen[0]
    assert coarse.stride == (8, 8) and coarse.grid_shape == (4, 4) and final.grid_shape == (7, 7)
    # the coarse cells are the fine grid's even cells, computed once
    assert torch.equal(coarse.scores[0], final.scores[0, ::2, ::2])
    insp.clear_cache()
    direct = occlusion(insp, x, target=0, window=8, stride=4)
    assert torch.allclose(direct.scores, final.scores, atol=1e-6)


def test_progress_and_cancel():
    model = small_cnn(seed=9).eval()
    insp = Inspector(model, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(1, 3, 32, 32)
    steps = []
    occlusion(insp, x, target=0, window=4, stride=4, batch_size=16, progress=lambda d, t: steps.append((d, t)))
    assert steps[-1] == (64, 64) and len(steps) == 4
    stop = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        stop.set()
    # the one cancel protocol: stop at the next check and return what is done, marked incomplete
    part = occlusion(insp, x, target=1, window=4, stride=4, batch_size=16, cancel=stop, progress=progress)
    assert calls == [16] and not part.complete
    assert int(torch.isfinite(part.scores).sum()) == 16 and part.scores.shape == (1, 8, 8)
    full = occlusion(insp, x, target=1, window=4, stride=4, batch_size=16)  # the partial run was not cached
    assert full.complete and torch.isfinite(full.scores).all()
    done = torch.isfinite(part.scores)
    torch.testing.assert_close(part.scores[done], full.scores[done])
    assert hooks_left(model) == [] and not model.training
    # a superseded executor ticket stops the job and nothing is delivered
    ex = LatestExecutor(synchronous=True)
    delivered = []

    def job(ticket):
        ex.generation += 1  # as if a newer request arrived meanwhile
        return occlusion(insp, x, target=2, window=4, stride=4, cancel=ticket)
    ex.submit(job, on_result=delivered.append)
    assert delivered == []


def test_colour_fill_goes_through_the_preprocess_normalisation():
    model = small_cnn(seed=10).eval()
    pre = Preprocess(mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.5])
    insp = Inspector(model, transform=pre, input_size=(3, 32, 32), device="cpu")
    images = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    r = occlusion(insp, images, target=0, window=8, stride=8, fill=(1.0, 0.4, 0.0))
    assert torch.allclose(r.fill_inputs[0, :, 0, 0], torch.tensor([2.5, 0.0, -0.6]), atol=1e-6)
    assert r.images.shape == (1, 32, 32, 3) and (r.images[0] == images[0].permute(1, 2, 0).numpy()).all()


def test_results_render_and_are_cached():
    model = small_cnn(seed=11).eval()
    insp = Inspector(model, input_size=(3, 32, 32), device="cpu")
    x = torch.rand(1, 3, 32, 32)
    r = occlusion(insp, x, target=0, window=8, stride=4)
    assert isinstance(r, OcclusionResult) and r.to_numpy().shape == (1, 7, 7)
    for kind in ("attribution", "drop", "probability"):
        assert r.render(0, kind=kind).shape == (32, 32, 3)
    assert r.render(0, overlay=False).shape == (32, 32, 3)
    got = []
    again = occlusion(insp, x, target=0, window=8, stride=4, callback=got.append)
    assert again is r and got == [r]


def test_stride_larger_than_window_leaves_uncovered_pixels_at_zero():
    model = small_cnn(seed=12).eval()
    insp = Inspector(model, input_size=(3, 32, 32), device="cpu")
    r = occlusion(insp, torch.randn(1, 3, 32, 32), target=0, window=4, stride=10)
    a = r.attribution()[0]
    assert r.grid_shape == (4, 4)
    assert (a[4:10] == 0).all() and (a[:, 4:10] == 0).all()
    assert np.isclose(a[0, 0], r.drop()[0, 0, 0])
