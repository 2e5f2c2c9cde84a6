"""ImageOptimizer on the kernel side: every mode runs the method it names, stop keeps the partial picture."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from ipynetviz.engine import Inspector, Selection, hooks_left
from ipynetviz.widgets.image_optimizer import ImageOptimizer

from .conftest import small_cnn


@pytest.fixture
def setup():
    insp = Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu", class_names=list("abcde"))
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return insp, images


@pytest.mark.parametrize("mode", ["class", "unit", "layer", "invert", "dream", "style", "adversarial"])
def test_each_mode_adds_its_result_to_the_gallery(setup, mode):
    insp, images = setup
    w = ImageOptimizer(insp, images, mode=mode, steps=6, synchronous=True)
    w.run()
    assert w.error.message == "" and not w.running and w.gallery_size == 1
    assert w.last["mode"] == mode and w.last["steps_done"] == w.last["steps"] and not w.last["interrupted"]
    np.testing.assert_array_equal(w.gallery[0][0], w.preview.image)
    assert w.save_link.value.startswith('<a download="ipynetviz-gallery.png"')
    assert hooks_left(insp.model) == [] and all(p.grad is None for p in insp.model.parameters())


def test_the_run_matches_a_direct_method_call(setup):
    from ipynetviz.engine import Unit
    from ipynetviz.methods.optimize import TV, Blur, standard_transforms, visualize
    insp, images = setup
    w = ImageOptimizer(insp, images, mode="unit", steps=5, synchronous=True)
    w.layer, w.channel, w.tv, w.blur = "conv2", 3, 0.1, 0.5
    w.run()
    regs = [TV(0.1), Blur(0.5, every=4)] + standard_transforms(insp.input_size[-1])  # transforms are on by default
    direct = visualize(insp, Unit("conv2", 3), steps=5, lr=0.05, regularizers=regs, param="fourier")
    np.testing.assert_array_equal(w.result.images, direct.images)
    assert "conv2[3] - 0.1*TV" in w.last["caption"]


def test_the_selection_sets_the_target(setup):
    insp, images = setup
    sel = Selection()
    w = ImageOptimizer(insp, images, selection=sel, synchronous=True)
    sel.layer, sel.channel, sel.target, sel.image_index = "conv2", 7, 3, 4
    assert (w.layer, w.channel, w.target, w.image_index) == ("conv2", 7, 3, 4)
    w.channel = 2
    assert sel.channel == 2


def test_stop_keeps_the_partial_picture(setup, tmp_path):
    insp, images = setup
    w = ImageOptimizer(insp, images, mode="unit", steps=100000)
    w.run()
    deadline = time.time() + 30
    while (w.steps_done < 8 or w.preview.version < 2) and time.time() < deadline:  # the preview has been redrawn at least once
        time.sleep(0.02)
    assert w.running and w.steps_done >= 8 and w.preview.version >= 2
    w.stop()
    assert w.wait(30)
    deadline = time.time() + 5
    while w.running and time.time() < deadline:
        time.sleep(0.02)
    assert not w.running and w.gallery_size == 1 and w.last["interrupted"] and 8 <= w.last["steps_done"] < 100000
    assert "(stopped)" in w.last["caption"] and w.error.message == ""
    w.save_gallery(tmp_path / "g.png")
    assert np.asarray(Image.open(tmp_path / "g.png")).shape[2] == 3
    assert hooks_left(insp.model) == []


def test_errors_are_shown_and_the_buttons_work_again(setup):
    insp, images = setup
    w = ImageOptimizer(insp, images, mode="style", steps=3, synchronous=True)
    w.style_index = 0
    w.lr = 0.0  # out of range for the method: a clear SettingError in the error area
    w.run()
    assert "lr must be a finite number > 0" in w.error.message
    assert not w.running and not w.run_button.disabled and w.gallery_size == 0
    with pytest.raises(ValueError, match="image modes need images"):
        ImageOptimizer(insp, None, mode="invert")


# ---------------------------------------------------------------- feature visualisation controls (issue 13)
def test_diversity_facets_compare_and_parametrization_controls(setup):
    from ipynetviz.methods.optimize import regularizer_sets
    insp, images = setup
    w = ImageOptimizer(insp, images, mode="unit", steps=4, synchronous=True)
    w.layer, w.channel, w.pictures = "conv2", 1, 3
    w.run()
    assert w.error.message == "" and w.pictures_shown == 3 and w.gallery_size == 3
    assert any("Diversity" in r or "diversity" in r for r in w.result.settings["regularizers"])
    assert w.preview_info.value.count("<li>") == 3

    w.pictures, w.facets = 1, 2
    w.run()
    assert w.error.message == "" and len(w.result.members) == 2 and w.fv.clusters.layout.display is None
    assert "cluster" in w.fv.facet_caption.value and w.fv.facet_view.value[:4] == b"\x89PNG"

    w.facets, w.compare, w.mode = 0, True, "class"
    w.run()
    labels = list(regularizer_sets(32))
    assert w.error.message == "" and w.pictures_shown == len(labels)
    assert [d.split(":")[0] for d in w.result.descriptions] == labels
    assert w.fv.clusters.layout.display == "none"

    w.compare, w.param, w.colour, w.transforms = False, "pixels", True, False
    w.run()
    assert w.error.message == "" and "decorrelated colour" in w.result.settings["param"]
    assert not any("Pad" in r for r in w.result.settings["regularizers"])
    assert hooks_left(insp.model) == [] and all(p.grad is None for p in insp.model.parameters())
