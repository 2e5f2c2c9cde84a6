"""FilterGrid, ActivationBrowser and PatchGallery on the Python side: what they show equals the methods' results,
and a click in one moves the others through the shared Selection."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from ipynetviz.engine import Inspector, Selection, hooks_left
from ipynetviz.methods.units import filters, input_pictures, nearest_neighbours, top_patches
from ipynetviz.render import gray_tiles
from ipynetviz.widgets.activation_browser import ActivationBrowser
from ipynetviz.widgets.base import conv_for
from ipynetviz.widgets.filter_grid import FilterGrid
from ipynetviz.widgets.gallery import PatchGallery
from tests.conftest import small_cnn

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def insp():
    return Inspector(small_cnn(seed=2), input_size=(3, 32, 32), device="cpu")


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))


def tile_pixels(view, i):
    """The pixels of tile ``i`` of a ClickImage mosaic."""
    lay = view.tiles
    r, c = divmod(i, lay["ncols"])
    y, x = lay["pad"] + r * (lay["tile_h"] + lay["pad"]), lay["pad"] + c * (lay["tile_w"] + lay["pad"])
    return view.image[y:y + lay["tile_h"], x:x + lay["tile_w"]]


def test_filter_grid_shows_the_filters_and_a_click_selects(insp):
    sel = Selection()
    grid = FilterGrid(insp, selection=sel, order="norm")
    res = filters(insp, "conv1", order="norm")
    for i in (0, 5):
        scale = grid.layout_.tile_h // 5
        want = np.repeat(np.repeat(res.uint8()[i], scale, 0), scale, 1)
        assert np.array_equal(tile_pixels(grid.mosaic, i), want)
    grid.click_tile(2)
    assert grid.channel == sel.channel == int(res.tile_channel[2]) and sel.layer == "conv1"
    assert grid.mosaic.selected == 2 and f"channel <b>{grid.channel}</b>" in grid.info.value
    grid.order = "index"
    assert grid.mosaic.selected == grid.channel  # the highlight follows the channel, not the tile position
    sel.layer, sel.channel = "relu2", 11  # a ReLU shows its conv's channels
    assert grid.layer == "conv2" and grid.channel == 11 and sel.layer == "relu2"
    sel.layer = "fc"  # not a conv map: the grid keeps what it shows
    assert grid.layer == "conv2"
    assert grid.error.message == ""


def test_conv_for(insp):
    assert [conv_for(insp, n) for n in ("conv1", "relu1", "pool1", "bn2", "relu2", "pool2", "gap", "fc")] == \
        ["conv1", "conv1", "conv1", "conv2", "conv2", "conv2", "conv3", None]


def test_filter_grid_512_filters_is_one_picture():
    torch.manual_seed(0)
    net = Inspector(torchvision.models.resnet18(weights=None), input_size=(3, 64, 64), device="cpu")
    grid = FilterGrid(net, layer="layer4.1.conv2")
    assert grid.mosaic.tiles["n"] == 512 and grid.mosaic.image.ndim == 3
    grid.click_tile(300)
    assert grid.channel == 300 and grid.error.message == ""


def test_activation_browser_maps_overlay_and_patches(insp, images):
    sel = Selection()
    grid = FilterGrid(insp, selection=sel)
    browser = ActivationBrowser(insp, images, selection=sel, synchronous=True)
    assert browser.layer == "conv1" and browser.error.message == ""
    sel.image_index = 7
    acts = insp.activations(images[7:8], ["conv1"])["conv1"][0].numpy()
    assert np.allclose(browser.acts, acts, atol=1e-6)
    want = gray_tiles(acts, per_map=False)
    scale = browser.map_layout.tile_h // acts.shape[1]
    assert np.array_equal(tile_pixels(browser.maps, 4)[::scale, ::scale], want[4])
    bar = browser.maps_bar  # the mosaic's scale: the layer's range, all maps on one scale
    assert (bar.cmap, bar.lo, bar.hi) == ("gray", float(acts.min()), float(acts.max()))
    browser.per_map = True
    assert (bar.lo, bar.hi) == (0.0, 1.0) and "its own minimum" in bar.meaning
    browser.per_map = False
    grid.click_tile(6)  # the filter grid moves the browser
    assert browser.channel == 6 and browser.maps.selected == 6
    top = top_patches(insp, images, "conv1", k=9)
    assert np.array_equal(browser.top.image_indices, top.image_indices)
    crops = top.crops(6)
    s = browser.patch_view.tiles["tile_h"] // crops.shape[-1]
    assert np.array_equal(tile_pixels(browser.patch_view, 0)[::s, ::s], crops[0].transpose(1, 2, 0))
    browser.click_map(3)  # and the browser moves the grid
    assert grid.channel == 3 == sel.channel
    browser.layer = "relu2"
    assert sel.layer == "relu2" and grid.layer == "conv2" and browser.acts.shape[0] == 16
    browser.patch_view.simulate_click(5, 5)  # the first patch opens its image
    assert browser.image_index == sel.image_index == int(browser.top.image_indices[browser.top.row(3), 0])
    assert browser.error.message == "" and hooks_left(insp.model) == []


def test_gallery_patches_and_neighbours(insp, images):
    sel = Selection(layer="relu2", channel=5)
    gallery = PatchGallery(insp, images, selection=sel, feature_layer="pool2", k=4, synchronous=True)
    top = top_patches(insp, images, "relu2", k=4)
    assert gallery.layer == "relu2" and gallery.channel == 5
    assert f"images {top.image_indices[5].tolist()}" in gallery.patch_info.value
    nb = nearest_neighbours(insp, images, 0, "pool2", k=4)
    assert np.array_equal(gallery.neighbours.feature_indices, nb.feature_indices)
    assert np.array_equal(gallery.neighbours.pixel_indices, nb.pixel_indices)
    pic = input_pictures(insp, images, [int(nb.pixel_indices[0, 1])])[0].transpose(1, 2, 0)
    s = gallery.pixel_view.tiles["tile_h"] // 32
    assert np.array_equal(tile_pixels(gallery.pixel_view, 1)[::s, ::s], pic)
    gallery.feature_view.simulate_click(*_centre(gallery.feature_view, 2))  # browse to a neighbour
    assert gallery.image_index == sel.image_index == int(nb.feature_indices[0, 2])
    assert gallery.neighbours.query_indices.tolist() == [gallery.image_index]
    gallery.channel_picker.value = 9
    assert sel.channel == 9 and f"images {top.image_indices[9].tolist()}" in gallery.patch_info.value
    assert gallery.error.message == ""


def _centre(view, i):
    lay = view.tiles
    r, c = divmod(i, lay["ncols"])
    return (lay["pad"] + c * (lay["tile_w"] + lay["pad"]) + lay["tile_w"] / 2,
            lay["pad"] + r * (lay["tile_h"] + lay["pad"]) + lay["tile_h"] / 2)


def test_background_worker_and_latest_wins(insp, images):
    browser = ActivationBrowser(insp, images, synchronous=False)
    for i in range(5):  # rapid clicks: only the last image's maps are shown
        browser.image_index = i
    assert browser.wait(60)
    acts = insp.activations(images[4:5], ["conv1"])["conv1"][0].numpy()
    assert np.allclose(browser.acts, acts, atol=1e-6) and browser.error.message == ""


def test_errors_land_in_the_error_area(insp, images):
    gallery = PatchGallery(insp, images, synchronous=True, k=50)  # k > N: a warning, not an error
    assert gallery.error.message == ""
    with pytest.raises(ValueError, match="no spatial map"):
        ActivationBrowser(insp, images, layer="fc")
