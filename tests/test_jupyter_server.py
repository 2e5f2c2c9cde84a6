"""The server extension in a real Jupyter server: enabled by the install, TCP_NODELAY on a live kernel websocket,
and the server still serves kernels, terminals and files."""
import json
import logging
import uuid

import pytest
import websocket

from tests.jupyter_process import JupyterProcess

PROBE = {"tests.jupyter_nodelay_probe": True}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    (root / "hello.txt").write_text("hello from the root")
    srv = JupyterProcess(root, tmp_path_factory.mktemp("work"), "server", extensions=PROBE)
    yield srv
    srv.stop()


def _kernel_websocket(srv):
    kernel = srv.post("/api/kernels", {"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    kid = kernel.json()["id"]
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/api/kernels/{kid}/channels?session_id=test",
                                     header=[f"Authorization: token {srv.token}"], timeout=60)
    return kid, ws


def _execute(ws, code: str) -> str:
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({"channel": "shell", "content": {"code": code, "silent": False},
                        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "t",
                                   "session": "test", "version": "5.3"},
                        "metadata": {}, "parent_header": {}, "buffers": []}))
    while True:  # the kernel answers on iopub; wait for this request's result, no sleeps
        reply = json.loads(ws.recv())
        if reply.get("parent_header", {}).get("msg_id") == msg_id and reply["msg_type"] == "execute_result":
            return reply["content"]["data"]["text/plain"]


def _nodelay(srv, kid):
    sockets = [s for s in srv.get("/probe/nodelay").json()["sockets"] if s["kernel_id"] == kid]
    assert len(sockets) == 1, sockets
    return sockets[0]


def test_the_install_enables_the_extension(server):
    log = server.log()
    assert "ipynetviz: TCP_NODELAY on kernel websockets" in log, log[-2000:]
    assert "ipynetviz_jupyter" in log and "Traceback" not in log


def test_a_live_kernel_websocket_has_nodelay_and_the_kernel_answers(server):
    kid, ws = _kernel_websocket(server)
    try:
        assert _execute(ws, "6 * 7") == "42"
        sock = _nodelay(server, kid)
        assert sock == {**sock, "connection_class": "NoDelayKernelConnection", "nodelay": True}
    finally:
        ws.close()
        assert server.proc.poll() is None


def test_terminals_and_files_are_still_served(server):
    term = server.post("/api/terminals")
    assert term.status_code == 200, term.text
    assert term.json()["name"] in [t["name"] for t in server.get("/api/terminals").json()]
    assert server.get("/files/hello.txt").text == "hello from the root"
    assert server.get("/api/contents/hello.txt").json()["content"] == "hello from the root"
    assert server.get("/api/kernelspecs").json()["default"] == "python3"


def test_the_setting_turns_nodelay_off(tmp_path):
    srv = JupyterProcess(tmp_path, tmp_path, "server", ["--NoDelayKernelConnection.tcp_nodelay=False"],
                         extensions=PROBE)
    try:
        kid, ws = _kernel_websocket(srv)
        try:
            assert _execute(ws, "1 + 1") == "2"
            assert _nodelay(srv, kid)["nodelay"] is False  # jupyter_server's own default: Nagle on
        finally:
            ws.close()
    finally:
        srv.stop()


# --- the hook point, in process --------------------------------------------------------------------------------

def test_a_server_without_the_hook_gets_one_warning_and_nothing_else(caplog):
    from ipynetviz_jupyter.nodelay import install
    settings = {"base_url": "/"}
    with caplog.at_level(logging.INFO):
        assert install(settings, logging.getLogger("t")) is False
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "no 'kernel_websocket_connection_class' setting" in caplog.text
    assert settings == {"base_url": "/"}


def test_a_users_own_connection_class_is_left_alone(caplog):
    from jupyter_server.gateway.connections import GatewayWebSocketConnection
    from ipynetviz_jupyter.nodelay import install
    from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

    class Mine(ZMQChannelsWebsocketConnection):
        pass
    for cls in (Mine, GatewayWebSocketConnection):
        settings = {"kernel_websocket_connection_class": cls}
        with caplog.at_level(logging.INFO):
            assert install(settings, logging.getLogger("t")) is False
        assert settings["kernel_websocket_connection_class"] is cls
    assert "Mine" in caplog.text and "left to it" in caplog.text


def test_standalone_voila_uses_the_nodelay_connection(tmp_path):
    import signal

    from voila.app import Voila
    from ipynetviz_jupyter.nodelay import NoDelayKernelConnection
    nb = tmp_path / "empty.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    app = Voila()
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        app.initialize([str(nb), "--no-browser"])  # loads voila.json from the environment, as `voila` does
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # Voila installs its own handler; pytest keeps its own
    assert app.kernel_websocket_connection_class is NoDelayKernelConnection
    assert app.init_settings()["kernel_websocket_connection_class"] is NoDelayKernelConnection


def test_jupyter_lists_both_extensions_enabled():
    """What `pip install` (editable too) put in the environment: the CLI shows the server extension enabled, and
    JupyterLab finds the prebuilt lab extension with its entry file (no node, no build step)."""
    import pathlib
    import re
    import subprocess
    import sys

    from jupyter_core.paths import jupyter_path
    from jupyterlab_server.config import get_federated_extensions

    out = subprocess.run([sys.executable, "-m", "jupyter_server", "extension", "list"], capture_output=True,
                         text=True, timeout=120)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)  # no colour codes
    assert re.search(r"ipynetviz_jupyter enabled", listing) and re.search(r"ipynetviz_jupyter 0\.1\.0 OK", listing), \
        listing
    lab = get_federated_extensions(jupyter_path("labextensions"))["ipynetviz"]
    assert lab["install"]["packageName"] == "ipynetviz"
    assert (pathlib.Path(lab["ext_path"]) / lab["jupyterlab"]["_build"]["load"]).is_file()
