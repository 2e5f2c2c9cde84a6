"""The tour notebook renders in Voila, in a real Chromium, without error text; its views are linked."""
import nbformat
import pytest

from tests.browser.conftest import REPO
from tests.browser.harness import assert_no_error_text, read_state, wait_state

pytestmark = pytest.mark.browser

PROBES = ("from ipynetviz.widgets.base import StateProbe\n"
          "display(StateProbe(sel, ['layer', 'channel', 'image_index'], css_class='t-state-sel'),\n"
          "        StateProbe(picker, ['layer', 'channel', 'image_index'], css_class='t-state-picker'),\n"
          "        StateProbe(browser, ['layer', 'channel', 'image_index'], css_class='t-state-browser'),\n"
          "        StateProbe(grid.mosaic, ['tiles'], css_class='t-state-layout'))")


def test_tour_renders_and_a_filter_click_moves_the_other_views(voila, tmp_path):
    nb = nbformat.read(REPO / "notebooks" / "tour.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBES))  # state mirrors for the test; the tour itself is unchanged
    path = tmp_path / "tour_probed.ipynb"
    nbformat.write(nb, path)
    page = voila(path, wait_for=".t-state-layout", timeout=300)
    body = page.locator("body").inner_text()
    assert "Inspector(Sequential" in body and "predicted" in body
    page.wait_for_function("document.querySelector('.t-filtergrid-mosaic img').naturalWidth > 0", timeout=120_000)
    lay = read_state(page, ".t-state-layout")["tiles"]
    scale = page.evaluate("(() => { const i = document.querySelector('.t-filtergrid-mosaic img');"
                          " return i.getBoundingClientRect().width / i.naturalWidth; })()")
    tile = 7  # conv1 filter 7: row and column from the mosaic's own layout
    r, c = divmod(tile, lay["ncols"])
    x = (lay["pad"] + c * (lay["tile_w"] + lay["pad"]) + lay["tile_w"] / 2) * scale
    y = (lay["pad"] + r * (lay["tile_h"] + lay["pad"]) + lay["tile_h"] / 2) * scale
    page.locator(".t-filtergrid-mosaic img").click(position={"x": x, "y": y})
    wait_state(page, lambda s: s["layer"] == "conv1" and s["channel"] == tile, ".t-state-sel")
    wait_state(page, lambda s: s["layer"] == "conv1" and s["channel"] == tile, ".t-state-browser", timeout=60)
    wait_state(page, lambda s: s["layer"] == "conv1" and s["channel"] == tile, ".t-state-picker", timeout=60)
    page.wait_for_function(
        f"document.querySelector('.t-activations-info').innerText.includes('conv1[{tile}]')", timeout=60_000)
    page.session.screenshot("tour")
    assert_no_error_text(page)
