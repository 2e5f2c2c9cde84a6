"""Real browser: click a cell of the correspondence heatmap; the right pair of units is shown, in state and pictures.

The expected pair comes from this test process: the same images through ``compare`` and the bipartite
matching's order, so a wrong reordering or a wrong click-to-cell mapping in the widget fails here.
"""
import pytest
import torch

from tests.browser.harness import assert_no_error_text, read_state, wait_state

pytestmark = pytest.mark.browser

N_IMAGES = 64
CELLS = [
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "import ipynetviz as nv\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    "from ipynetviz.widgets.correspondence_matrix import CorrespondenceMatrix\n"
    "a, b = nv.zoo.load('shapes-cnn', seed=0), nv.zoo.load('shapes-cnn', seed=1)\n"
    f"images, _ = nv.zoo.shapes({N_IMAGES}, split='test')\n"
    "w = CorrespondenceMatrix(a, b, images, grid_images=16)\n"
    "display(w, StateProbe(w, ['layer_a', 'layer_b', 'mode', 'scope', 'cell', 'cell_corr', 'image_index']))",
]


@pytest.fixture(scope="module")
def expected():
    """relu1 of the two seeds over the same images: correlations and the bipartite display order."""
    import ipynetviz as nv
    from ipynetviz.methods.correspondence import compare
    torch.set_num_threads(2)
    a, b = nv.zoo.load("shapes-cnn", seed=0), nv.zoo.load("shapes-cnn", seed=1)
    images, _ = nv.zoo.shapes(N_IMAGES, split="test")
    c = compare(a, b, images, "relu1")
    rows, cols = c.bipartite_.order()
    return c.correlation_.corr, rows, cols


def src(page, css):
    return page.evaluate(f"document.querySelector('{css} img').src")


def wait_new_picture(page, css, old, timeout=60000):
    page.wait_for_function(f"document.querySelector('{css} img').src !== {old!r}", timeout=timeout)


def test_click_a_cell_shows_that_pair(voila, expected):
    corr, rows, cols = expected
    page = voila(CELLS, wait_for=".t-state")
    page.wait_for_function("document.querySelector('.t-correspondence-heatmap img').naturalWidth === 32",
                           timeout=120000)
    state = wait_state(page, lambda s: s["cell"] is not None, timeout=60)
    assert state["cell"] == [int(rows[0]), int(cols[0])]  # the best pair is shown first
    # top patches arrive after the matrix: wait for both panels' mosaics
    for key in ("row", "col"):
        page.wait_for_function(f"document.querySelector('.t-correspondence-{key}-patches img').naturalWidth > 40",
                               timeout=120000)
    before = {part: src(page, f".t-correspondence-{part}") for part in
              ("row-filter", "col-filter", "row-patches", "col-patches", "row-map", "col-map")}

    # 32 x 32 cells drawn 12 px each: click the middle of displayed cell (5, 9)
    i, j = 5, 9
    heat = page.locator(".t-correspondence-heatmap img")
    box = heat.bounding_box()
    cell_px = box["width"] / 32
    assert abs(cell_px - 12) < 0.01
    heat.click(position={"x": (j + 0.5) * cell_px, "y": (i + 0.5) * cell_px})
    want = [int(rows[i]), int(cols[j])]
    state = wait_state(page, lambda s: s["cell"] == want)
    assert state["cell_corr"] == pytest.approx(corr[want[0], want[1]], abs=1e-6)
    for part, old in before.items():  # every picture of the detail was redrawn for the new pair
        wait_new_picture(page, f".t-correspondence-{part}", old)
    assert f"relu1[{want[0]}]" in page.locator(".t-correspondence-row-title").inner_text()
    assert f"relu1[{want[1]}]" in page.locator(".t-correspondence-col-title").inner_text()
    assert f"r = {corr[want[0], want[1]]:.3f}" in page.locator(".t-correspondence-cell-info").inner_text()
    page.wait_for_timeout(200)
    mark = page.locator(".t-correspondence-heatmap .ipynetviz-mark").bounding_box()
    assert abs(mark["x"] - box["x"] - (j * cell_px - 2)) <= 2 and abs(mark["y"] - box["y"] - (i * cell_px - 2)) <= 2
    page.session.screenshot("cell")

    # semi-matching reorders the matrix: the same units stay selected, the outline moves with them
    page.locator(".t-correspondence-mode button", has_text="semi").click()
    state = wait_state(page, lambda s: s["mode"] == "semi")
    assert state["cell"] == want
    # the within-net toggle: A x A keeps the position, so the cell now names two A units
    page.locator(".t-correspondence-scope button", has_text="A × A").click()
    state = wait_state(page, lambda s: s["scope"] == "within_a")
    page.wait_for_function("document.querySelector('.t-correspondence-col-title').innerText.startsWith('net A')",
                           timeout=30000)

    # the layer x layer grid (bqplot): click cell (relu1 of A, relu2 of B); the matrix becomes 32 x 64
    page.wait_for_function(
        "document.querySelector('.t-correspondence-grid-info').innerText.includes('over 16 images')", timeout=240000)
    page.wait_for_selector(".t-correspondence-grid .heatmapcell", timeout=30000)  # shown once computed
    page.locator(".t-correspondence-grid .heatmapcell").nth(1).click()
    wait_state(page, lambda s: s["layer_a"] == "relu1" and s["layer_b"] == "relu2", timeout=60)
    page.locator(".t-correspondence-scope button", has_text="A × B").click()
    page.wait_for_function("document.querySelector('.t-correspondence-heatmap img').naturalWidth === 64",
                           timeout=120000)
    page.wait_for_function("document.querySelector('.t-correspondence-info').innerText.includes('relu2 of B')",
                           timeout=120000)
    state = wait_state(page, lambda s: s["scope"] == "between" and s["cell"] is not None)
    page.wait_for_function("document.querySelector('.t-correspondence-col-title').innerText.includes("
                           f"'relu2[{state['cell'][1]}]')", timeout=60000)
    page.session.screenshot("grid-click")
    assert_no_error_text(page)
    assert read_state(page)["layer_b"] == "relu2"
