"""filters(): display tiles equal a hand normalisation, on a small CNN and torchvision architectures."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from ipynetviz.engine import Inspector, LayerNotFoundError, hooks_left
from ipynetviz.engine.errors import InputError, ModelError
from ipynetviz.methods.units import filters
from tests.conftest import small_cnn

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def insp():
    return Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu")


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return Inspector(torchvision.models.resnet18(weights=None), input_size=(3, 64, 64), device="cpu")


def hand_rgb(w: np.ndarray, scale: float) -> np.ndarray:
    """One (3, kh, kw) filter -> (kh, kw, 3) display, by the documented rule, pixel by pixel."""
    out = np.zeros(w.shape[1:] + (3,))
    for c in range(3):
        for i in range(w.shape[1]):
            for j in range(w.shape[2]):
                out[i, j, c] = min(1.0, max(0.0, w[c, i, j] / (2 * scale) + 0.5))
    return out


def test_first_layer_rgb_tiles_equal_hand_normalisation(insp):
    res = filters(insp, "conv1")
    w = insp.module("conv1").weight.detach().numpy().astype(np.float64)
    assert res.mode == "rgb" and res.tiles.shape == (8, 5, 5, 3)
    for o in range(8):
        np.testing.assert_allclose(res.tiles[o], hand_rgb(w[o], np.abs(w[o]).max()), atol=1e-12)
        # each filter touches 0 or 1 at its strongest weight, and zero is mid-gray
        assert np.isclose(np.abs(res.tiles[o] - 0.5).max(), 0.5)
    glob = filters(insp, "conv1", normalization="global")
    for o in range(8):
        np.testing.assert_allclose(glob.tiles[o], hand_rgb(w[o], np.abs(w).max()), atol=1e-12)
    # globally scaled, only the filter holding the layer's largest weight reaches the ends
    reach = [np.isclose(np.abs(glob.tiles[o] - 0.5).max(), 0.5) for o in range(8)]
    assert sum(reach) == 1 and reach[int(np.abs(w).reshape(8, -1).max(1).argmax())]


def test_deeper_layer_modes(insp):
    w = insp.module("conv2").weight.detach().numpy().astype(np.float64)  # (16, 8, 3, 3)
    chans = filters(insp, "conv2", mode="channels")
    assert chans.tiles.shape == (16 * 8, 3, 3, 3)
    o, i = 5, 3
    t = chans.tiles[o * 8 + i]
    assert chans.tile_channel[o * 8 + i] == o and chans.tile_input[o * 8 + i] == i
    np.testing.assert_allclose(t[..., 0], w[o, i] / (2 * np.abs(w[o]).max()) + 0.5)
    assert np.array_equal(t[..., 0], t[..., 2])

    norm = filters(insp, "conv2")  # auto -> norm for 8 input channels
    assert norm.mode == "norm"
    tap = np.sqrt((w ** 2).sum(1))
    np.testing.assert_allclose(norm.tiles[..., 1], tap / tap.max(axis=(1, 2), keepdims=True))

    strong = filters(insp, "conv2", mode="strongest")
    best = [int(np.argmax([np.linalg.norm(w[o, i]) for i in range(8)])) for o in range(16)]
    assert strong.tile_input.tolist() == best
    for o in range(16):
        np.testing.assert_allclose(strong.tiles[o, ..., 0], w[o, best[o]] / (2 * np.abs(w[o]).max()) + 0.5)


def test_order_by_norm_and_mosaic_is_one_picture(insp):
    res = filters(insp, "conv1", order="norm")
    w = insp.module("conv1").weight.detach().numpy()
    norms = [np.linalg.norm(w[o]) for o in range(8)]
    assert res.tile_channel.tolist() == sorted(range(8), key=lambda o: -norms[o])
    by_index = filters(insp, "conv1")
    for t, o in enumerate(res.tile_channel):
        assert np.array_equal(res.tiles[t], by_index.tiles[o])
    pic, layout = res.render(scale=3, pad=1, with_layout=True)
    assert pic.dtype == np.uint8 and pic.ndim == 3 and layout.n == 8
    for t in range(8):  # the pixel under the middle of tile t is tile t's middle pixel, and clicks map back
        y, x = layout.origin(t)
        assert layout.index_at(x + 7, y + 7) == t
        assert np.array_equal(pic[y + 7, x + 7], res.uint8()[t, 2, 2])
    chans = filters(insp, "conv2", mode="channels")
    _, layout = chans.render(with_layout=True)
    assert layout.ncols == 8 and layout.nrows == 16  # one row per filter, one column per input channel


def test_grayscale_first_layer():
    torch.manual_seed(1)
    insp = Inspector(small_cnn(in_ch=1), input_size=(1, 32, 32), device="cpu")
    res = filters(insp, "conv1")
    w = insp.module("conv1").weight.detach().numpy().astype(np.float64)
    assert res.mode == "gray" and res.tiles.shape == (8, 5, 5, 3)
    np.testing.assert_allclose(res.tiles[3, ..., 1], w[3, 0] / (2 * np.abs(w[3]).max()) + 0.5)


def test_torchvision_first_layers(resnet):
    res = filters(resnet, "conv1")  # 64 x 3 x 7 x 7
    w = resnet.module("conv1").weight.detach().numpy().astype(np.float64)
    assert res.tiles.shape == (64, 7, 7, 3)
    np.testing.assert_allclose(res.tiles[17], hand_rgb(w[17], np.abs(w[17]).max()), atol=1e-12)
    torch.manual_seed(0)
    alex = Inspector(torchvision.models.alexnet(weights=None), input_size=(3, 224, 224), device="cpu")
    a = filters(alex, "features.0")  # AlexNet's 64 x 3 x 11 x 11
    assert a.tiles.shape == (64, 11, 11, 3) and a.mode == "rgb"


def test_512_channel_layer_is_one_picture(resnet):
    res = filters(resnet, "layer4.1.conv2", order="norm")  # 512 x 512 x 3 x 3
    pic, layout = res.render(with_layout=True)
    assert layout.n == 512 and pic.shape[0] * pic.shape[1] < 2000 * 2000
    assert np.all(np.diff(res.norms[res.tile_channel]) <= 0)


def test_bad_input(insp):
    with pytest.raises(ModelError, match="not a convolution"):
        filters(insp, "fc")
    with pytest.raises(InputError, match="needs 3 input channels"):
        filters(insp, "conv2", mode="rgb")
    with pytest.raises(InputError, match="unknown mode"):
        filters(insp, "conv1", mode="colour")
    with pytest.raises(InputError, match="unknown order"):
        filters(insp, "conv1", order="size")
    with pytest.raises(LayerNotFoundError, match="conv1"):
        filters(insp, "conv_1")
    assert hooks_left(insp.model) == []


def test_dead_filter_is_flat_gray():
    conv = nn.Conv2d(3, 2, 3)
    with torch.no_grad():
        conv.weight[1] = 0
    res = filters(Inspector(nn.Sequential(conv), input_size=(3, 8, 8), device="cpu"), "0")
    assert np.all(res.tiles[1] == 0.5) and np.isfinite(res.tiles).all()
