"""The Inspector on real models: layers, shapes, activations, batching, model state, cache."""
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from ipynetviz.engine import Inspector, LayerNotFoundError, hooks_left
from tests.conftest import small_cnn


def test_layers_follow_forward_order_and_shapes_match(insp, images):
    assert insp.layers[:4] == ["conv1", "relu1", "pool1", "conv2"]
    assert insp.conv_layers == ["conv1", "conv2", "conv3"]
    info = insp.layer_info("pool2")
    assert info.module_type == "MaxPool2d" and info.output_shape == (16, 8, 8) and info.channels == 16
    assert insp.layer_info("fc").output_shape == (5,) and insp.num_classes == 5
    acts = insp.activations(images, insp.layers)
    for name in insp.layers:
        assert tuple(acts[name].shape[1:]) == insp.layer_shape(name)


def test_torchvision_layer_order_resnet18():
    insp = Inspector(torchvision.models.resnet18(weights=None), input_size=(3, 64, 64), device="cpu")
    layers = insp.layers
    assert layers.index("conv1") < layers.index("layer1") < layers.index("layer1.0.conv1") < layers.index("fc")
    assert insp.layer_shape("layer2") == (128, 8, 8)
    assert "layer1.0.relu" in layers  # a ReLU module reused twice appears once


def test_activations_equal_a_manual_forward_and_do_not_depend_on_batching(insp, cnn, images):
    x = images.float() / 255
    with torch.no_grad():
        cnn.eval()
        ref = cnn[:6](x)  # up to relu2
    a1 = insp.activations(images, ["relu2", "conv1"])
    a2 = insp.activations(images, ["relu2"], batch_size=4)
    torch.testing.assert_close(a1["relu2"], ref)
    torch.testing.assert_close(a2["relu2"], ref)
    assert set(a1) == {"relu2", "conv1"}
    assert not a1["relu2"].requires_grad and a1["relu2"].device.type == "cpu"


def test_model_mode_and_requires_grad_are_restored(cnn, images):
    cnn.train()
    cnn.conv2.weight.requires_grad_(False)
    insp = Inspector(cnn, input_size=(3, 32, 32))
    running = cnn.bn2.running_mean.clone()
    insp.activations(images, ["fc"])
    insp.forward(images)
    insp.gradient_of(insp.prepare(images), 1)
    assert all(m.training for m in cnn.modules())
    assert cnn.conv1.weight.requires_grad and not cnn.conv2.weight.requires_grad
    assert torch.equal(cnn.bn2.running_mean, running), "ran in eval mode: BN statistics untouched"
    assert all(p.grad is None for p in cnn.parameters())
    assert hooks_left(cnn) == []


def test_eval_mode_changes_results_of_a_train_mode_model(cnn, images):
    cnn.train()
    insp = Inspector(cnn, input_size=(3, 32, 32))
    x = images.float() / 255
    cnn.eval()
    with torch.no_grad():
        ref = cnn(x)
    cnn.train()
    torch.testing.assert_close(insp.forward(images).cpu(), ref)


def test_unknown_layer_lists_close_matches(insp):
    with pytest.raises(LayerNotFoundError) as e:
        insp.activations(torch.zeros(1, 3, 32, 32), ["conv_3"])
    assert "did you mean 'conv3'" in str(e.value) and "insp.layers lists all" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, LookupError)


def test_iter_batches_streams_with_no_hook_between_batches(insp, images):
    seen = []
    for sl, x, acts in insp.iter_batches(images, ["conv2"], batch_size=4, logits=True):
        assert hooks_left(insp.model) == []
        assert not insp.model.training or True
        seen.append((sl, acts["conv2"].shape[0], acts["logits"].shape))
    assert [s[0] for s in seen] == [slice(0, 4), slice(4, 6)]
    assert seen[0][2] == (4, 5)


def test_gradient_matches_autograd_reference(insp, cnn, images):
    x = insp.prepare(images)
    g, s = insp.gradient_of(x, 2)
    cnn.eval()
    xr = x.clone().requires_grad_(True)
    out = cnn(xr)[:, 2].sum()
    ref, = torch.autograd.grad(out, xr)
    torch.testing.assert_close(g, ref)
    from ipynetviz.engine import Unit
    g2, s2 = insp.gradient_of(x, Unit("conv2", 3, 4, 5))
    xr = x.clone().requires_grad_(True)
    ref2, = torch.autograd.grad(cnn[:4](xr)[:, 3, 4, 5].sum(), xr)
    torch.testing.assert_close(g2, ref2)


def test_cache_serves_repeats_and_sees_weight_changes(insp, images):
    calls = []

    def compute():
        calls.append(1)
        return insp.forward(images)
    a = insp.cached("logits", {}, images, compute)
    b = insp.cached("logits", {}, images.clone(), compute)
    assert len(calls) == 1 and a is b
    with torch.no_grad():
        insp.model.fc.bias.add_(1.0)  # an in-place update bumps the version: no stale result
    c = insp.cached("logits", {}, images, compute)
    assert len(calls) == 2
    torch.testing.assert_close(c, a + 1.0)
    insp.cached("logits", {"other": 1}, images, compute)
    assert len(calls) == 3
    insp.clear_cache()
    assert len(insp.cache) == 0


def test_cache_evicts_beyond_its_memory_cap():
    from ipynetviz.engine import ResultCache
    c = ResultCache(max_bytes=3 * 4000 + 500)
    for i in range(5):
        c.put(i, torch.zeros(1000))
    assert list(c._items) == [2, 3, 4] and c.bytes_used <= c.max_bytes
    c.get(2)
    c.put(5, torch.zeros(1000))
    assert list(c._items) == [4, 2, 5]


def test_out_of_memory_halves_the_batch(insp, images, monkeypatch):
    calls = []
    real = insp.model.forward

    def flaky(x):
        calls.append(x.shape[0])
        if x.shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
        return real(x)
    monkeypatch.setattr(insp.model, "forward", flaky)
    out = insp.forward(images, batch_size=6)
    assert out.shape == (6, 5) and calls[:3] == [6, 3, 1]


def test_device_auto_and_explicit(cnn):
    insp = Inspector(cnn, device="auto")
    assert insp.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert next(cnn.parameters()).device.type == insp.device.type
    assert Inspector(cnn, device="cpu").device == torch.device("cpu")


def test_input_size_inferred_when_not_given():
    insp = Inspector(small_cnn(), device="cpu")
    assert insp.input_size[0] == 3 and insp.num_classes == 5


def test_two_threads_never_run_the_model_at_once(insp, images):
    """Views work in background threads; the eval guard serialises them so hooks never cross."""
    import threading
    insp.layers  # the one-time trace (layer order, shapes, layouts) runs before counting
    inside, overlap = [0], []
    real = insp.model.forward

    def counting(x):
        inside[0] += 1
        overlap.append(inside[0])
        try:
            import time
            time.sleep(0.01)
            return real(x)
        finally:
            inside[0] -= 1
    insp.model.forward = counting
    try:
        ts = [threading.Thread(target=lambda: [insp.activations(images, ["conv2"]) for _ in range(5)])
              for _ in range(3)]
        [t.start() for t in ts]
        [t.join() for t in ts]
    finally:
        del insp.model.forward
    assert max(overlap) == 1 and len(overlap) == 15
    assert hooks_left(insp.model) == []


def test_one_door_per_method(insp):
    """Methods are called as ``methods.x(insp, ...)``: the Inspector has no copies that would import them."""
    from ipynetviz import methods as M
    for name in ("gradient", "saliency", "guided_backprop", "deconvnet", "occlusion", "top_patches", "embed"):
        assert not hasattr(insp, name) and callable(getattr(M, name))


def test_image_sets_are_cached_by_content_not_by_size(insp, images):
    from ipynetviz.engine import ImageSet, fingerprint
    a, b = ImageSet(images), ImageSet(images.flip(0))
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) == fingerprint(ImageSet(images.clone()))
    assert fingerprint(ImageSet(images, labels=[0] * 6)) != fingerprint(a)
    calls = []
    for data in (a, b, ImageSet(images.clone())):
        insp.cached("acts", {}, data, lambda: calls.append(1))
    assert len(calls) == 2


class _TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from tests.conftest import small_cnn
        self.net = small_cnn()

    def forward(self, image, scale):
        return self.net(image * scale)


class _DictInput(_TwoInputs):
    def forward(self, batch):
        return self.net(batch["image"] * batch["scale"])


def test_models_that_do_not_take_one_tensor_get_an_adapter():
    from ipynetviz.engine.errors import ModelError
    from ipynetviz.methods import saliency
    with pytest.raises(ModelError, match="takes 2 arguments.*input_adapter=lambda x: \\(x, ...\\)"):
        Inspector(_TwoInputs(), input_size=(3, 32, 32), device="cpu")
    with pytest.raises(ModelError, match="input_adapter"):  # one argument, but a dict: found by the trace
        Inspector(_DictInput(), input_size=(3, 32, 32), device="cpu").layers
    x = torch.rand(2, 3, 32, 32)
    ref_model = _TwoInputs()
    ref = Inspector(ref_model.net, input_size=(3, 32, 32), device="cpu")
    for model, adapter in ((ref_model, lambda b: (b, 1.0)), (_DictInput(), lambda b: {"batch": {"image": b,
                                                                                                "scale": 1.0}})):
        model.net.load_state_dict(ref_model.net.state_dict())
        insp = Inspector(model, input_size=(3, 32, 32), device="cpu", input_adapter=adapter)
        assert insp.layers == ["net"] + [f"net.{n}" for n in ref.layers]  # the model's own layer names
        torch.testing.assert_close(insp.activations(x, ["net.conv2"])["net.conv2"],
                                   ref.activations(x, ["conv2"])["conv2"])
        torch.testing.assert_close(saliency(insp, x, 1).attributions, saliency(ref, x, 1).attributions)
        assert hooks_left(model) == []
