"""nv.Dashboard: four linked views on one Selection; a click in one panel moves every other panel."""
import torch

import ipynetviz as nv
from tests.conftest import small_cnn


def test_dashboard_panels_follow_one_selection():
    insp = nv.Inspector(small_cnn(seed=2), input_size=(3, 32, 32), device="cpu", class_names=list("abcde"))
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    dash = nv.Dashboard(insp, images, synchronous=True)
    panels = (dash.browser, dash.picker, dash.occlusion, dash.filters)
    assert all(p.selection is dash.selection for p in panels) and "Dashboard" in nv.__all__
    dash.browser.click_map(5)  # a unit clicked in the activation browser
    assert dash.wait()
    assert dash.selection.channel == dash.picker.channel == dash.filters.channel == 5
    assert dash.picker.shown["channel"] == 5 and dash.filters.mosaic.selected == dash.filters.tile_of(5)
    dash.browser.thumbs.click_tile(3)  # an image clicked in the strip
    assert dash.wait()
    assert dash.picker.shown["image_index"] == 3 and dash.occlusion.shown["image_index"] == 3
    assert [p.error.message for p in panels] == ["", "", "", ""]
