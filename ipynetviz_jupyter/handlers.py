"""REST endpoints of the server extension: the bundled notebooks, and a copy of one into the user's folder.

Both go through jupyter_server's ``APIHandler``: ``@web.authenticated`` refuses a request without the server's
token or login cookie, the POST is XSRF-checked for cookie-authenticated browsers, and ``@authorized`` asks the
server's authorizer (read or write on "contents", like the file browser).
"""
from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .notebooks import CopyError, catalogue, copy_notebook


class _Base(APIHandler):
    auth_resource = "contents"

    @property
    def root_dir(self) -> str:
        return self.settings["ipynetviz_root_dir"]

    def _fail(self, err: CopyError) -> None:
        self.set_status(err.status)
        self.finish(json.dumps({"message": err.message, **err.extra}))


class NotebooksHandler(_Base):
    """GET /ipynetviz/notebooks: the bundled notebooks (name, file, title), tour first."""

    @web.authenticated
    @authorized("read")
    def get(self):
        self.finish(json.dumps({"notebooks": [b.to_json() for b in catalogue()]}))


class CopyHandler(_Base):
    """POST /ipynetviz/notebooks/copy {"name", "folder", "rename"}: 201 {"path"}, or an error with a message."""

    @web.authenticated
    @authorized("write")
    def post(self):
        try:
            body = self.get_json_body() or {}
        except web.HTTPError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return self._fail(CopyError(400, 'send JSON {"name": "tour", "folder": "", "rename": false}'))
        try:
            allow_hidden = bool(getattr(self.contents_manager, "allow_hidden", False))
            path = copy_notebook(body["name"], self.root_dir, body.get("folder") or "",
                                 rename=bool(body.get("rename", False)), allow_hidden=allow_hidden)
        except CopyError as err:
            return self._fail(err)
        self.log.info("ipynetviz: copied notebook %r to %s", body["name"], path)
        self.set_status(201)
        self.finish(json.dumps({"path": path}))


def setup_handlers(web_app, root_dir: str) -> None:
    web_app.settings["ipynetviz_root_dir"] = root_dir
    base = web_app.settings.get("base_url", "/")
    web_app.add_handlers(".*$", [
        (url_path_join(base, "ipynetviz", "notebooks"), NotebooksHandler),
        (url_path_join(base, "ipynetviz", "notebooks", "copy"), CopyHandler),
    ])
