"""Real browser: NeuronPicker and OcclusionExplorer follow clicks and sliders, and follow each other."""
import pytest

from tests.browser.harness import assert_no_error_text, read_state, wait_state

# every src the occlusion heat map takes, from now on (a flash to the bare image would be one of them)
RECORD_HEATMAP = """() => {
  const img = document.querySelector('.t-occlusion-heatmap img');
  window.__heatmapSrcs = [];
  new MutationObserver(() => window.__heatmapSrcs.push(img.src)).observe(img, {attributes: true,
                                                                           attributeFilter: ['src']});
}"""


def bare_picture_url(index: int) -> str:
    """The picture OcclusionExplorer shows for image ``index`` before any map (same code path as the kernel)."""
    import torch
    from ipynetviz.engine import Inspector
    from ipynetviz.methods.units import input_pictures
    from ipynetviz.render import to_data_url, to_hwc_uint8
    from tests.conftest import small_cnn
    insp = Inspector(small_cnn(seed=2), input_size=(3, 32, 32), device="cpu", class_names=list("abcde"))
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return to_data_url(to_hwc_uint8(input_pictures(insp, images, [index])[0]))

pytestmark = pytest.mark.browser

CELLS = [
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "from tests.conftest import small_cnn\n"
    "from ipynetviz.engine import Inspector, Selection\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    "from ipynetviz.widgets.neuron_picker import NeuronPicker\n"
    "from ipynetviz.widgets.occlusion_explorer import OcclusionExplorer\n"
    "insp = Inspector(small_cnn(seed=2), input_size=(3, 32, 32), device='cpu', class_names=list('abcde'))\n"
    "images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))\n"
    "sel = Selection()\n"
    "picker = NeuronPicker(insp, images, selection=sel)\n"
    "explorer = OcclusionExplorer(insp, images, window=8, stride=4, selection=sel)\n"
    "display(picker, explorer)\n"
    "display(StateProbe(picker, ['layer', 'channel', 'image_index', 'method', 'position', 'shown'],\n"
    "                   css_class='t-state-picker'),\n"
    "        StateProbe(explorer, ['image_index', 'window', 'stride', 'fill', 'target', 'cell', 'shown'],\n"
    "                   css_class='t-state-explorer'))",
]


def src(page, css):
    return page.evaluate(f"document.querySelector('{css} img').src")


def wait_new_picture(page, css, old, timeout=60000):
    page.wait_for_function(f"document.querySelector('{css} img').src !== {old!r}", timeout=timeout)


def _open(voila):
    page = voila(CELLS, wait_for=".t-state-explorer")
    wait_state(page, lambda s: s["shown"].get("channel") == 0, ".t-state-picker", timeout=90)
    wait_state(page, lambda s: s["shown"].get("complete") is True, ".t-state-explorer", timeout=90)
    return page


def test_neuron_picker_follows_map_clicks_methods_and_positions(voila):
    page = _open(voila)
    state = read_state(page, ".t-state-picker")
    assert state["layer"] == "conv3" and state["method"] == "guided_backprop"
    before = src(page, ".t-neuronpicker-result")
    before_map = src(page, ".t-neuronpicker-map")

    # the maps mosaic: 16 maps of 8x8 at scale 3, pad 2, 6 per row -> tile 9 is row 1, column 3
    tile, pad, ncols = 8 * 3, 2, 6
    r, c = divmod(9, ncols)
    page.locator(".t-neuronpicker-maps img").click(
        position={"x": pad + c * (tile + pad) + tile / 2, "y": pad + r * (tile + pad) + tile / 2})
    state = wait_state(page, lambda s: s["shown"].get("channel") == 9, ".t-state-picker", timeout=60)
    assert state["channel"] == 9 and state["position"] is None
    wait_new_picture(page, ".t-neuronpicker-result", before)
    wait_new_picture(page, ".t-neuronpicker-map", before_map)
    assert "conv3[9]" in page.locator(".t-neuronpicker-info").inner_text()

    # another method: the visualization is recomputed and says so
    before = src(page, ".t-neuronpicker-result")
    page.locator(".t-neuronpicker-method button", has_text="saliency").click()
    wait_state(page, lambda s: s["shown"].get("method") == "saliency", ".t-state-picker", timeout=60)
    wait_new_picture(page, ".t-neuronpicker-result", before)
    assert page.locator(".t-neuronpicker-info").inner_text().startswith("saliency")

    # a click on the large map picks one neuron: the 8x8 map is drawn 192 px wide, 24 px per cell
    before = src(page, ".t-neuronpicker-result")
    page.locator(".t-neuronpicker-map img").click(position={"x": 5 * 24 + 12, "y": 2 * 24 + 12})
    wait_state(page, lambda s: s["shown"].get("position") == [2, 5], ".t-state-picker", timeout=60)
    wait_new_picture(page, ".t-neuronpicker-result", before)
    assert "conv3[9] at (2, 5)" in page.locator(".t-neuronpicker-info").inner_text()
    page.session.screenshot("picker")
    assert_no_error_text(page)


def test_occlusion_explorer_follows_sliders_and_shows_a_clicked_window(voila):
    page = _open(voila)
    before = src(page, ".t-occlusion-heatmap")
    state = read_state(page, ".t-state-explorer")
    assert state["shown"]["grid"] == [7, 7] and state["shown"]["window"] == 8

    # the window slider, moved with the keyboard: 8 -> 12; the last map stays until a new one replaces it
    page.evaluate(RECORD_HEATMAP)
    handle = page.locator(".t-occlusion-window .noUi-handle")
    handle.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    state = wait_state(page, lambda s: s["shown"].get("window") == 12 and s["shown"].get("complete"),
                       ".t-state-explorer", timeout=60)
    assert state["window"] == 12 and state["shown"]["grid"] == [6, 6]  # ceil((32 - 12) / 4) + 1
    wait_new_picture(page, ".t-occlusion-heatmap", before)
    seen = page.evaluate("window.__heatmapSrcs")
    assert seen and bare_picture_url(0) not in seen, "the heat map flashed back to the bare image"

    # a click on the heat map: the 32 px image is drawn 256 px wide; window (2, 3) is centred at (14, 18)
    before_occluded = src(page, ".t-occlusion-occluded")
    page.locator(".t-occlusion-heatmap img").click(position={"x": 18 * 8, "y": 14 * 8})
    state = wait_state(page, lambda s: s["cell"] == [2, 3], ".t-state-explorer", timeout=30)
    wait_new_picture(page, ".t-occlusion-occluded", before_occluded)
    text = page.locator(".t-occlusion-probs").inner_text()
    assert "window (2, 3): rows 8-20, columns 12-24" in text
    assert len(page.locator(".t-occlusion-top tr").all()) == 5
    page.wait_for_timeout(200)
    mark = page.locator(".t-occlusion-heatmap .ipynetviz-mark").bounding_box()
    heat = page.locator(".t-occlusion-heatmap img").bounding_box()
    assert abs(mark["x"] - heat["x"] - (12 * 8 - 2)) <= 3 and abs(mark["y"] - heat["y"] - (8 * 8 - 2)) <= 3

    # fill and class menus recompute the map with those settings
    before = src(page, ".t-occlusion-heatmap")
    page.locator(".t-occlusion-fill select").select_option(label="blurred")
    wait_state(page, lambda s: s["shown"].get("fill") == "blur" and s["shown"].get("complete"),
               ".t-state-explorer", timeout=60)
    wait_new_picture(page, ".t-occlusion-heatmap", before)
    page.locator(".t-occlusion-target select").select_option(label="3: d")
    wait_state(page, lambda s: s["shown"].get("target") == 3 and s["shown"].get("complete"),
               ".t-state-explorer", timeout=60)
    assert "class d (chosen)" in page.locator(".t-occlusion-info").inner_text()
    page.session.screenshot("explorer")
    assert_no_error_text(page)


def test_a_thumbnail_click_moves_both_views(voila):
    page = _open(voila)
    # thumbnails: 40 px tiles, pad 2, 16 per row; image 5 is column 5
    page.locator(".t-occlusion-thumbs img").click(position={"x": 2 + 5 * 42 + 20, "y": 2 + 20})
    wait_state(page, lambda s: s["shown"].get("image_index") == 5 and s["shown"].get("complete"),
               ".t-state-explorer", timeout=60)
    wait_state(page, lambda s: s["shown"].get("image_index") == 5, ".t-state-picker", timeout=60)
    page.locator(".t-neuronpicker-thumbs img").click(position={"x": 2 + 7 * 42 + 20, "y": 2 + 20})
    wait_state(page, lambda s: s["shown"].get("image_index") == 7 and s["shown"].get("complete"),
               ".t-state-explorer", timeout=60)
    page.session.screenshot("linked")
    assert_no_error_text(page)
