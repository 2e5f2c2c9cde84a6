"""Click -> new picture in a real browser (Debian Chromium), Voila and JupyterLab, with and without the server
extension's TCP_NODELAY, beside the bare ipywidgets floor measured in the same run.

Each sample is timed inside the page: from the DOM input event (the click, or the key press that moves a slider)
to the DOM change of the picture that answers it (the ``src`` of its ``<img>``, or the label's text). "final"
interactions wait until the view is idle and take its last picture; the number of picture updates per step is
reported too. Goal (issue 17): FilterGrid -> map and NeuronPicker -> guided backprop < 25 ms p50, occlusion
slider -> final map < 40 ms p50 with at most two picture updates per step.

    python benchmarks/bench_latency.py [--samples 50] [--apps voila,lab] [--modes nodelay,nagle] [--only bare,grid]
                                       [--kernel-only]

It first times the same views in process (no browser, no transport): input -> the picture's trait set, and the
number of comm messages sent for it.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.jupyter_process import JupyterProcess, free_port  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DEFAULT_CONNECTION = "jupyter_server.services.kernels.connection.channels.ZMQChannelsWebsocketConnection"

CELLS = [
    """import base64, io, itertools, json
import numpy as np, ipywidgets as W
from PIL import Image as PILImage
import ipynetviz as nv
from ipynetviz.widgets.base import StateProbe
insp = nv.zoo.load("shapes-cnn", seed=0)
images, labels = nv.zoo.shapes(8, split="test")""",
    # the bare floor: a button whose handler sets a 64x64 PNG, and a slider whose handler sets a label
    """def png(seed):
    buf = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()
pngs = itertools.cycle([png(0), png(1)])
bare_button = W.Button(description="bare"); bare_button.add_class("t-bare-button")
bare_image = W.Image(value=next(pngs), format="png"); bare_image.add_class("t-bare-image")
bare_button.on_click(lambda _: setattr(bare_image, "value", next(pngs)))
bare_slider = W.IntSlider(0, 0, 1000); bare_slider.add_class("t-bare-slider")
bare_label = W.Label("0"); bare_label.add_class("t-bare-label")
bare_slider.observe(lambda c: setattr(bare_label, "value", str(c["new"])), names="value")
W.VBox([bare_button, bare_image, bare_slider, bare_label])""",
    """sel = nv.Selection(layer="conv1")
grid = nv.FilterGrid(insp, layer="conv1", selection=sel)
browser = nv.ActivationBrowser(insp, images, selection=sel)
picker = nv.NeuronPicker(insp, images, selection=sel)
W.VBox([grid, browser, picker])""",
    """occ = nv.OcclusionExplorer(insp, images, selection=sel)
occ""",
    """W.VBox([StateProbe(grid.mosaic, ["tiles"], css_class="t-state-grid"),
        StateProbe(picker.maps, ["tiles"], css_class="t-state-maps"),
        StateProbe(occ, ["shown"], css_class="t-state-occ")])""",
]

RECORDER = """() => {
  if (window.__lat) return;
  const lat = window.__lat = {armed: false, t0: null, changes: [], target: null, also: null, alsoSeen: false};
  const start = () => { if (lat.armed && lat.t0 === null) lat.t0 = performance.now(); };
  document.addEventListener('click', start, true);
  document.addEventListener('keydown', start, true);
  new MutationObserver(muts => {
    const t = performance.now();
    if (!lat.armed || lat.t0 === null) return;
    for (const m of muts) {
      const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      if (el && el.closest(lat.target)) { lat.changes.push(t); break; }
    }
    for (const m of muts) {
      const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      if (lat.also && el && el.closest(lat.also)) lat.alsoSeen = true;
    }
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['src'], childList: true,
                             characterData: true});
  window.__arm = (target, also) => { Object.assign(lat, {armed: true, t0: null, changes: [], target: target,
                                                         also: also, alsoSeen: false}); };
}"""

BUSY = "document.querySelector('.t-busy') === null"
# the complete heat map for the window the slider shows now (the probe mirrors OcclusionExplorer.shown)
OCCLUSION_DONE = ("(() => { const s = JSON.parse(document.querySelector('.t-state-occ').innerText).shown;"
                  " const w = Number(document.querySelector('.t-occlusion-window .widget-readout').innerText);"
                  " return s.complete === true && s.window === w; })()")


def tile_center(page, state_css: str, img_css: str, tile: int) -> dict:
    lay = json.loads(page.locator(state_css).first.inner_text())["tiles"]
    scale = page.evaluate(f"(() => {{ const i = document.querySelector('{img_css}');"
                          " return i.getBoundingClientRect().width / i.naturalWidth; })()")
    r, c = divmod(tile, lay["ncols"])
    return {"x": (lay["pad"] + c * (lay["tile_w"] + lay["pad"]) + lay["tile_w"] / 2) * scale,
            "y": (lay["pad"] + r * (lay["tile_h"] + lay["pad"]) + lay["tile_h"] / 2) * scale}


class Interaction:
    """One input and the picture that answers it; ``final`` waits for the view to be idle (occlusion)."""

    def __init__(self, name, target, act, final=None, also=None):
        self.name, self.target, self.act, self.final, self.also = name, target, act, final, also

    def sample(self, page, i: int, timeout: float = 30.0):
        page.wait_for_function(BUSY, timeout=timeout * 1000)
        page.evaluate(f"window.__arm({json.dumps(self.target)}, {json.dumps(self.also)})")
        self.act(page, i)
        if self.final:  # a JS condition on the view's state probe: its last picture is on screen
            page.wait_for_function(f"window.__lat.changes.length > 0 && ({self.final})", timeout=timeout * 1000)
        else:
            page.wait_for_function("window.__lat.changes.length > 0", timeout=timeout * 1000)
        if self.also:  # the same input also starts slower work elsewhere: let it finish before the next sample
            page.wait_for_function("window.__lat.alsoSeen", timeout=timeout * 1000)
        lat = page.evaluate("({t0: window.__lat.t0, changes: window.__lat.changes})")
        end = lat["changes"][-1] if self.final else lat["changes"][0]
        return end - lat["t0"], len(lat["changes"])


def click_at(css, state=None, tiles=(7, 8)):
    def act(page, i):
        if state is None:
            page.locator(css).first.click()
        else:
            page.locator(css).first.click(position=tile_center(page, state, css, tiles[i % len(tiles)]))
    return act


def key_on(css):
    presses = itertools.count()  # its own: right, left, right... from the slider's start, so it always moves

    def act(page, i):
        page.locator(css).first.press("ArrowRight" if next(presses) % 2 == 0 else "ArrowLeft")
    return act


def interactions() -> dict:
    """Fresh per page: a slider's key presses count from its start value."""
    return {
        "bare": Interaction("bare floor: Button -> Image", ".t-bare-image", click_at(".t-bare-button")),
        "bare_slider": Interaction("bare floor: IntSlider -> Label", ".t-bare-label",
                                   key_on(".t-bare-slider .noUi-handle")),
        "grid_map": Interaction("FilterGrid click -> ActivationBrowser map", ".t-activations-large img",
                                click_at(".t-filtergrid-mosaic img", ".t-state-grid"),
                                also=".t-neuronpicker-result img"),
        "grid_gb": Interaction("FilterGrid click -> NeuronPicker guided backprop", ".t-neuronpicker-result img",
                               click_at(".t-filtergrid-mosaic img", ".t-state-grid")),
        "picker_gb": Interaction("NeuronPicker map click -> guided backprop", ".t-neuronpicker-result img",
                                 click_at(".t-neuronpicker-maps img", ".t-state-maps", tiles=(3, 4))),
        "occlusion": Interaction("OcclusionExplorer window slider -> final map", ".t-occlusion-heatmap img",
                                 key_on(".t-occlusion-window .noUi-handle"), final=OCCLUSION_DONE),
    }


def only_local(route):
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
        route.continue_()
    else:
        route.abort()


class VoilaServer:
    def __init__(self, notebook: pathlib.Path, work: pathlib.Path, args: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        log = (work / f"voila-{self.port}.log").open("w")
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
        self.proc = subprocess.Popen([sys.executable, "-m", "voila", str(notebook), "--no-browser",
                                      f"--port={self.port}", "--Voila.ip=127.0.0.1", *args],
                                     cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import socket
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("voila did not start")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)


def open_app(browser, app: str, mode: str, notebook: pathlib.Path, work: pathlib.Path):
    """Serve the notebook and open it; returns (page, server)."""
    if app == "voila":
        args = [] if mode == "nodelay" else [f"--Voila.kernel_websocket_connection_class={DEFAULT_CONNECTION}"]
        server = VoilaServer(notebook, work, args)
        url = server.url
    else:
        root = work / f"root-{mode}"
        root.mkdir()
        shutil.copy(notebook, root / notebook.name)  # Lab autosaves outputs into what it serves
        args = ["--LabApp.expose_app_in_browser=True"]
        if mode == "nagle":
            args.append("--NoDelayKernelConnection.tcp_nodelay=False")
        server = JupyterProcess(root, work, "lab", args, lab_settings={
            "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}})
        url = f"{server.url}/lab/tree/{notebook.name}?token={server.token}"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.route("**/*", only_local)
    page.goto(url, timeout=120_000)
    if app == "lab":
        page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000)
        page.evaluate("""async () => { const app = window.jupyterapp, p = app.shell.currentWidget;
            await p.context.ready; await p.sessionContext.ready;
            await app.commands.execute('notebook:run-all-cells'); }""")
    page.wait_for_selector(".t-state-maps", state="attached", timeout=300_000)
    page.wait_for_function("document.querySelector('.t-filtergrid-mosaic img').naturalWidth > 0", timeout=120_000)
    page.wait_for_function(BUSY, timeout=120_000)
    page.evaluate(RECORDER)
    return page, server


def percentile(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


STEP = itertools.count()  # one counter for every input, so each click or key press changes a value


def measure(page, inter: Interaction, samples: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        inter.sample(page, next(STEP))
    times, counts = [], []
    for _ in range(samples):
        t, n = inter.sample(page, next(STEP))
        times.append(t)
        counts.append(n)
    return {"p50_ms": round(percentile(times, 0.5), 1), "p90_ms": round(percentile(times, 0.9), 1),
            "updates_per_step": statistics.median(counts), "samples": len(times)}


def kernel_side(samples: int) -> dict:
    """The same views in this process, no browser: input -> the answering picture's trait set, and how many comm
    messages the views send for it (the part of each click that is ours, free of transport and browser)."""
    import threading

    from ipywidgets.widgets import widget as widget_module
    sent = []
    original = widget_module.Widget._send

    def counting_send(self, msg, buffers=None):
        sent.append((self, set(msg.get("state", {}))))
        return original(self, msg, buffers)
    widget_module.Widget._send = counting_send
    try:
        import ipynetviz as nv
        insp = nv.zoo.load("shapes-cnn", seed=0)
        images, _ = nv.zoo.shapes(8, split="test")
        sel = nv.Selection(layer="conv1")
        grid = nv.FilterGrid(insp, layer="conv1", selection=sel)
        browser = nv.ActivationBrowser(insp, images, selection=sel)
        picker = nv.NeuronPicker(insp, images, selection=sel)
        occ = nv.OcclusionExplorer(insp, images, selection=sel)
        views = (grid, browser, picker, occ)
        steps = itertools.count()
        cases = {
            "grid_map": (browser.large, "src", lambda: grid.click_tile(7 + next(steps) % 2)),
            "grid_gb": (picker.result_view, "src", lambda: grid.click_tile(7 + next(steps) % 2)),
            "picker_gb": (picker.result_view, "src", lambda: picker.click_map(3 + next(steps) % 2)),
            "occlusion": (occ, "shown", lambda: occ.window_slider._handle_msg({"content": {"data": {
                "method": "update", "state": {"value": 16 + next(steps) % 2}, "buffer_paths": []}}, "buffers": []})),
        }
        figures = {}
        for key, (obj, name, act) in cases.items():
            times, counts, before = [], [], []
            for i in range(samples + 3):
                for v in views:
                    v.wait()
                answered, when = threading.Event(), []

                def seen(change):
                    if name != "shown" or change["new"].get("complete"):
                        when.append(time.perf_counter())  # the input's handler may still be running
                        answered.set()
                obj.observe(seen, names=name)
                sent.clear()
                t0 = time.perf_counter()
                act()
                answered.wait(30)
                t1 = when[0] if when else time.perf_counter()
                obj.unobserve(seen, names=name)
                for v in views:
                    v.wait()
                if i >= 3:
                    times.append((t1 - t0) * 1000)
                    counts.append(len(sent))
                    # how many messages go out before the answering picture (the transport's queue ahead of it)
                    target = occ.heatmap if obj is occ else obj
                    before.append(next((j for j, (w, keys) in enumerate(sent) if w is target and "src" in keys),
                                       len(sent)))
            figures[key] = {"p50_ms": round(percentile(times, 0.5), 2), "p90_ms": round(percentile(times, 0.9), 2),
                            "messages": statistics.median(counts), "messages_before_picture": statistics.median(before)}
            print(f"kernel side {key:10s} p50 {figures[key]['p50_ms']:6.2f} ms  p90 {figures[key]['p90_ms']:6.2f} ms"
                  f"  comm messages {figures[key]['messages']}, before the picture "
                  f"{figures[key]['messages_before_picture']}", flush=True)
        return figures
    finally:
        widget_module.Widget._send = original


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--apps", default="voila,lab")
    ap.add_argument("--modes", default="nodelay,nagle", help="nodelay: with the server extension; nagle: without")
    ap.add_argument("--only", default=",".join(interactions()))
    ap.add_argument("--kernel-only", action="store_true", help="only the in-process kernel-side figures")
    args = ap.parse_args(argv)
    kernel = kernel_side(args.samples)
    if args.kernel_only:
        return
    import nbformat
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("IPYNETVIZ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-latency-"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = work / "latency.ipynb"
    nbformat.write(nb, notebook)
    figures = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding"])
        for app in args.apps.split(","):
            for mode in args.modes.split(","):
                page, server = open_app(browser, app, mode, notebook, work)
                try:
                    inters = interactions()
                    for key in args.only.split(","):
                        inter = inters[key]
                        fig = measure(page, inter, args.samples)
                        figures[f"{app}/{mode}/{key}"] = {"interaction": inter.name, **fig}
                        print(f"{app:6s} {mode:8s} {inter.name:52s} p50 {fig['p50_ms']:6.1f} ms  "
                              f"p90 {fig['p90_ms']:6.1f} ms  updates/step {fig['updates_per_step']}", flush=True)
                finally:
                    page.close()
                    server.stop()
        browser.close()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "latency-cpu.json"
    load = os.getloadavg()
    out.write_text(json.dumps({"benchmark": "latency", "samples": args.samples, "load_average": load,
                               "figures": figures, "kernel_side": kernel}, indent=2))
    print(f"load average {load[0]:.1f}; wrote {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
