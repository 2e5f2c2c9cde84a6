"""TCP_NODELAY on kernel websockets: a widget message leaves the server at once instead of waiting for Nagle.

jupyter_server never calls ``set_nodelay(True)`` on the kernel websocket, so a small reply that follows another
small write waits for the browser's delayed ACK (up to ~40 ms on Linux). The cleanest hook in jupyter_server 2.x
is the configurable ``kernel_websocket_connection_class``: its ``connect()`` runs once per websocket, inside the
handler's ``open()``, when the TCP stream exists. Voila (standalone) has the same trait.
"""
from __future__ import annotations

import logging

from traitlets import Bool

try:  # jupyter_server >= 2.0
    from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
except ImportError:  # pragma: no cover - older servers have no connection class to extend
    ZMQChannelsWebsocketConnection = None

SETTING = "kernel_websocket_connection_class"
log = logging.getLogger(__name__)

if ZMQChannelsWebsocketConnection is not None:
    class NoDelayKernelConnection(ZMQChannelsWebsocketConnection):
        """jupyter_server's default kernel websocket connection with Nagle's algorithm turned off.

        Turn it off with ``c.NoDelayKernelConnection.tcp_nodelay = False`` (Jupyter server or Voila config).
        """

        tcp_nodelay = Bool(True, config=True,
                           help="Set TCP_NODELAY on each kernel websocket (widget replies are not delayed).")

        def connect(self):
            if self.tcp_nodelay:
                try:
                    self.websocket_handler.set_nodelay(True)
                except Exception as err:  # a closed stream must not stop the connection; the default applies
                    self.log.debug("ipynetviz: could not set TCP_NODELAY: %s", err)
            return super().connect()
else:  # pragma: no cover
    NoDelayKernelConnection = None


def install(settings: dict, logger: logging.Logger | None = None) -> bool:
    """Use :class:`NoDelayKernelConnection` in a server's tornado ``settings`` when they hold the default class.

    Returns True when installed. A user's own connection class (or a gateway's) is left alone, with one info line
    saying why; a server without the hook gets one warning. Never raises.
    """
    logger = logger or log
    try:
        current = settings.get(SETTING)
        if NoDelayKernelConnection is None or current is None:
            logger.warning("ipynetviz: this jupyter_server has no %r setting, so kernel websockets keep Nagle's "
                           "algorithm (widget replies may wait ~40 ms); upgrade to jupyter_server>=2", SETTING)
            return False
        if isinstance(current, str):  # a Type trait may still hold its import string
            from traitlets.utils.importstring import import_item
            current = import_item(current)
        if current is NoDelayKernelConnection:
            return True
        if current is not ZMQChannelsWebsocketConnection:
            logger.info("ipynetviz: kernel websockets use %s.%s (configured by you or a gateway); TCP_NODELAY is "
                        "left to it", current.__module__, current.__qualname__)
            return False
        settings[SETTING] = NoDelayKernelConnection
        return True
    except Exception as err:  # never break a server over a latency tweak
        logger.warning("ipynetviz: TCP_NODELAY not installed (%s: %s)", type(err).__name__, err)
        return False
