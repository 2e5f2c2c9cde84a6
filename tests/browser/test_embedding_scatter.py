"""Real browser: the map draws one dot per image, a click on a dot selects that image, a brush dragged over the map
selects the dots inside it, a layer switch re-embeds."""
import numpy as np
import pytest
import torch

from ipynetviz.render import resize, to_data_url, to_hwc_uint8
from tests.browser.harness import assert_no_error_text, read_state, wait_state

pytestmark = pytest.mark.browser


N = 200
CELLS = [
    "import numpy as np, torch\n"
    "torch.set_num_threads(2)\n"
    "from tests.conftest import small_cnn\n"
    "from ipynetviz.engine import Inspector\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    "from ipynetviz.widgets.embedding_scatter import EmbeddingScatter\n"
    "insp = Inspector(small_cnn(seed=2), input_size=(3, 32, 32), device='cpu',\n"
    "                 class_names=['circle', 'square', 'star', 'ring', 'cross'])\n"
    f"images = torch.randint(0, 256, ({N}, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))\n"
    f"w = EmbeddingScatter(insp, (images, np.arange({N}) % 5), layer='relu3', k=4)\n"
    "display(w, StateProbe(w, ['layer', 'method', 'image_index', 'n_points', 'frames', 'selected']))",
]

# the first dot (in drawing order) whose centre is not covered by a later dot: a click there hits it
TOPMOST_DOT = """() => {
  const dots = Array.from(document.querySelectorAll('.t-embedding-plot path.dot'));
  for (let i = 0; i < dots.length; i++) {
    const r = dots[i].getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    if (document.elementFromPoint(x, y) === dots[i]) return {i, x, y};
  }
  return null;
}"""


DOT_PLACES = """() => Array.from(document.querySelectorAll('.t-embedding-plot path.dot')).slice(0, 20)
  .map(d => { const r = d.getBoundingClientRect(); return `${r.x.toFixed(1)},${r.y.toFixed(1)}`; }).join(';')"""


# rows of the dots whose centres lie inside the page rectangle (x0, y0, x1, y1), and those within 2 px of its edge
DOTS_INSIDE = """([x0, y0, x1, y1]) => {
  const inside = [], edge = [];
  document.querySelectorAll('.t-embedding-plot path.dot').forEach((d, i) => {
    if (i >= %d) return;
    const r = d.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
    const near = Math.min(Math.abs(x - x0), Math.abs(x - x1), Math.abs(y - y0), Math.abs(y - y1)) < 2;
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1) (near ? edge : inside).push(i);
    else if (near) edge.push(i);
  });
  return {inside, edge};
}""" % N


# a point near (x, y) where the page shows the brush surface itself
FREE_SPOT = """([x, y]) => {
  for (let d = 0; d < 60; d += 3) for (const [dx, dy] of [[d, 0], [0, d], [-d, 0], [0, -d], [d, d]]) {
    const e = document.elementFromPoint(x + dx, y + dy);
    if (e && e.classList.contains('overlay')) return [x + dx, y + dy];
  }
  return [x, y];
}"""
# rows of the dots drawn at full opacity (the brushed ones, once a brush has selected)
OPAQUE = ("Array.from(document.querySelectorAll('.t-embedding-plot path.dot')).slice(0, %d)"
          ".map((d, i) => [i, Number(getComputedStyle(d).opacity)]).filter(p => p[1] > 0.9).map(p => p[0])" % N)


def expected_thumbnail(index: int) -> str:
    images = torch.randint(0, 256, (N, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return to_data_url(resize(to_hwc_uint8(images[index].numpy()), (96, 96), smooth=True))


def dot_count(page) -> int:
    return page.evaluate("document.querySelectorAll('.t-embedding-plot path.dot').length")


def test_scatter_click_and_layer_switch(voila):
    page = voila(CELLS, wait_for=".t-state")
    wait_state(page, lambda s: s["n_points"] == N, timeout=90)
    page.wait_for_function(f"document.querySelectorAll('.t-embedding-plot path.dot').length === {N}",
                           timeout=30000)
    assert dot_count(page) == N  # the highlight ring is empty until an image is selected
    assert "circle (40)" in page.locator(".t-embedding-legend").inner_text()
    assert "relu3" in page.locator(".t-embedding-summary").inner_text()

    # click a dot: the kernel selects that image and the thumbnail shows its picture
    hit = page.evaluate(TOPMOST_DOT)
    assert hit is not None
    page.mouse.click(hit["x"], hit["y"])
    state = wait_state(page, lambda s: s["image_index"] is not None)
    assert state["image_index"] == hit["i"]
    want = expected_thumbnail(hit["i"])
    page.wait_for_function(f"(document.querySelector('.t-embedding-thumb img') || {{}}).src === {want!r}",
                           timeout=30000)
    assert f"image {hit['i']}" in page.locator(".t-embedding-info").inner_text()
    page.wait_for_function("document.querySelector('.t-embedding-pixel-nn img').naturalWidth > 100",
                           timeout=60000)
    assert dot_count(page) == N + 1  # the ring around the selected point
    ring = page.locator(".t-embedding-plot path.dot").nth(N).bounding_box()
    assert abs(ring["x"] + ring["width"] / 2 - hit["x"]) < 2 and abs(ring["y"] + ring["height"] / 2 - hit["y"]) < 2

    # drag a brush over the middle of the map: the dots inside it (and only those) are selected, the others dim,
    # and the gallery lists them (bqplot 0.13's brush selected nothing before BrushEventShim)
    page.locator(".t-embedding-tool button", has_text="brush").click()
    page.wait_for_function("document.querySelector('.t-embedding-plot rect.overlay') !== null", timeout=30000)
    box = page.locator(".t-embedding-plot svg").first.bounding_box()
    x1, y1 = box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7
    # start the drag on the brush's own surface, not on a dot (a press on a dot does not start a brush)
    x0, y0 = page.evaluate(FREE_SPOT, [box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3])
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=8)
    page.mouse.up()
    dots = page.evaluate(DOTS_INSIDE, [x0, y0, x1, y1])
    inside, edge = set(dots["inside"]), set(dots["edge"])
    assert inside, "the brushed rectangle should hold some dots"
    # the browser dims every dot outside the rectangle (dots on its edge may go either way) ...
    page.wait_for_function(f"(() => {{ const o = new Set(({OPAQUE})); const inside = {sorted(inside)};"
                           f" const edge = new Set({sorted(edge)});"
                           f" return inside.every(i => o.has(i)) && [...o].every(i => inside.includes(i) || edge.has(i));"
                           f" }})()", timeout=30000)
    shown = set(page.evaluate(OPAQUE))
    # ... and the kernel's selection is exactly the dots left bright (indices == rows here: N < max_points)
    state = wait_state(page, lambda s: set(s["selected"]) == shown)
    chosen = set(state["selected"])
    page.wait_for_function(f"document.querySelector('.t-embedding-gallery-info').innerText"
                           f".startsWith('{len(chosen)} images selected')", timeout=30000)
    page.session.screenshot("brush")
    page.locator(".t-embedding-tool button", has_text="click").click()

    # switch the layer: the map is recomputed and the dots move
    before = page.evaluate(DOT_PLACES)
    page.locator(".t-embedding-layer select").select_option("pool2")
    wait_state(page, lambda s: s["layer"] == "pool2" and s["n_points"] == N)
    page.wait_for_function("document.querySelector('.t-embedding-summary').innerText.includes('pool2')",
                           timeout=60000)
    page.wait_for_function(f"({DOT_PLACES})() !== {before!r}", timeout=30000)
    wait_state(page, lambda s: s["image_index"] == hit["i"])
    page.wait_for_function("document.querySelector('.t-embedding-nn-info').innerText.includes('pool2')",
                           timeout=60000)  # the neighbours follow the new feature space
    page.session.screenshot("map")
    assert_no_error_text(page)
