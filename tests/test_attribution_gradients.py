"""Gradient, saliency, guided backprop and deconvnet against Captum and hand-written references."""
import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ipynetviz.engine import Class, Inspector, Unit, hooks_left
from ipynetviz.methods.attribution import (AttributionResult, attribute, deconvnet, gradient, guided_backprop,
                                           saliency)
from ipynetviz.methods.attribution.relu_rules import ReluOverride
from tests.conftest import small_cnn

captum_attr = pytest.importorskip("captum.attr")

TORCHVISION = [("resnet18", 64), ("vgg11", 32), ("alexnet", 64)]


def random_torchvision(arch: str, seed: int = 0) -> nn.Module:
    """A torchvision architecture with random weights, built on the meta device and filled in one pass.

    VGG's default initialisation of its 120M classifier weights takes seconds; one normal_() pass does not.
    """
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None)
    model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0, (2.0 / fan_in) ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0, 0.01, generator=g)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.num_batches_tracked.zero_()
    return model.eval()


def _captum(cls, model, x, target):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns that it sets hooks on ReLUs
        return cls(model).attribute(x.clone().requires_grad_(True), target=target).detach()


@pytest.mark.parametrize("arch,size", TORCHVISION)
def test_guided_backprop_and_deconvnet_equal_captum_on_torchvision(arch, size):
    torch.manual_seed(0)
    model = random_torchvision(arch)
    insp = Inspector(model, input_size=(3, size, size), device="cpu")
    x = torch.randn(2, 3, size, size)
    for ours, theirs in [(guided_backprop, captum_attr.GuidedBackprop), (deconvnet, captum_attr.Deconvolution)]:
        got = ours(insp, x, target=7).attributions
        want = _captum(theirs, model, x, 7)
        assert want.abs().max() > 0
        assert (got - want).abs().max() <= 1e-5 * max(1.0, float(want.abs().max()))
    assert hooks_left(model) == []


def test_guided_backprop_equals_captum_on_the_trained_teaching_cnn():
    from ipynetviz import zoo
    insp = zoo.load("shapes-cnn", seed=0, device="cpu")
    images, labels = zoo.shapes(4, split="test")
    x = insp.prepare(images).cpu()
    for ours, theirs in [(guided_backprop, captum_attr.GuidedBackprop), (deconvnet, captum_attr.Deconvolution)]:
        got = ours(insp, x, target=Class(tuple(labels.tolist()))).attributions
        want = _captum(theirs, insp.model, x, torch.as_tensor(labels))
        assert (got - want).abs().max() <= 1e-5 * max(1.0, float(want.abs().max()))


def test_gradient_and_saliency_equal_autograd_and_captum(cnn):
    insp = Inspector(cnn, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(3, 3, 32, 32)
    cnn.eval()
    xr = x.clone().requires_grad_(True)
    want, = torch.autograd.grad(cnn(xr)[:, 2].sum(), xr)
    r = gradient(insp, x, 2)
    assert torch.allclose(r.attributions, want, atol=1e-7)
    s = saliency(insp, x, 2)
    assert s.attributions.shape == (3, 32, 32)
    assert torch.allclose(s.attributions, want.abs().amax(1), atol=1e-7)
    ref = _captum(captum_attr.Saliency, cnn, x, 2)  # Captum's Saliency keeps the channels: |grad|
    assert torch.allclose(s.attributions, ref.amax(1), atol=1e-7)
    assert torch.allclose(r.scores, cnn(x)[:, 2].detach(), atol=1e-6)


class FunctionalRelus(nn.Module):
    """ReLUs called every way Captum cannot see: F.relu, torch.relu, an in-place relu_, and one module reused."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.c3 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.c4 = nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.ReLU(inplace=True)   # reused twice
        self.fc = nn.Linear(8, 4)

    def linear_parts(self):
        return [self.c1, self.c2, self.c3, self.c4]

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        x = self.c3(x).relu_()
        x = self.act(self.c4(x))
        x = self.act(x * 1.0)              # the same module again (a no-op on values, but a second ReLU)
        return self.fc(x.mean((2, 3)))


def _reference(model: FunctionalRelus, x: torch.Tensor, k: int, rule: str) -> torch.Tensor:
    """Backward written out by hand: explicit masks at each ReLU, autograd only through the linear convs."""
    pre, inputs = [], []
    h = x
    for conv in model.linear_parts():
        inputs.append(h.detach().requires_grad_(True))
        a = conv(inputs[-1])
        pre.append(a)
        h = a.clamp_min(0)
    # the reused ReLU runs once more on the (already non-negative) output
    pre.append(h)
    n, c, hh, ww = h.shape
    g = model.fc.weight[k].view(1, c, 1, 1).expand(n, c, hh, ww) / (hh * ww)

    def through_relu(g, a):
        return g.clamp_min(0) * (a > 0) if rule == "guided" else g.clamp_min(0)
    g = through_relu(g, pre[-1])
    for i in reversed(range(len(model.linear_parts()))):
        g = through_relu(g, pre[i])
        g, = torch.autograd.grad(pre[i], inputs[i], g)
    return g


@pytest.mark.parametrize("method,rule", [(guided_backprop, "guided"), (deconvnet, "deconvnet")])
def test_functional_inplace_and_reused_relus_equal_a_hand_written_backward(method, rule):
    model = FunctionalRelus().eval()
    insp = Inspector(model, input_size=(3, 16, 16), device="cpu")
    x = torch.randn(2, 3, 16, 16)
    got = method(insp, x, target=1).attributions
    want = _reference(model, x, 1, rule)
    assert want.abs().max() > 0
    assert torch.allclose(got, want, atol=1e-6)
    # and the raw gradient differs from both: the override is what changed the result
    plain = gradient(insp, x, 1).attributions
    assert not torch.allclose(plain, want, atol=1e-4)


def test_override_counts_every_relu_call_and_keeps_forward_values():
    model = FunctionalRelus().eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        want = model(x)
    with ReluOverride("guided") as mode:
        got = model(x.requires_grad_(True))
    assert mode.relus_seen == 5
    assert torch.allclose(got, want)


def test_unit_targets_explain_the_mean_of_a_map_or_one_neuron(cnn):
    insp = Inspector(cnn, input_size=(3, 32, 32), device="cpu")
    cnn.eval()
    x = torch.randn(2, 3, 32, 32)
    xr = x.clone().requires_grad_(True)
    acts = {}
    h = cnn.conv2.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    try:
        cnn(xr)
    finally:
        h.remove()
    want_mean, = torch.autograd.grad(acts["a"][:, 5].mean((1, 2)).sum(), xr, retain_graph=True)
    want_one, = torch.autograd.grad(acts["a"][:, 5, 3, 4].sum(), xr)
    assert torch.allclose(gradient(insp, x, Unit("conv2", 5)).attributions, want_mean, atol=1e-7)
    assert torch.allclose(gradient(insp, x, Unit("conv2", 5, 3, 4)).attributions, want_one, atol=1e-7)
    # a neuron only sees its receptive field: conv1 5x5, pool 2, conv2 3x3 -> 10x10 pixels at most
    support = want_one[0].abs().sum(0).nonzero()
    assert support[:, 0].max() - support[:, 0].min() < 10


def test_batching_and_per_image_targets_do_not_change_results(cnn):
    insp = Inspector(cnn, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(5, 3, 32, 32)
    targets = Class((0, 1, 2, 3, 4))
    whole = guided_backprop(insp, x, targets).attributions
    parts = guided_backprop(insp, x, targets, batch_size=2).attributions
    assert torch.allclose(whole, parts, atol=1e-7)
    one = guided_backprop(insp, x[3:4], 3).attributions
    assert torch.allclose(whole[3:4], one, atol=1e-7)


def test_no_target_means_each_images_predicted_class(cnn):
    insp = Inspector(cnn, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(4, 3, 32, 32)
    pred = insp.forward(x).argmax(1)
    r = attribute(insp, x, None, "gradient")
    assert r.target.startswith("class")
    assert torch.allclose(r.attributions, gradient(insp, x, Class(tuple(pred.tolist()))).attributions)


def test_results_are_frozen_and_render_to_pictures(cnn):
    insp = Inspector(cnn, input_size=(3, 32, 32), device="cpu")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    r = guided_backprop(insp, images, 1)
    assert isinstance(r, AttributionResult) and len(r) == 2
    with pytest.raises(Exception):
        r.method = "x"
    assert r.to_numpy().shape == (2, 3, 32, 32)
    rgb = r.render(0)
    assert rgb.shape == (32, 32, 3) and rgb.dtype.name == "uint8"
    # signed map: zero gradient renders mid-grey, the largest |value| reaches an end of the range
    assert abs(int(rgb.astype(int).min()) - 0) <= 1 or abs(int(rgb.astype(int).max()) - 255) <= 1
    over = r.render(1, kind="overlay")
    assert over.shape == (32, 32, 3)
    assert (r.images[1] == images[1].permute(1, 2, 0).numpy()).all()
    heat = saliency(insp, images, 1).render(0)
    assert heat.shape == (32, 32, 3)


def test_cached_results_are_served_again(cnn):
    insp = Inspector(cnn, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(2, 3, 32, 32)
    a = deconvnet(insp, x, 1)
    b = deconvnet(insp, x, 1)
    assert a is b and insp.cache.hits >= 1
    assert deconvnet(insp, x, 2) is not a


def test_small_cnn_sequential_matches_captum_with_unit_free_model():
    model = small_cnn(seed=4).eval()
    insp = Inspector(model, input_size=(3, 32, 32), device="cpu")
    x = torch.randn(3, 3, 32, 32)
    got = guided_backprop(insp, x, 0).attributions
    want = _captum(captum_attr.GuidedBackprop, model, x, 0)
    assert (got - want).abs().max() <= 1e-6


ACTIVATIONS = [nn.ReLU6(inplace=True), nn.SiLU(inplace=True), nn.GELU(), nn.GELU(approximate="tanh"), nn.Hardswish(),
               nn.LeakyReLU(0.1), nn.ELU(), nn.Mish(), nn.CELU(0.5), nn.SELU()]


def _slope(act: nn.Module, z: torch.Tensor) -> torch.Tensor:
    zd = z.detach().clone().requires_grad_()
    y = act(zd.clone())
    return torch.autograd.grad(y, zd, torch.ones_like(y))[0]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: repr(a))
@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_the_rule_at_every_activation_equals_a_hand_written_backward(act, method):
    """guided: x.grad = I[y.grad > 0] y.grad s'(x); deconvnet: x.grad = max(y.grad, 0), at every activation."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), act, nn.Conv2d(4, 5, 3), copy.deepcopy(act), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(5, 2)).eval()
    insp = Inspector(m, input_size=(3, 8, 8), device="cpu")
    x = torch.randn(2, 3, 8, 8)
    got = (guided_backprop if method == "guided_backprop" else deconvnet)(insp, x, 1).attributions
    with torch.no_grad():
        a1 = m[0](x)
        h1 = m[1](a1.clone())
        a2 = m[2](h1)
    gh2 = m[6].weight[1].view(1, 5, 1, 1).expand(2, 5, *a2.shape[-2:]) / a2[0, 0].numel()

    def through(g, act_module, z):
        return g.clamp_min(0) * _slope(act_module, z) if method == "guided_backprop" else g.clamp_min(0)
    ga2 = through(gh2, m[3], a2)
    ga1 = through(torch.nn.grad.conv2d_input(h1.shape, m[2].weight, ga2), m[1], a1)
    want = torch.nn.grad.conv2d_input(x.shape, m[0].weight, ga1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert hooks_left(m) == []
