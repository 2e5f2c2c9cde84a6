"""Real browser: nv.Dashboard on the teaching model at 1280 x 800; a click on a feature map moves every panel
(selection, guided backprop, filters, activation overlay), no error text, no console error; screenshots kept."""
import json

import pytest

from tests.browser.harness import assert_no_error_text, read_state, wait_state

pytestmark = pytest.mark.browser

CELLS = [
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "import ipynetviz as nv\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    "insp = nv.zoo.load('shapes-cnn', seed=0)\n"
    "images, labels = nv.zoo.shapes(16, split='test')\n"
    "dash = nv.Dashboard(insp, images)\n"
    "dash",
    "display(StateProbe(dash.selection, ['layer', 'channel', 'image_index'], css_class='t-state-sel'),\n"
    "        StateProbe(dash.picker, ['shown'], css_class='t-state-picker'),\n"
    "        StateProbe(dash.filters, ['layer', 'channel'], css_class='t-state-filters'),\n"
    "        StateProbe(dash.occlusion, ['shown'], css_class='t-state-occlusion'),\n"
    "        StateProbe(dash.browser.maps, ['tiles'], css_class='t-state-maps'))",
]


# visible elements reaching more than 1 px past the panel (grid cell) that holds them
OVERFLOW = """(() => {
  const out = [];
  const grid = document.querySelector('.t-dashboard .widget-gridbox');
  const g = grid.getBoundingClientRect();
  if (grid.scrollHeight > grid.clientHeight + 1 || grid.scrollWidth > grid.clientWidth + 1)
    out.push(`the grid scrolls: ${grid.scrollWidth} x ${grid.scrollHeight} in ${grid.clientWidth} x ${grid.clientHeight}`);
  for (const cell of grid.children) {
    const c = cell.getBoundingClientRect();
    if (c.right > g.right + 1 || c.bottom > g.bottom + 1)
      out.push(`cell ${Math.round(c.left)}-${Math.round(c.right)} x ${Math.round(c.top)}-${Math.round(c.bottom)} past the grid`);
    for (const e of cell.querySelectorAll('*')) {
      if (e.offsetParent === null) continue;
      const r = e.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (r.right > c.right + 1 || r.bottom > c.bottom + 1 || r.left < c.left - 1) {
        const name = (e.className && e.className.baseVal === undefined ? e.className : e.tagName) || e.tagName;
        out.push(`${name}: ${Math.round(r.left)}-${Math.round(r.right)} x ${Math.round(r.top)}-${Math.round(r.bottom)}`
                 + ` in cell ${Math.round(c.left)}-${Math.round(c.right)} x ${Math.round(c.top)}-${Math.round(c.bottom)}`);
        if (out.length > 12) return out;
      }
    }
  }
  return out;
})()"""


def test_dashboard_click_a_unit_every_panel_follows(voila):
    page = voila(CELLS, wait_for=".t-state-maps", timeout=240)
    page.set_viewport_size({"width": 1280, "height": 800})
    wait_state(page, lambda s: s["shown"].get("complete") is True, ".t-state-occlusion", timeout=120)
    wait_state(page, lambda s: s["shown"].get("channel") is not None, ".t-state-picker", timeout=120)
    wait_state(page, lambda s: s["tiles"] is not None, ".t-state-maps", timeout=120)
    page.session.screenshot("before")
    before = page.evaluate("document.querySelector('.t-neuronpicker-result img').src")

    lay = read_state(page, ".t-state-maps")["tiles"]
    scale = page.evaluate("(() => { const i = document.querySelector('.t-activations-maps img');"
                          " return i.getBoundingClientRect().width / i.naturalWidth; })()")
    unit = 6
    r, c = divmod(unit, lay["ncols"])
    page.locator(".t-activations-maps img").click(position={
        "x": (lay["pad"] + c * (lay["tile_w"] + lay["pad"]) + lay["tile_w"] / 2) * scale,
        "y": (lay["pad"] + r * (lay["tile_h"] + lay["pad"]) + lay["tile_h"] / 2) * scale})
    sel = wait_state(page, lambda s: s["channel"] == unit, ".t-state-sel", timeout=60)
    layer = sel["layer"]
    wait_state(page, lambda s: s["shown"].get("channel") == unit and s["shown"].get("layer") == layer,
               ".t-state-picker", timeout=60)
    page.wait_for_function(f"document.querySelector('.t-neuronpicker-result img').src !== {before!r}",
                           timeout=60_000)
    page.wait_for_function(f"document.querySelector('.t-activations-info').innerText.includes('[{unit}]')",
                           timeout=60_000)
    page.wait_for_function(f"document.querySelector('.t-neuronpicker-map-colorbar').innerText"
                           f".includes('{layer}[{unit}]')", timeout=60_000)
    filters = read_state(page, ".t-state-filters")
    if filters["layer"] is not None:  # the grid shows the conv behind the layer; the unit is outlined there
        wait_state(page, lambda s: s["channel"] == unit, ".t-state-filters", timeout=60)
    # every panel shows a colour scale for its values
    for css in (".t-occlusion-colorbar", ".t-neuronpicker-map-colorbar", ".t-neuronpicker-result-colorbar",
                ".t-activations-colorbar", ".t-filtergrid-colorbar"):
        assert page.locator(f"{css} .ipynetviz-colorbar").count() == 1, css
    size = page.evaluate("(() => { const r = document.querySelector('.t-dashboard').getBoundingClientRect();"
                         " return {width: r.width, height: r.height, right: r.right, bottom: r.bottom}; })()")
    assert size["right"] <= 1280 and size["bottom"] <= 800, size  # on screen whole, without scrolling
    # no control shows a truncated label (text wider than its button)
    clipped = page.evaluate("""Array.from(document.querySelectorAll('.t-dashboard button'))
      .filter(b => b.offsetParent !== null && b.scrollWidth > b.clientWidth + 1).map(b => b.innerText)""")
    assert clipped == [], clipped
    # nothing sticks out of its panel, and no panel needs scrolling: the page fits a 1280 x 800 projector
    overflow = page.evaluate(OVERFLOW)
    assert overflow == [], overflow
    print("dashboard box", json.dumps(size))
    page.session.screenshot("after")
    assert_no_error_text(page)
