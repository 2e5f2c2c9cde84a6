"""The copy-a-bundled-notebook endpoint: authentication, XSRF, paths kept inside the root, never an overwrite."""
import errno
import json
import os
import pathlib

import pytest
import requests

from ipynetviz_jupyter import notebooks
from tests.jupyter_process import REPO, JupyterProcess

TOUR = (REPO / "notebooks" / "tour.ipynb").read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    (root / "class").mkdir()
    outside = tmp_path_factory.mktemp("outside")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    srv = JupyterProcess(root, tmp_path_factory.mktemp("work"), "server")
    srv.outside = outside
    yield srv
    srv.stop()


def _copy(srv, **body):
    return srv.post("/ipynetviz/notebooks/copy", body)


def test_the_catalogue_lists_every_bundled_notebook_tour_first(server):
    books = server.get("/ipynetviz/notebooks").json()["notebooks"]
    assert books[0] == {"name": "tour", "file": "tour.ipynb", "title": "A tour of ipynetviz"}
    assert sorted(b["file"] for b in books) == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    if (REPO / "notebooks" / "dashboard.ipynb").exists():
        assert books[1]["name"] == "dashboard"


def test_a_copy_lands_in_the_folder_and_is_never_overwritten(server):
    r = _copy(server, name="tour", folder="class")
    assert r.status_code == 201 and r.json() == {"path": "class/tour.ipynb"}
    target = server.root / "class" / "tour.ipynb"
    assert target.read_bytes() == TOUR
    target.write_text("my edits")
    again = _copy(server, name="tour", folder="class")
    assert again.status_code == 409
    assert again.json() == {"message": "tour.ipynb already exists in class; it was not overwritten",
                            "path": "class/tour.ipynb"}
    assert target.read_text() == "my edits"
    renamed = _copy(server, name="tour", folder="class", rename=True)
    assert renamed.status_code == 201 and renamed.json() == {"path": "class/tour-1.ipynb"}
    assert (server.root / "class" / "tour-1.ipynb").read_bytes() == TOUR and target.read_text() == "my edits"


def test_a_copy_into_the_root(server):
    r = _copy(server, name="units", folder="")
    assert r.status_code == 201 and r.json() == {"path": "units.ipynb"}
    assert (server.root / "units.ipynb").is_file()


@pytest.mark.parametrize("folder, status, words", [
    ("../", 400, "leaves the server's root"),
    ("class/../..", 400, "leaves the server's root"),
    ("/tmp", 400, "is absolute"),
    (str(pathlib.Path("/").resolve() / "etc"), 400, "is absolute"),
    ("escape", 400, "link out of the server's root"),
    ("class/../escape", 400, "leaves the server's root"),
    ("nowhere", 404, "does not exist"),
    (".hidden", 400, "hidden"),
    ("class\\..\\..", 400, "not a valid path"),
])
def test_unsafe_folders_are_refused(server, folder, status, words):
    r = _copy(server, name="tour", folder=folder)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]
    assert not list(server.outside.iterdir())


def test_unknown_notebooks_and_bad_bodies_are_refused(server):
    r = _copy(server, name="../../etc/passwd")
    assert r.status_code == 404 and "no bundled notebook" in r.json()["message"]
    r = requests.post(server.url + "/ipynetviz/notebooks/copy", headers=server.headers(), data="not json")
    assert r.status_code == 400 and '"name": "tour"' in r.json()["message"]


def test_requests_without_the_token_are_refused(server):
    for call in (lambda: requests.get(server.url + "/ipynetviz/notebooks"),
                 lambda: requests.post(server.url + "/ipynetviz/notebooks/copy", json={"name": "tour"})):
        assert call().status_code == 403
    r = requests.post(server.url + "/ipynetviz/notebooks/copy", json={"name": "tour"},
                      headers={"Authorization": "token wrong"})
    assert r.status_code == 403
    assert not (server.root / "tour.ipynb").exists()


def test_a_browser_session_needs_the_xsrf_token(server):
    s = requests.Session()  # logs in like a browser: cookie, no token header
    s.get(server.url + "/login")
    xsrf = s.cookies["_xsrf"]
    assert s.post(server.url + "/login", data={"password": server.token, "_xsrf": xsrf}).status_code == 200
    assert s.get(server.url + "/ipynetviz/notebooks").status_code == 200
    forged = s.post(server.url + "/ipynetviz/notebooks/copy", data=json.dumps({"name": "embeddings"}))
    assert forged.status_code == 403 and not (server.root / "embeddings.ipynb").exists()
    ok = s.post(server.url + "/ipynetviz/notebooks/copy", data=json.dumps({"name": "embeddings"}),
                headers={"X-XSRFToken": xsrf})
    assert ok.status_code == 201 and (server.root / "embeddings.ipynb").is_file()


# --- the copy itself, in process -----------------------------------------------------------------------------

def test_a_read_only_folder_gives_a_clear_message(tmp_path, monkeypatch):
    (tmp_path / "shared").mkdir()
    if os.geteuid() != 0:  # root writes anywhere: simulate what a read-only folder answers
        (tmp_path / "shared").chmod(0o555)
    else:
        real_open = os.open

        def read_only(path, flags, *a, **kw):
            if str(path).startswith(str(tmp_path)):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *a, **kw)
        monkeypatch.setattr(notebooks.os, "open", read_only)
    with pytest.raises(notebooks.CopyError) as err:
        notebooks.copy_notebook("tour", tmp_path, "shared")
    assert err.value.status == 403
    assert err.value.message == ("cannot create tour.ipynb in shared: the folder is read-only (Permission denied). "
                                 "Open a folder you can write to and try again.")
    assert list((tmp_path / "shared").iterdir()) == []


def test_a_dangling_symlink_with_the_name_is_not_written_through(tmp_path):
    victim = tmp_path / "outside.ipynb"
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "tour.ipynb").symlink_to(victim)
    with pytest.raises(notebooks.CopyError) as err:
        notebooks.copy_notebook("tour", tmp_path / "root", "")
    assert err.value.status == 409 and not victim.exists()


def test_the_installed_copy_is_found_without_a_checkout(monkeypatch, tmp_path):
    from jupyter_core.paths import jupyter_path
    monkeypatch.setattr(notebooks, "PACKAGE", tmp_path / "site-packages" / "ipynetviz_jupyter")
    installed = [pathlib.Path(p) for p in jupyter_path("ipynetviz", "notebooks")]
    assert notebooks.notebook_dirs() == [d for d in installed if d.is_dir()]
    assert [b.name for b in notebooks.catalogue()][0] == "tour"  # `pip install` put them in share/jupyter
