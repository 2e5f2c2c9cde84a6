"""ipynetviz's Jupyter server extension: TCP_NODELAY on kernel websockets and the bundled notebooks for the Lab
launcher. Enabled by ``pip install`` (``etc/jupyter/jupyter_server_config.d/ipynetviz_jupyter.json``).

A top-level package of its own, not ``ipynetviz.jupyter``: importing ``ipynetviz`` imports torch (~1.5 s and
hundreds of MB), which every Jupyter server in the environment would pay at start-up for two small handlers.

Settings: ``c.NoDelayKernelConnection.tcp_nodelay = False`` keeps Nagle's algorithm;
``jupyter server extension disable ipynetviz_jupyter`` turns the whole extension off.
"""
from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    return [{"module": "ipynetviz_jupyter"}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "ipynetviz"}]


def _load_jupyter_server_extension(serverapp):
    """Install the nodelay connection class and the notebook endpoints; log and carry on if anything fails."""
    log = serverapp.log
    try:
        from .nodelay import install
        if install(serverapp.web_app.settings, log):
            log.info("ipynetviz: TCP_NODELAY on kernel websockets")
    except Exception as err:  # pragma: no cover - install() itself never raises
        log.warning("ipynetviz: TCP_NODELAY not installed (%s)", err)
    try:
        from .handlers import setup_handlers
        setup_handlers(serverapp.web_app, str(serverapp.root_dir))
    except Exception as err:
        log.warning("ipynetviz: notebook launcher endpoints not available (%s: %s)", type(err).__name__, err)


load_jupyter_server_extension = _load_jupyter_server_extension  # the name Notebook 6 looked for
