"""CompressionLab in Voila: a slider typed in the browser changes the accuracy text and the histogram picture,
both equal to a Python-side computation; Save writes the file it reports; no error text; screenshots kept."""
import base64
import copy

import pytest
import torch

from tests.browser.harness import assert_no_error_text, wait_state

pytestmark = pytest.mark.browser

N_TEST = 500
CELLS = [
    "import torch\n"
    "torch.set_num_threads(1)\n"
    "from ipynetviz import zoo\n"
    "from ipynetviz.widgets.compression_lab import CompressionLab\n"
    "from ipynetviz.widgets.base import StateProbe\n"
    "x, y = zoo.mnist('test')\n"
    f"lab = CompressionLab(zoo.load('lenet-300-100', device='cpu'), (x[:{N_TEST}], y[:{N_TEST}]), paper='lenet-300-100')\n"
    "display(lab, StateProbe(lab, ['accuracy', 'file_bytes', 'sparsity']))",
]


def _expected(sparsity: float):
    from ipynetviz import zoo
    from ipynetviz.methods import compression as C
    from ipynetviz.render import to_png
    from ipynetviz.widgets.compression_parts import weight_histogram

    insp = zoo.load("lenet-300-100", device="cpu")
    x, y = zoo.mnist("test")
    model = copy.deepcopy(insp.model)
    C.prune(model, {"fc1": sparsity}).apply(model)
    with torch.no_grad():
        acc = int((model(insp.prepare(x[:N_TEST])).argmax(1) == torch.from_numpy(y[:N_TEST])).sum()) / N_TEST
    limit = float(insp.model.fc1.weight.detach().abs().max())
    png = to_png(weight_histogram(model.fc1.weight.detach().numpy(), limit))
    return acc, base64.b64encode(png).decode()


def _histogram_base64(page) -> str:
    return page.evaluate(
        """async () => {
            const img = document.querySelector('img.t-compression-histogram');
            const blob = await (await fetch(img.src)).blob();
            const buf = new Uint8Array(await blob.arrayBuffer());
            let s = ''; for (const b of buf) s += String.fromCharCode(b);
            return btoa(s);
        }""")


def test_moving_a_slider_updates_accuracy_and_histogram(voila, tmp_path):
    page = voila(CELLS, wait_for=".t-compression-sparsity-fc1")
    first = wait_state(page, lambda s: s["accuracy"] == s["accuracy"] and s["file_bytes"] > 0, timeout=90)
    page.locator("img.t-compression-histogram").wait_for(timeout=60_000)
    before_pic = _histogram_base64(page)
    before_text = page.locator(".t-accuracy-value").inner_text()
    page.session.screenshot("dense")
    readout = page.locator(".t-compression-sparsity-fc1 .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("0.97")
    page.keyboard.press("Enter")
    state = wait_state(page, lambda s: abs(s["sparsity"].get("fc1", 0) - 0.97) < 1e-9 and s["accuracy"] != first["accuracy"],
                       timeout=90)
    acc, png = _expected(0.97)
    assert state["accuracy"] == acc
    page.wait_for_function("t => document.querySelector('.t-accuracy-value').innerText !== t", arg=before_text,
                           timeout=30_000)
    assert page.locator(".t-accuracy-value").inner_text() == f"{100 * acc:.2f}%"
    deadline_pic = None
    for _ in range(100):  # the picture arrives with the same update; allow the browser a moment to swap it
        deadline_pic = _histogram_base64(page)
        if deadline_pic != before_pic:
            break
        page.wait_for_timeout(100)
    assert deadline_pic == png != before_pic
    assert int(page.locator(".t-bytes-value").inner_text().replace(",", "")) == state["file_bytes"] < first["file_bytes"]
    page.session.screenshot("pruned")
    # Save compressed writes the file next to the notebook and shows its real size and the reloaded accuracy
    page.locator(".t-compression-save").click()
    page.locator(".t-saved-bytes").wait_for(timeout=60_000)
    on_disk = (tmp_path / "compressed.ipnz").stat().st_size
    assert int(page.locator(".t-saved-bytes").inner_text().replace(",", "")) == on_disk == state["file_bytes"]
    assert page.locator(".t-saved-accuracy").inner_text() == f"{100 * acc:.2f}%"
    page.session.screenshot("saved")
    assert_no_error_text(page)
