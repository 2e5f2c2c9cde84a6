"""The harness itself, on the smallest real view: a clickable mosaic reporting the tile under the click."""
import pytest

from tests.browser.harness import assert_no_error_text, wait_state

pytestmark = pytest.mark.browser

CELLS = [
    "import numpy as np, traitlets\n"
    "from ipynetviz.render import tile\n"
    "from ipynetviz.widgets.base import ClickImage, StateProbe\n"
    "rng = np.random.default_rng(0)\n"
    "mosaic, layout = tile(rng.integers(0, 255, (12, 8, 8, 3), dtype=np.uint8), ncols=4, pad=2)\n"
    "img = ClickImage(scale=4, css_class='t-mosaic')\n"
    "img.set_image(mosaic, layout)\n"
    "class State(traitlets.HasTraits):\n"
    "    tile = traitlets.Int(-1)\n"
    "state = State()\n"
    "def on_click(change):\n"
    "    i = img.tile_at(change['new']['x'], change['new']['y'])\n"
    "    state.tile = -1 if i is None else i\n"
    "    img.selected = state.tile\n"
    "img.observe(on_click, names='click')\n"
    "display(img, StateProbe(state, ['tile']))",
]


def test_click_on_mosaic_selects_that_tile(voila):
    page = voila(CELLS, wait_for=".t-mosaic img")
    img = page.locator(".t-mosaic img")
    img.wait_for()
    page.wait_for_function("document.querySelector('.t-mosaic img').naturalWidth > 0")
    # tile 6 is row 1, column 2: its centre in mosaic pixels, times the display scale 4
    y0, x0 = 2 + 1 * (8 + 2), 2 + 2 * (8 + 2)
    img.click(position={"x": (x0 + 4) * 4, "y": (y0 + 4) * 4})
    state = wait_state(page, lambda s: s["tile"] != -1)
    assert state["tile"] == 6
    mark = page.locator(".t-mosaic .ipynetviz-mark")
    assert mark.is_visible()
    box = mark.bounding_box()
    ibox = img.bounding_box()
    assert abs((box["x"] - ibox["x"]) - (x0 * 4 - 2)) <= 3
    page.session.screenshot("clicked")
    assert_no_error_text(page)
