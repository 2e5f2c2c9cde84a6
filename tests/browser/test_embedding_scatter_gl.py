"""Above 5,000 points the scatter switches to WebGL (bqplot-gl's ScatterGL) and still renders in a real browser."""
import pytest

from tests.browser.harness import assert_no_error_text, wait_state

pytestmark = pytest.mark.browser

CELLS = [
    "import numpy as np, torch\n"
    "torch.set_num_threads(2)\n"
    "import ipynetviz as nv\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    "from ipynetviz.widgets.embedding_scatter import EmbeddingScatter\n"
    "insp = nv.zoo.load('digits-cnn')\n"
    "x, y = nv.zoo.digits(split='train')\n"
    "x, y = np.concatenate([x] * 5)[:6000], np.concatenate([y] * 5)[:6000]\n"
    "w = EmbeddingScatter(insp, (x, y), layer='avgpool', method='pca', max_points=6000)\n"
    "w.wait(300)\n"
    "display(w, StateProbe(w, ['n_points', 'layer', 'method'], css_class='t-state-gl'))\n"
    "print(type(w.scatter).__name__ if hasattr(w, 'scatter') else type(w.figure.marks[0]).__name__)",
]


def test_six_thousand_points_render_with_webgl(voila):
    page = voila(CELLS, wait_for=".t-state-gl", timeout=300)
    state = wait_state(page, lambda s: s["n_points"] == 6000, ".t-state-gl", timeout=120)
    assert state["method"] == "pca"
    assert "ScatterGL" in page.locator("body").inner_text()
    page.wait_for_selector(".t-embedding canvas, canvas", timeout=60_000, state="attached")
    page.session.screenshot("gl")
    assert_no_error_text(page)
