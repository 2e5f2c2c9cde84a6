"""PatchGallery, ActivationBrowser and CorrespondenceMatrix open a dataset-examples folder without rescanning."""
from __future__ import annotations

import numpy as np
import pytest

import ipynetviz as nv
from ipynetviz.methods.scan import Correspondence, ExamplesMismatchError, TopPatches, scan
from ipynetviz.widgets import ActivationBrowser, CorrespondenceMatrix, PatchGallery
from ipynetviz.widgets import base, correspondence_matrix


@pytest.fixture(scope="module")
def nets():
    return nv.zoo.load("shapes-cnn", seed=0, device="cpu"), nv.zoo.load("shapes-cnn", seed=1, device="cpu")


@pytest.fixture(scope="module")
def saved(nets, tmp_path_factory):
    a, b = nets
    images = nv.zoo.shapes(120, split="test")[0]
    folder = tmp_path_factory.mktemp("scan") / "examples"
    result = scan(a, images, [TopPatches(["relu2", "relu3"], k=4), Correspondence(b, "relu3")], save_to=folder)
    return images, folder, result


@pytest.fixture
def no_rescan(monkeypatch):
    def refuse(*args, **kw):
        raise AssertionError("the widget scanned the data set instead of opening the saved examples")
    monkeypatch.setattr(base, "top_patches", refuse)
    monkeypatch.setattr(correspondence_matrix, "compare", refuse)


def test_gallery_and_browser_show_the_saved_patches(nets, saved, no_rescan):
    images, folder, result = saved
    gallery = PatchGallery(nets[0], images, layer="relu3", channel=5, feature_layer="pool2", k=4,
                           synchronous=True, examples=folder)
    assert gallery.error.message == ""
    np.testing.assert_array_equal(gallery.top.image_indices, result.top_patches["relu3"].image_indices)
    browser = ActivationBrowser(nets[0], images, layer="relu2", k=4, synchronous=True, examples=folder)
    browser.channel = 3
    np.testing.assert_array_equal(browser.top.scores, result.top_patches["relu2"].scores)
    assert browser.error.message == ""


def test_correspondence_matrix_uses_the_saved_moments(nets, saved, no_rescan):
    images, folder, result = saved
    # k=0: net B's top patches are not in A's folder and would be scanned; the correlations must not be
    w = CorrespondenceMatrix(*nets, images, layer_a="relu3", k=0, grid=False, synchronous=True, examples=folder)
    assert w.patches["a"].examples is not None and w.patches["b"].examples is None
    np.testing.assert_allclose(w.result.correlation_.corr, result.correspondence["relu3", "relu3"].correlation_.corr,
                               atol=1e-12)
    assert w.error.message == ""
    w.click_cell(0, 0)
    assert w.cell_corr == pytest.approx(w.result.bipartite_.sorted_corr()[0])


def test_another_models_folder_is_refused(nets, saved):
    images, folder, _ = saved
    with pytest.raises(ExamplesMismatchError, match="another model"):
        PatchGallery(nets[1], images, synchronous=True, examples=folder)


def test_scan_view_shows_progress_and_what_was_skipped(nets, saved, tmp_path):
    from PIL import Image

    from ipynetviz.widgets.scan_view import ScanView

    images = saved[0]
    for i in range(10):
        Image.fromarray(images[i].transpose(1, 2, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    view = ScanView(nets[0], tmp_path, [TopPatches("conv2", k=2)], synchronous=True, batch_size=4)
    assert view.result.complete and (view.done, view.total) == (11, 11) and view.bar.value == 11
    assert "10 images scanned, 1 files skipped" in view.summary.value and "notes.txt" in view.summary.value
    assert not view.running and not view.start_button.disabled and view.error.message == ""
    view.stop()  # a stop before start() is forgotten by start()
    view.start()
    assert view.result.complete
    bad = ScanView(nets[0], tmp_path, [TopPatches("conv_2")], synchronous=True)
    assert "conv2" in bad.error.message and not bad.running
