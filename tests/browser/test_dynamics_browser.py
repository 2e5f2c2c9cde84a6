"""DynamicsMatrix and TransferPlot in Voila: the matrix draws, the slider moved fast ends on the last position's grid,
a cell click draws the directions, TransferPlot fills in and a dot click shows filters; no error text."""
import pytest

from tests.browser.harness import assert_no_error_text, read_state, wait_state

pytestmark = pytest.mark.browser

SETUP = (
    "import torch\n"
    "torch.set_num_threads(1)\n"
    "from torch import nn\n"
    "from ipynetviz.methods.training import train\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    "g = torch.Generator().manual_seed(0)\n"
    "x = torch.randn(96, 3, 8, 8, generator=g)\n"
    "y = (x[:, 0].mean((1, 2)) > 0).long() + (x[:, 1].mean((1, 2)) > 0).long()\n"
    "net = lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1),\n"
    "                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))\n"
)

DYNAMICS = [SETUP + (
    "from ipynetviz.widgets.dynamics_matrix import DynamicsMatrix\n"
    "run = train(net, (x, y), epochs=4, batch_size=16, lr=0.1, checkpoints=[0, .1, .2, .3, .4, .6, .8, 1],\n"
    "            background=False, device='cpu')\n"
    "w = DynamicsMatrix(run, x[:60], y[:60], method='cka')\n"
    "display(w, StateProbe(w, ['state', 'checkpoint', 'computed', 'cell']))")]

TRANSFER = [SETUP + (
    "from ipynetviz.widgets.transfer_plot import TransferPlot\n"
    "tnet = lambda k: nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1),\n"
    "                               nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, k))\n"
    "yy = torch.arange(96) % 4\n"
    "w = TransferPlot(((x, yy), (x[:48], yy[:48])), ([0, 1], [2, 3]), n_layers=[1, 2], model=tnet, epochs=1,\n"
    "                 batch_size=16)\n"
    "display(w, StateProbe(w, ['state', 'networks', 'selected']))")]


# a dot whose centre no other element covers: a click there hits it (several networks can share a place)
TOPMOST_DOT = """() => {
  const dots = Array.from(document.querySelectorAll('.t-transfer-figure path.dot'));
  for (let i = dots.length - 1; i >= 0; i--) {
    const r = dots[i].getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    if (document.elementFromPoint(x, y) === dots[i]) return {i, x, y};
  }
  return null;
}"""


def test_dynamics_matrix_slider_and_click(voila):
    page = voila(DYNAMICS, wait_for=".t-dynamics-matrix-plot")
    wait_state(page, lambda s: s["state"] == "done" and s["computed"] >= 1, timeout=120)
    page.wait_for_selector(".t-dynamics-matrix-plot .heatmapcell", timeout=30000)
    assert page.locator(".t-dynamics-matrix-plot .heatmapcell").count() == 3 * 8
    handle = page.locator(".t-dynamics-slider .ui-slider-handle, .t-dynamics-slider [role=slider]").first
    handle.focus()
    for _ in range(7):  # fast: no waiting between key presses
        page.keyboard.press("ArrowLeft")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    state = wait_state(page, lambda s: s["checkpoint"] == 3, timeout=30)
    page.wait_for_function("document.querySelector('.t-dynamics-grid').textContent.includes('step 7 (29%)')",  # checkpoint 3: 0.3 x 24 steps
                           timeout=30000)
    page.locator(".t-dynamics-matrix-plot .heatmapcell").nth(1).click()
    wait_state(page, lambda s: s["cell"] == [2, 1], timeout=30)
    page.wait_for_function("document.querySelector('.t-dynamics-directions').textContent.includes('top SVCCA "
                           "correlations')", timeout=60000)
    page.session.screenshot("dynamics")
    assert state["state"] == "done"
    assert_no_error_text(page)


def test_transfer_plot_fills_in_and_shows_filters(voila):
    page = voila(TRANSFER, wait_for=".t-transfer-start")
    page.locator(".t-transfer-start").click()
    wait_state(page, lambda s: s["state"] == "done" and s["networks"] == 10, timeout=180)
    page.wait_for_function("document.querySelectorAll('.t-transfer-figure path.dot').length === 8", timeout=30000)
    hit = page.evaluate(TOPMOST_DOT)
    assert hit is not None, "no dot of the plot can be clicked"
    page.mouse.click(hit["x"], hit["y"])
    wait_state(page, lambda s: s["selected"] >= 2, timeout=30)
    page.locator(".t-transfer-filters img").wait_for(timeout=30000)
    assert (page.locator(".t-transfer-filters img").get_attribute("src") or "").startswith("data:image/png")
    assert "BnB" in page.locator(".t-transfer-table").inner_text()
    page.session.screenshot("transfer")
    assert read_state(page)["networks"] == 10
    assert_no_error_text(page)
