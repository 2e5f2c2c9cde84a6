"""Real browser: start an optimisation, watch the preview change, stop it, find it in the gallery."""
import pytest

from tests.browser.harness import assert_no_error_text, read_state, wait_state

pytestmark = pytest.mark.browser

CELLS = [
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "from tests.conftest import small_cnn\n"
    "from ipynetviz.engine import Inspector, Selection\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    "from ipynetviz.widgets.image_optimizer import ImageOptimizer\n"
    "insp = Inspector(small_cnn(seed=1), input_size=(3, 32, 32), device='cpu', class_names=list('abcde'))\n"
    "images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))\n"
    "w = ImageOptimizer(insp, images, selection=Selection(), steps=20)\n"
    "display(w, StateProbe(w, ['mode', 'steps', 'running', 'steps_done', 'gallery_size', 'last']))",
]


def src(page, css):
    return page.evaluate(f"document.querySelector('{css} img').src")


def set_steps(page, n):
    box = page.locator(".t-optimizer-steps input")
    box.fill(str(n))
    box.press("Enter")
    wait_state(page, lambda s: s["steps"] == n, timeout=20)


def test_run_preview_stop_and_gallery(voila):
    page = voila(CELLS, wait_for=".t-state")
    page.locator(".t-optimizer-mode button", has_text="unit").click()
    wait_state(page, lambda s: s["mode"] == "unit", timeout=20)
    set_steps(page, 100000)
    blank = src(page, ".t-optimizer-preview")

    page.locator(".t-optimizer-run").click()
    state = wait_state(page, lambda s: s["running"] and s["steps_done"] >= 8, timeout=60)
    page.wait_for_function(f"document.querySelector('.t-optimizer-preview img').src !== {blank!r}", timeout=60000)
    first = src(page, ".t-optimizer-preview")
    page.wait_for_function(f"document.querySelector('.t-optimizer-preview img').src !== {first!r}", timeout=60000)
    assert float(page.locator(".t-optimizer-progress .progress-bar").evaluate(
        "e => parseFloat(e.style.width) || 0")) >= 0  # the bar is drawn
    assert "unit: step" in page.locator(".t-optimizer-info").inner_text()
    page.session.screenshot("running")

    page.locator(".t-optimizer-stop").click()
    # the probe may redraw between gallery_size and last: wait for the run's own record
    state = wait_state(page, lambda s: not s["running"] and s["gallery_size"] == 1 and "interrupted" in s["last"],
                       timeout=60)
    assert state["last"]["interrupted"] and 8 <= state["last"]["steps_done"] < 100000
    assert "(stopped)" in page.locator(".t-optimizer-captions").inner_text()
    assert src(page, ".t-optimizer-gallery").startswith("data:image/png")
    link = page.locator(".t-optimizer-save a")
    assert link.get_attribute("download") == "ipynetviz-gallery.png"
    assert link.get_attribute("href").startswith("data:image/png;base64,")

    # a short class run goes to the end and joins the gallery
    page.locator(".t-optimizer-mode button", has_text="class").click()
    wait_state(page, lambda s: s["mode"] == "class", timeout=20)
    set_steps(page, 12)
    page.locator(".t-optimizer-run").click()
    state = wait_state(page, lambda s: not s["running"] and s["gallery_size"] == 2 and s["last"].get("mode") == "class",
                       timeout=60)
    assert state["last"] == dict(state["last"], mode="class", steps_done=12, interrupted=False)
    assert len(page.locator(".t-optimizer-captions li").all()) == 2
    assert read_state(page)["steps_done"] == 12
    page.session.screenshot("gallery")
    assert_no_error_text(page)


FV_CELLS = [CELLS[0].replace("['mode', 'steps', 'running', 'steps_done', 'gallery_size', 'last']",
                             "['mode', 'steps', 'running', 'steps_done', 'gallery_size', 'last', 'pictures', "
                             "'facets', 'compare', 'pictures_shown']")]


def test_diversity_facets_and_compare_regularizers(voila):
    """Issue 13: a diversity batch, multifaceted pictures with their image clusters, and the labelled comparison."""
    page = voila(FV_CELLS, wait_for=".t-state")
    set_steps(page, 8)
    gallery_x = page.locator(".t-optimizer-gallery").bounding_box()["x"]
    box = page.locator(".t-optimizer-pictures input")
    box.fill("3")
    box.press("Enter")
    wait_state(page, lambda s: s["pictures"] == 3, timeout=20)
    page.locator(".t-optimizer-run").click()
    wait_state(page, lambda s: not s["running"] and s["pictures_shown"] == 3 and s["gallery_size"] == 3, timeout=60)
    assert page.locator(".t-optimizer-info li").count() == 3

    box.fill("1")
    box.press("Enter")
    page.locator(".t-optimizer-mode button", has_text="unit").click()
    facets = page.locator(".t-optimizer-facets input")
    facets.fill("2")
    facets.press("Enter")
    wait_state(page, lambda s: s["mode"] == "unit" and s["facets"] == 2 and s["pictures"] == 1, timeout=20)
    page.locator(".t-optimizer-run").click()
    wait_state(page, lambda s: not s["running"] and s["pictures_shown"] == 2 and s["gallery_size"] == 5, timeout=60)
    page.locator(".t-optimizer-facet-clusters").wait_for(state="visible", timeout=20000)
    assert "cluster" in page.locator(".t-optimizer-facet-caption").inner_text()

    facets.fill("0")
    facets.press("Enter")
    page.locator(".t-optimizer-compare input").check()
    wait_state(page, lambda s: s["compare"] and s["facets"] == 0, timeout=20)
    page.locator(".t-optimizer-run").click()
    wait_state(page, lambda s: not s["running"] and s["pictures_shown"] == 5 and s["gallery_size"] == 10, timeout=90)
    info = page.locator(".t-optimizer-info").inner_text()
    assert "Simonyan" in info and "Nguyen" in info
    # a row of five pictures and long captions later, the gallery has not moved sideways
    assert abs(page.locator(".t-optimizer-gallery").bounding_box()["x"] - gallery_x) <= 1
    page.session.screenshot("compare")
    assert_no_error_text(page)
