"""How long the tour takes to become interactive in Voila, and where the time goes.

Goal (issue 12): the tour interactive in Voila in < 10 s after the page request, on 2 cores. Measured in one run:

- ``import_s``: a fresh interpreter importing what the tour's kernel imports (torch, ipynetviz, its widgets);
- ``cells_s``: each code cell of the tour executed in a fresh kernel (nbclient's timing), so the kernel's share
  is known cell by cell (imports land in the first cell);
- ``voila``: Voila serving the tour, Debian's Chromium asking for the page: seconds from the request to the first
  widget on the page, and to every view painted (filter mosaic, feature maps, guided backprop, occlusion map);
  once as Voila starts by default (a kernel per request) and once with a pre-heated kernel (``--preheat_kernel``:
  Voila runs the notebook before anyone asks, as a classroom server would).

Run: ``.venv/bin/python benchmarks/bench_first_paint.py`` (needs the test extras and Chromium).
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import record  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOUR = ROOT / "notebooks" / "tour.ipynb"
PAINTED = ("document.querySelector('.t-filtergrid-mosaic img')?.naturalWidth > 0",
           "document.querySelector('.t-activations-maps img')?.naturalWidth > 8",
           "document.querySelector('.t-neuronpicker-result img')?.naturalWidth > 8",
           "document.querySelector('.t-occlusion-heatmap img')?.naturalWidth > 8")
ENV = dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=str(ROOT))


def import_seconds() -> float:
    code = "import time; t = time.perf_counter(); import torch, ipynetviz, ipynetviz.widgets; " \
           "print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                                check=True).stdout.strip())


def cell_seconds() -> list[dict]:
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(TOUR, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=True,
                   resources={"metadata": {"path": str(TOUR.parent)}}).execute()
    out = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        t = c.metadata.get("execution", {})
        start, end = t.get("iopub.execute_input"), t.get("shell.execute_reply")
        if start and end:
            from datetime import datetime
            secs = (datetime.fromisoformat(end.rstrip("Z")) - datetime.fromisoformat(start.rstrip("Z"))).total_seconds()
            out.append({"cell": c.source.splitlines()[0][:60], "seconds": round(secs, 2)})
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def voila_seconds(browser, preheat: bool) -> dict:
    work = pathlib.Path(tempfile.mkdtemp())
    shutil.copy(TOUR, work / "tour.ipynb")
    port = _port()
    args = [sys.executable, "-m", "voila", "tour.ipynb", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"]
    if preheat:
        args += ["--preheat_kernel=True", "--pool_size=1"]
    proc = subprocess.Popen(args, cwd=work, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        if preheat:
            time.sleep(60)  # the pool kernel runs the notebook before the request (not part of what is timed)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("http://127.0.0.1", "ws://", "data:"))
                   else r.abort())
        t0 = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/", timeout=300_000)
        page.wait_for_selector(".jupyter-widgets", state="attached", timeout=300_000)
        first = time.perf_counter() - t0
        for cond in PAINTED:
            page.wait_for_function(cond, timeout=300_000, polling=50)
        painted = time.perf_counter() - t0
        page.close()
        return {"first_widget_s": round(first, 2), "all_views_painted_s": round(painted, 2)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    from playwright.sync_api import sync_playwright
    figures = {"import_s": round(import_seconds(), 2), "cells_s": cell_seconds()}
    figures["cells_total_s"] = round(sum(c["seconds"] for c in figures["cells_s"]), 2)
    chromium = os.environ.get("IPYNETVIZ_CHROMIUM") or shutil.which("chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        figures["voila_default"] = voila_seconds(browser, preheat=False)
        figures["voila_preheated"] = voila_seconds(browser, preheat=True)
        browser.close()
    figures["load_average_1min"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=1))
    print("written", record("first_paint", figures))


if __name__ == "__main__":
    main()
