"""Any model a user brings: torchvision classifiers with random weights, read right by every part.

A fast subset runs in every CI run; ``pytest -m models_full tests/test_model_sweep.py`` runs all 18 (minutes: ViT
and MaxViT need 224 x 224 inputs). For each model: the layer list, true channel counts on three layers,
activations equal a manual hook, gradient methods run, occlusion equals the plain model, the four main widgets
construct with no error, no hook is left and the train/eval mode is restored.
"""
from __future__ import annotations

import pytest
import torch
import torchvision

from ipynetviz.engine import Inspector, Unit, hooks_left
from ipynetviz.engine.hooks import first_tensor
from ipynetviz.methods import attribution as A

# name -> input side; the fast ones run in CI
FAST = {"alexnet": 64, "resnet18": 32, "mobilenet_v3_small": 32, "convnext_tiny": 32, "swin_t": 32}
FULL = {"vgg11_bn": 32, "resnet50": 32, "densenet121": 32, "googlenet": 64, "inception_v3": 96, "mobilenet_v2": 32,
        "efficientnet_b0": 32, "shufflenet_v2_x1_0": 32, "squeezenet1_0": 64, "regnet_y_400mf": 32, "mnasnet0_5": 32,
        "vit_b_16": 224, "maxvit_t": 224}
MODELS = [pytest.param(n, s, id=n) for n, s in FAST.items()] + [
    pytest.param(n, s, id=n, marks=pytest.mark.models_full) for n, s in FULL.items()]


def _build(name: str):
    torch.manual_seed(0)
    kw = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    return getattr(torchvision.models, name)(weights=None, **kw)


def _modes(model):
    return [m.training for m in model.modules()]


@pytest.mark.parametrize("name, side", MODELS)
def test_model_is_read_right_everywhere(name, side):
    from ipynetviz.widgets import ActivationBrowser, FilterGrid, NeuronPicker, OcclusionExplorer

    model = _build(name).train()
    before = _modes(model)
    insp = Inspector(model, input_size=(3, side, side), device="cpu")
    layers = insp.spatial_layers
    assert layers and insp.layers
    picks = [layers[0], layers[len(layers) // 2], layers[-1]]
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    modules = dict(model.named_modules())
    for layer in picks:
        # activations equal a manual hook, turned canonical by the traced layout; channels are the true ones
        got = {}
        # (a clone: an in-place ReLU after the layer would change the stored output; the hook returns None)
        h = modules[layer].register_forward_hook(lambda m, i, o: got.update(o=first_tensor(o).clone()))
        try:
            mode = model.training
            with torch.no_grad():
                model.eval()(x)
        finally:
            h.remove()
            model.train(mode)
        want = insp.layout(layer).canonical(got["o"])
        acts = insp.activations(x, [layer])[layer]
        torch.testing.assert_close(acts, want, rtol=1e-4, atol=1e-5)
        assert insp.layer_shape(layer)[0] == want.shape[1]
    unit = Unit(picks[1], insp.layer_shape(picks[1])[0] - 1)
    for method in (A.gradient, A.saliency, A.guided_backprop, A.deconvnet):
        r = method(insp, x[:1], unit)
        assert torch.isfinite(r.attributions).all()
    occ = A.occlusion(insp, x[:1], 0, window=side // 2, stride=side // 2)
    plain = A.occlusion(insp, x[:1], 0, window=side // 2, stride=side // 2, incremental=False)
    torch.testing.assert_close(occ.scores, plain.scores, rtol=1e-4, atol=1e-4)
    images = (x * 255).to(torch.uint8)
    views = [NeuronPicker(insp, images, synchronous=True), ActivationBrowser(insp, images, synchronous=True),
             OcclusionExplorer(insp, images, window=side // 2, stride=side // 2, synchronous=True)]
    if insp.conv_layers:
        views.append(FilterGrid(insp, synchronous=True))
    for view in views:
        assert view.error.message == "", (type(view).__name__, view.error.message)
    assert hooks_left(model) == [] and _modes(model) == before
