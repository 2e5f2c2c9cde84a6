"""Widget defaults follow the data: a small data set gets fewer patches and neighbours, without warnings."""
import warnings

import torch

from ipynetviz.engine import Inspector
from ipynetviz.widgets.activation_browser import ActivationBrowser
from ipynetviz.widgets.base import default_k
from ipynetviz.widgets.gallery import PatchGallery
from tests.conftest import small_cnn


def test_small_data_sets_get_smaller_defaults_and_no_warning():
    assert (default_k(30), default_k(5), default_k(0)) == (9, 5, 1)
    insp = Inspector(small_cnn(seed=2), input_size=(3, 32, 32), device="cpu")
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any "asked for k=... but only ..." warning fails the test
        gallery = PatchGallery(insp, images, synchronous=True, channel=0)
        browser = ActivationBrowser(insp, images, synchronous=True)
        browser.channel = 1
    assert gallery.source.k == 5 and gallery.k == 4 and browser.patches.k == 5
    assert gallery.error.message == "" and browser.error.message == ""
