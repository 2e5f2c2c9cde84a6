"""TrainingLab in Voila: Start draws a curve and redraws the filters; Pause and Stop work; the gradient histograms
show every layer by name; a click on the layer list moves the lab's layer; no error text."""
import pytest

from tests.browser.harness import assert_no_error_text, wait_state

pytestmark = pytest.mark.browser

CELLS = [
    "import torch\n"
    "torch.set_num_threads(1)\n"
    "from ipynetviz.widgets.training_lab import TrainingLab\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    # far more epochs than the test lasts, so the run is still going when Pause is pressed on a fast machine
    "lab = TrainingLab('digits-cnn', epochs=4000, n_train=256, batch_size=32, n_test=64, interval=0.3,\n"
    "                  optimizer='adam', lr=3e-3)\n"
    "display(lab, StateProbe(lab, ['state', 'step', 'points', 'draws', 'layer']))",
]


def _filter_src(page) -> str:
    return page.locator(".t-training-filters .t-filtergrid-mosaic img").get_attribute("src") or ""


def test_start_draws_curves_and_filters_then_pause_and_stop(voila):
    page = voila(CELLS, wait_for=".t-training-start")
    page.locator(".t-training-start").click()
    state = wait_state(page, lambda s: s["points"] > 0 and s["draws"] >= 2, timeout=90)
    page.locator(".t-training-filters .t-filtergrid-mosaic img").wait_for(timeout=60_000)
    first = _filter_src(page)
    assert first.startswith("data:image/png")
    # the filter picture changes as the weights learn, and the loss curve has a drawn line
    wait_state(page, lambda s: s["draws"] >= state["draws"] + 2, timeout=90)
    page.wait_for_function(
        "src => { const i = document.querySelector('.t-training-filters .t-filtergrid-mosaic img');"
        " return i && i.getAttribute('src') !== src; }", arg=first, timeout=60_000)
    paths = page.locator(".t-training-loss path.line").evaluate_all("ps => ps.map(p => p.getAttribute('d') || '')")
    assert max(p.count("L") for p in paths) >= 2  # the training loss is a line of several points
    page.session.screenshot("running")
    page.locator(".t-training-pause").click()
    wait_state(page, lambda s: s["state"] == "paused")
    assert page.locator(".t-training-pause").inner_text().strip() == "Resume"
    page.session.screenshot("paused")
    page.locator(".t-training-stop").click()
    final = wait_state(page, lambda s: s["state"] == "stopped", timeout=60)
    assert 0 < final["step"] < 4000 * 8
    page.session.screenshot("stopped")
    titles = page.locator(".t-training-grad-histograms .mainheading").evaluate_all(
        "ts => ts.map(t => (t.textContent || '').trim())")
    assert titles == ["conv1", "conv2", "conv3", "conv4", "fc"]
    page.locator(".t-training-layer-list button", has_text="conv3").click()
    wait_state(page, lambda s: s["layer"] == "conv3")
    page.session.screenshot("layer-conv3")
    assert_no_error_text(page)
