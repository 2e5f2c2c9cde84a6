"""JupyterLab 4 and Notebook 7 pages for browser tests: a real server (tests/jupyter_process.py) and one page.

Lab is started with windowingMode "none" (off-screen cells stay in the DOM) in a private settings folder, and
with ``expose_app_in_browser`` so a test can run Lab commands (``window.jupyterapp.commands``).
"""
from __future__ import annotations

import pathlib

from tests.browser.conftest import ARTIFACTS, _only_local
from tests.jupyter_process import JupyterProcess

LAB_SETTINGS = {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                                "checkForUpdates": False}}


class JupyterPage:
    """One server and one browser page; ``console`` collects every console message as 'type: text'."""

    def __init__(self, chromium, root: pathlib.Path, work: pathlib.Path, app: str = "lab", name: str = "lab"):
        self.name = name
        expose = {"lab": "--LabApp.expose_app_in_browser=True",
                  "notebook": "--JupyterNotebookApp.expose_app_in_browser=True"}
        self.server = JupyterProcess(root, work, app, [expose[app]] if app in expose else [],
                                     lab_settings=LAB_SETTINGS)
        self.page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        self.page.route("**/*", _only_local)
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(
            f"{m.type}: {m.text} ({(m.location or {}).get('url', '')})"))  # the URL names the extension
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}\n{e.stack}"))  # the stack names the file

    def goto(self, path: str, wait_for: str, timeout: float = 120.0):
        sep = "&" if "?" in path else "?"
        self.page.goto(f"{self.server.url}{path}{sep}token={self.server.token}", timeout=timeout * 1000)
        self.page.wait_for_selector(wait_for, timeout=timeout * 1000)
        return self.page

    def run_all_cells(self, timeout: float = 120.0) -> None:
        """Wait for the open notebook's kernel, then run every cell (``window.jupyterapp`` in Lab and Notebook 7)."""
        self.page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                    " && window.jupyterapp.shell.currentWidget.sessionContext",
                                    timeout=timeout * 1000)
        self.page.evaluate("""async () => {
            const app = window.jupyterapp, panel = app.shell.currentWidget;
            await panel.context.ready;
            await panel.sessionContext.ready;
            await app.commands.execute('notebook:run-all-cells');
        }""")

    def our_console_errors(self) -> list[str]:
        """Console errors and warnings that come from ipynetviz (its extension's files, its widgets' text), and
        uncaught errors from the widget stack our views run on (the widget manager, anywidget, bqplot): a dict in
        ClickImage's old ``layout`` trait threw one from the widget manager's create_view per mosaic."""
        refusal = "Failed to load resource: the server responded with a status of 4"  # a 409/404 the test asked for
        stack = ("@jupyter-widgets", "anywidget", "bqplot")
        return [m for m in self.console if (m.startswith(("error", "warning", "pageerror")) and "ipynetviz" in m
                                            or m.startswith("pageerror") and any(s in m for s in stack))
                and not (refusal in m and "/ipynetviz/notebooks/copy" in m)]

    def screenshot(self, label: str) -> pathlib.Path:
        ARTIFACTS.mkdir(exist_ok=True)
        out = ARTIFACTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(out))
        return out

    def close(self) -> None:
        try:
            self.page.close()
        finally:
            self.server.stop()
