"""Real browser: click a filter tile, a feature map and a patch; the linked views follow, in pictures and state."""
import pytest

from tests.browser.harness import assert_no_error_text, read_state, wait_state

pytestmark = pytest.mark.browser

CELLS = [
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "from tests.conftest import small_cnn\n"
    "from ipynetviz.engine import Inspector, Selection\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    "from ipynetviz.widgets.filter_grid import FilterGrid\n"
    "from ipynetviz.widgets.activation_browser import ActivationBrowser\n"
    "from ipynetviz.widgets.gallery import PatchGallery\n"
    "insp = Inspector(small_cnn(seed=2), input_size=(3, 32, 32), device='cpu')\n"
    "images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))\n"
    "sel = Selection()\n"
    "grid = FilterGrid(insp, selection=sel)\n"
    "browser = ActivationBrowser(insp, images, selection=sel)\n"
    "gallery = PatchGallery(insp, images, selection=sel, feature_layer='pool2', k=6)\n"
    "display(grid, browser, gallery)\n"
    "display(StateProbe(sel, ['layer', 'channel', 'image_index'], css_class='t-state-sel'),\n"
    "        StateProbe(browser, ['layer', 'channel', 'image_index'], css_class='t-state-browser'),\n"
    "        StateProbe(gallery, ['layer', 'channel', 'image_index'], css_class='t-state-gallery'),\n"
    "        StateProbe(grid, ['layer', 'channel'], css_class='t-state-grid'))",
]


def src(page, css):
    # compare pictures by their data URL: the image's data-version attribute can lag one update behind
    return page.evaluate(f"document.querySelector('{css} img').src")


def wait_new_picture(page, css, old, timeout=60000):
    page.wait_for_function(f"document.querySelector('{css} img').src !== {old!r}", timeout=timeout)


def test_filter_click_moves_the_browser_and_the_gallery(voila):
    page = voila(CELLS, wait_for=".t-state-gallery")
    page.wait_for_function("document.querySelector('.t-filtergrid-mosaic img').naturalWidth > 0")
    page.wait_for_function("document.querySelector('.t-activations-maps img').naturalWidth > 20", timeout=60000)
    assert read_state(page, ".t-state-sel")["layer"] == "conv1"
    before_patches = src(page, ".t-activations-patches")
    before_gallery = src(page, ".t-gallery-patches")
    before_large = src(page, ".t-activations-large")

    # FilterGrid: 8 filters of 5x5, scale 7 (36 px target), pad 1, 3 per row: tile 5 is row 1, column 2
    img = page.locator(".t-filtergrid-mosaic img")
    tile, pad, ncols = 5 * 7, 1, 3
    r, c = divmod(5, ncols)
    img.click(position={"x": pad + c * (tile + pad) + tile / 2, "y": pad + r * (tile + pad) + tile / 2})
    sel = wait_state(page, lambda s: s["channel"] == 5, ".t-state-sel")
    assert sel["layer"] == "conv1"
    wait_state(page, lambda s: s["channel"] == 5 and s["layer"] == "conv1", ".t-state-browser")
    wait_state(page, lambda s: s["channel"] == 5 and s["layer"] == "conv1", ".t-state-gallery")
    # their pictures followed: the map is outlined, the large map and both patch galleries were redrawn
    assert page.locator(".t-activations-maps .ipynetviz-mark").is_visible()
    wait_new_picture(page, ".t-activations-patches", before_patches)
    wait_new_picture(page, ".t-activations-large", before_large)
    wait_new_picture(page, ".t-gallery-patches", before_gallery)
    page.wait_for_function("document.querySelector('.t-gallery-patches img').naturalWidth > 100")
    assert "conv1[5]" in page.locator(".t-activations-info").inner_text()
    assert "conv1[5]" in page.locator(".t-gallery-patch-info").inner_text()

    # a click on the first top patch in the gallery selects its image everywhere
    info = page.locator(".t-gallery-patch-info").inner_text()
    first_image = int(info.split("images [")[1].split(",")[0].rstrip("]"))
    page.locator(".t-gallery-patches img").click(position={"x": 10, "y": 10})
    wait_state(page, lambda s: s["image_index"] == first_image, ".t-state-sel")
    wait_state(page, lambda s: s["image_index"] == first_image, ".t-state-browser")
    page.wait_for_function(
        f"document.querySelector('.t-gallery-info').innerText.startsWith('image {first_image}:')", timeout=60000)

    # a click on feature map 2 in the browser moves the filter grid: its state and its outline
    maps = page.locator(".t-activations-maps img")  # 8 maps of 32x32 at scale 1, 4 per row, pad 2
    maps.click(position={"x": 2 + 2 * 34 + 16, "y": 2 + 16})
    wait_state(page, lambda s: s["channel"] == 2, ".t-state-grid")
    wait_state(page, lambda s: s["channel"] == 2, ".t-state-gallery")
    page.wait_for_timeout(300)
    mark = page.locator(".t-filtergrid-mosaic .ipynetviz-mark").bounding_box()
    grid_img = page.locator(".t-filtergrid-mosaic img").bounding_box()
    assert abs((mark["x"] - grid_img["x"]) - (pad + 2 * (tile + pad) - 2)) <= 2  # tile 2: row 0, column 2
    assert abs((mark["y"] - grid_img["y"]) - (pad - 2)) <= 2
    page.session.screenshot("linked")
    assert_no_error_text(page)
