"""The tour's linked views in JupyterLab 4 and Notebook 7 (Voila: test_tour.py): they render, a filter tile click
moves the other views, no error text, no console error from ipynetviz; screenshots in test-artifacts/."""
import nbformat
import pytest

from tests.browser.harness import assert_no_error_text, read_state, wait_state
from tests.browser.jupyter_pages import JupyterPage
from tests.browser.test_tour import PROBES
from tests.jupyter_process import REPO

pytestmark = pytest.mark.browser
URLS = {"lab": "/lab/tree/tour_probed.ipynb", "notebook": "/notebooks/tour_probed.ipynb"}


def click_filter_tile(page, tile: int) -> None:
    """Click conv1 filter ``tile`` in the FilterGrid mosaic, from the mosaic's own layout."""
    page.wait_for_function("document.querySelector('.t-filtergrid-mosaic img').naturalWidth > 0", timeout=120_000)
    lay = read_state(page, ".t-state-layout")["tiles"]
    scale = page.evaluate("(() => { const i = document.querySelector('.t-filtergrid-mosaic img');"
                          " return i.getBoundingClientRect().width / i.naturalWidth; })()")
    r, c = divmod(tile, lay["ncols"])
    x = (lay["pad"] + c * (lay["tile_w"] + lay["pad"]) + lay["tile_w"] / 2) * scale
    y = (lay["pad"] + r * (lay["tile_h"] + lay["pad"]) + lay["tile_h"] / 2) * scale
    mosaic = page.locator(".t-filtergrid-mosaic img")
    mosaic.scroll_into_view_if_needed()
    mosaic.click(position={"x": x, "y": y})


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_tour_linked_views(chromium, tmp_path, app):
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "tour.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBES))  # a temporary copy: Lab autosaves outputs into it
    nbformat.write(nb, root / "tour_probed.ipynb")
    jp = JupyterPage(chromium, root, tmp_path, app, f"tour-{app}")
    try:
        page = jp.goto(URLS[app], ".jp-Notebook .jp-Cell")
        jp.run_all_cells()
        page.wait_for_selector(".t-state-layout", timeout=300_000, state="attached")
        tile = 7
        click_filter_tile(page, tile)
        for probe in (".t-state-sel", ".t-state-browser", ".t-state-picker"):
            wait_state(page, lambda s: s["layer"] == "conv1" and s["channel"] == tile, probe, timeout=60)
        page.wait_for_function(
            f"document.querySelector('.t-activations-info').innerText.includes('conv1[{tile}]')", timeout=60_000)
        jp.screenshot("clicked")
        assert_no_error_text(page)
        assert jp.our_console_errors() == []
    finally:
        jp.close()
