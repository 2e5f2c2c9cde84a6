"""Every picture of values has a colour scale with its range and meaning; occlusion maps diverge around zero
and a new window keeps the last map on screen until the new one is ready (no bare image in between)."""
import numpy as np
import pytest
import torch

from ipynetviz.engine import Inspector, Selection
from ipynetviz.render import colorize, overlay
from ipynetviz.widgets.activation_browser import ActivationBrowser
from ipynetviz.widgets.base import ColorBar
from ipynetviz.widgets.filter_grid import FilterGrid
from ipynetviz.widgets.neuron_picker import NeuronPicker
from ipynetviz.widgets.occlusion_explorer import OcclusionExplorer
from tests.conftest import small_cnn


@pytest.fixture(scope="module")
def insp():
    return Inspector(small_cnn(seed=2), input_size=(3, 32, 32), device="cpu", class_names=list("abcde"))


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_colorbar_draws_its_range_and_zero_for_a_diverging_scale():
    bar = ColorBar()
    bar.show("rdbu", -0.25, 0.25, "score drop")
    assert bar.diverging and 'data-lo="-0.25"' in bar.value and 'data-hi="0.25"' in bar.value
    assert ">0</span>" in bar.value and "rgb(5,48,97) 0%" in bar.value and "score drop" in bar.value
    bar.show("viridis", 0.0, 3.0, "activation")
    assert not bar.diverging and ">3</span>" in bar.value


def test_occlusion_map_diverges_around_zero_and_never_flashes_the_bare_image(insp, images):
    w = OcclusionExplorer(insp, images, window=8, stride=4, synchronous=True)
    heat = w.result.attribution()[0]
    m = float(np.abs(heat).max())
    assert np.array_equal(w.heatmap.image, overlay(w.result.images[0], heat, 0.55, "rdbu", "symmetric"))
    assert (w.colorbar.cmap, w.colorbar.lo, w.colorbar.hi) == ("rdbu", -m, m) and w.colorbar.diverging
    assert "drop in the" in w.colorbar.meaning
    # the zero fill is said in pixels: the picture of a zero input
    r, g, b = insp.pictures(torch.zeros(1, 3, 1, 1), channels_last=True)[0, 0, 0]
    assert f"rgb({r}, {g}, {b}) (zero in the normalised input" in w.info.value
    bare = w.heatmap.image.copy()
    shown = []
    w.heatmap.observe(lambda ch: shown.append(w.heatmap.image.copy()), names="version")
    w.window = 12  # coarse map, then the final one: nothing else in between
    assert w.shown["window"] == 12 and w.shown["complete"] and len(shown) == 2
    picture = w.result.images[0]  # the bare image
    assert not any(np.array_equal(p, picture) for p in shown) and not np.array_equal(shown[-1], bare)
    shown.clear()
    w.image_index = 1  # a new image: its own picture at once, then its maps
    assert np.array_equal(shown[0], w.result.images[0]) and w.shown["image_index"] == 1


def test_feature_maps_gradients_and_filters_have_scales(insp, images):
    sel = Selection()
    picker = NeuronPicker(insp, images, selection=sel, synchronous=True)
    amap = picker.acts[picker.channel]
    assert np.array_equal(picker.map_view.image, colorize(amap, "viridis"))
    assert (picker.map_bar.lo, picker.map_bar.hi) == (float(amap.min()), float(amap.max()))
    m = float(picker.result.attributions[0].abs().max())
    assert (picker.result_bar.cmap, picker.result_bar.lo, picker.result_bar.hi) == ("gray", -m, m)

    browser = ActivationBrowser(insp, images, selection=sel, synchronous=True)
    browser.channel = 2
    amap = browser.acts[2]
    assert (browser.large_bar.lo, browser.large_bar.hi) == (float(amap.min()), float(amap.max()))

    grid = FilterGrid(insp, layer="conv1", normalization="global")
    m = float(np.abs(grid.result.weights).max())
    assert (grid.colorbar.lo, grid.colorbar.hi) == (-m, m) and "the layer" in grid.colorbar.meaning
    grid.normalization = "filter"
    grid.channel = 3
    m = float(np.abs(grid.result.weights[3]).max())
    assert (grid.colorbar.lo, grid.colorbar.hi) == (-m, m) and "filter 3" in grid.colorbar.meaning
