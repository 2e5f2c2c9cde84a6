"""Start a real Jupyter server (jupyter_server, JupyterLab or Notebook 7) on 127.0.0.1 for a test, and stop it.

Used by the server-extension tests and the Lab / Notebook 7 browser tests. The server runs in its own session
(stopped with SIGTERM by PID), with a token, a temporary root and private config/runtime/settings folders, so a
developer's own ``~/.jupyter`` does not change what is tested; the environment's ``etc/jupyter`` still applies,
which is where ``pip install`` put ipynetviz's extension.
"""
from __future__ import annotations

import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time

import requests

REPO = pathlib.Path(__file__).resolve().parents[1]
MODULES = {"server": "jupyter_server", "lab": "jupyterlab", "notebook": "notebook"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterProcess:
    def __init__(self, root: pathlib.Path, work: pathlib.Path, app: str = "server", args: list[str] = (),
                 lab_settings: dict | None = None, extensions: dict | None = None):
        self.root, self.work, self.app = root, work, app
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"{app}-{self.port}.log"
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_RUNTIME_DIR=str(work / "runtime"),
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
        if extensions:  # merged with the environment's jupyter_server_config.d, as an install would do it
            conf = work / "config" / "jupyter_server_config.d"
            conf.mkdir(parents=True, exist_ok=True)
            (conf / "tests.json").write_text(json.dumps({"ServerApp": {"jpserver_extensions": extensions}}))
        if lab_settings is not None:  # e.g. windowingMode "none": off-screen cells stay in the DOM
            settings = work / "lab-settings"
            for plugin, values in lab_settings.items():
                pkg, name = plugin.split(":")
                path = settings / pkg / f"{name}.jupyterlab-settings"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(values))
            env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
            env["JUPYTERLAB_WORKSPACES_DIR"] = str(work / "workspaces")
        cmd = [sys.executable, "-m", MODULES[app], "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}", *args]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self.proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=self.log_path.open("w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited early ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                if self.get("/api/status", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.app} was not ready in {timeout}s:\n{self.log()[-3000:]}")

    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers(), **kw)

    def post(self, path: str, body=None, **kw) -> requests.Response:
        return requests.post(self.url + path, headers=self.headers(), json=body, **kw)

    def stop(self) -> None:
        """Shut kernels and terminals down through the API (they live in sessions of their own), then the server.

        After its own cleanup a server can still wait at interpreter exit for idle anyio worker threads (seen
        with jupyter_server 2.21 after a file listing); by then nothing is left to clean up, so it is killed.
        """
        if self.proc.poll() is not None:
            return
        try:
            for kind, key in (("kernels", "id"), ("terminals", "name")):
                for item in self.get(f"/api/{kind}", timeout=10).json():
                    requests.delete(f"{self.url}/api/{kind}/{item[key]}", headers=self.headers(), timeout=30)
        except requests.RequestException:
            pass  # the server's own SIGTERM cleanup shuts them down too
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
