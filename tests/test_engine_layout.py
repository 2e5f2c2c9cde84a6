"""Layer layouts found by tracing: channels-last (ConvNeXt, Swin), tokens (ViT), windows (MaxViT), read right."""
from __future__ import annotations

import pytest
import torch
import torchvision

from ipynetviz.engine import Inspector, Unit, hooks_left
from ipynetviz.engine.hooks import first_tensor
from ipynetviz.methods import attribution as A
from tests.conftest import small_cnn


def _raw(model, layer, x):
    """The layer's output as the model makes it: an independent manual hook."""
    got = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: got.update(o=first_tensor(o)))
    mode = model.training
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        h.remove()
        model.train(mode)
    return got["o"]


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    return Inspector(torchvision.models.swin_t(weights=None), input_size=(3, 64, 64), device="cpu")


def test_swin_stage_is_channels_last_with_its_true_channels(swin):
    info = swin.layer_info("features.1")
    assert info.layout.kind == "channels_last" and info.raw_shape == (16, 16, 96)
    assert info.output_shape == (96, 16, 16) and info.channels == 96 and info.spatial
    x = torch.rand(2, 3, 64, 64)
    acts = swin.activations(x, ["features.1"])["features.1"]
    torch.testing.assert_close(acts, _raw(swin.model, "features.1", x).permute(0, 3, 1, 2))
    assert hooks_left(swin.model) == []


def test_unit_on_a_channels_last_layer_equals_a_brute_force_gradient(swin):
    x = torch.rand(1, 3, 64, 64)
    got = A.gradient(swin, x, Unit("features.1", 60)).attributions  # channel 60 of 96 exists
    xr = x.clone().requires_grad_()
    out = {}
    h = swin.model.features[1].register_forward_hook(lambda m, i, o: out.update(o=o))
    try:
        mode = swin.model.training
        swin.model.eval()(xr)
        want, = torch.autograd.grad(out["o"][..., 60].mean(), xr)
    finally:
        h.remove()
        swin.model.train(mode)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_convnext_block_inner_layers_are_channels_last():
    torch.manual_seed(0)
    insp = Inspector(torchvision.models.convnext_tiny(weights=None), input_size=(3, 64, 64), device="cpu")
    assert insp.layout("features.1.0.block.0").kind == "channels_first"        # the depthwise conv
    for name, channels in (("features.1.0.block.2", 96), ("features.1.0.block.3", 384)):
        info = insp.layer_info(name)
        assert info.layout.kind == "channels_last" and info.output_shape == (channels, 16, 16)
    assert insp.layout("features.1").kind == "channels_first"                   # after the block's permute back


def test_vit_encoder_layers_are_patch_grids_with_the_class_token_apart():
    torch.manual_seed(0)
    insp = Inspector(torchvision.models.vit_b_16(weights=None), input_size=(3, 224, 224), device="cpu")
    name = "encoder.layers.encoder_layer_0"
    layout = insp.layout(name)  # (layer_info says the same, and adds the receptive field: slow for ViT)
    assert layout.kind == "tokens" and layout.class_token and layout.grid == (14, 14) and layout.spatial
    assert insp.layer_shape(name) == (768, 14, 14)
    x = torch.rand(1, 3, 224, 224)
    acts = insp.activations(x, [name])[name]
    raw = _raw(insp.model, name, x)
    torch.testing.assert_close(acts, raw[:, 1:].transpose(1, 2).reshape(1, 768, 14, 14))
    assert insp.layout("heads.head").kind == "vector"


def test_maxvit_window_attention_is_not_offered_as_image_positions():
    torch.manual_seed(0)
    insp = Inspector(torchvision.models.maxvit_t(weights=None), input_size=(3, 224, 224), device="cpu")
    name = "blocks.0.layers.0.layers.window_attention.attn_layer.0"
    layout = insp.layout(name)
    assert layout.kind == "windows" and not layout.spatial
    assert "not image positions" in layout.describe()


def test_plain_cnns_are_unchanged():
    insp = Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu")
    assert {insp.layout(n).kind for n in insp.layers} <= {"channels_first", "vector"}
    assert insp.layer_info("conv2").output_shape == (16, 16, 16)
