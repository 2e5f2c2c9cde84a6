"""Test-only Jupyter server extension: reports TCP_NODELAY on the server's side of each open kernel websocket.

Loaded by the tests with ``--ServerApp.jpserver_extensions={"tests.jupyter_nodelay_probe": true}``; the option
can only be read inside the server process, from the socket tornado holds.
"""
import json
import socket

from jupyter_server.base.handlers import APIHandler
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.utils import url_path_join
from tornado import web


class NoDelayProbe(APIHandler):
    @web.authenticated
    def get(self):
        sockets = []
        for key, handler in list(ZMQChannelsWebsocketConnection._open_sessions.items()):
            sock = handler.ws_connection.stream.socket
            sockets.append({"session": key, "kernel_id": handler.kernel_id,
                            "connection_class": type(handler.connection).__name__,
                            "nodelay": bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))})
        self.finish(json.dumps({"sockets": sockets}))


def _jupyter_server_extension_points():
    return [{"module": "tests.jupyter_nodelay_probe"}]


def _load_jupyter_server_extension(serverapp):
    base = serverapp.web_app.settings.get("base_url", "/")
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base, "probe", "nodelay"), NoDelayProbe)])
