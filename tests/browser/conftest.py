"""Real-browser harness: serve a notebook with Voila on 127.0.0.1 and drive Debian's Chromium via Playwright.

Use the ``voila`` fixture: ``page = voila(["import ipynetviz as nv", "w = ...", "w"], wait_for=".t-my-widget")``.
Every page is checked by :func:`assert_no_error_text` in the tests, which also fails on any console error or
uncaught page error (:meth:`VoilaSession.console_errors`). Screenshots go to ``test-artifacts/``.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return os.environ.get("IPYNETVIZ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: pathlib.Path, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited early ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"voila did not open port {port} in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def chromium(session_chromium):
    return session_chromium


@pytest.fixture(scope="session")
def session_chromium():
    path = chromium_path()
    if path is None:
        pytest.fail("Debian's Chromium is not installed: run `apt-get install -y chromium` (make test does this "
                    "when root), or set IPYNETVIZ_CHROMIUM to a Chromium binary")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def _is_local(url: str) -> bool:
    return url.startswith(("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "data:", "blob:"))


def _only_local(route):
    url = route.request.url
    if _is_local(url):
        route.continue_()
    else:  # Voila's template asks a CDN for fonts: harmless offline, so refuse it at once
        route.abort()


class VoilaSession:
    """One notebook served by one Voila process, opened in one browser page."""

    def __init__(self, chromium, tmp_path: pathlib.Path, name: str):
        self.chromium, self.tmp, self.name = chromium, tmp_path, name
        self.proc = None
        self.page = None
        self.console: list[str] = []
        self.errors: list[str] = []

    def _on_console(self, msg) -> None:
        self.console.append(f"{msg.type}: {msg.text}")
        url = (msg.location or {}).get("url", "")
        if msg.type == "error" and not (msg.text.startswith("Failed to load resource") and not _is_local(url)):
            self.errors.append(f"console error: {msg.text} ({url})")

    def console_errors(self) -> list[str]:
        """Console errors and uncaught exceptions of the page, except the refused CDN requests (see _only_local).

        Voila's bundled JupyterLab 4.2 logs version *warnings* for newer extensions; those are not errors.
        """
        return list(self.errors)

    def open(self, cells: list[str] | pathlib.Path, wait_for: str = ".jupyter-widgets", timeout: float = 120.0):
        """Serve ``cells`` (code strings) or an existing notebook file (copied, so nothing is written back)."""
        if isinstance(cells, pathlib.Path):
            nb = nbformat.read(cells, as_version=4)
        else:
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = self.tmp / f"{self.name}.ipynb"
        nbformat.write(nb, path)
        port = _free_port()
        log = self.tmp / "voila.log"
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voila", str(path), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
             "--show_tracebacks=True", "--VoilaConfiguration.http_keep_alive_timeout=30"],
            cwd=self.tmp, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(port, self.proc, log)
        self.page = self.chromium.new_page(viewport={"width": 1400, "height": 1000})
        self.page.route("**/*", _only_local)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}\n{e.stack}"))
        self.page.goto(f"http://127.0.0.1:{port}/", timeout=timeout * 1000)
        self.page.wait_for_selector(wait_for, timeout=timeout * 1000, state="attached")
        return self.page

    def screenshot(self, label: str) -> pathlib.Path:
        ARTIFACTS.mkdir(exist_ok=True)
        out = ARTIFACTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(out), full_page=True)
        return out

    def close(self) -> None:
        if self.page is not None:
            self.page.close()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def voila(chromium, tmp_path, request):
    """Open a notebook made of ``cells`` in Voila: ``page = voila(cells, wait_for=".t-x")``."""
    sessions = []

    def open_(cells, wait_for=".jupyter-widgets", timeout=120.0):
        s = VoilaSession(chromium, tmp_path, request.node.name.replace("[", "-").replace("]", ""))
        sessions.append(s)
        page = s.open(cells, wait_for=wait_for, timeout=timeout)
        page.session = s
        return page
    yield open_
    for s in sessions:
        try:
            if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
                s.screenshot("failed")
        finally:
            s.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
