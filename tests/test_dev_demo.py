"""`.ci/dev.py demo` serves a git-ignored working copy of the notebooks, so Lab's autosave never dirties the checkout."""
import importlib.util
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_dev(root: pathlib.Path):
    spec = importlib.util.spec_from_file_location("ipynetviz_dev", REPO / ".ci" / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    dev.ROOT, dev.DEMO_DIR = root, root / ".demo"
    return dev


def test_demo_serves_a_copy_refreshed_only_when_its_source_changed(tmp_path):
    (tmp_path / "notebooks").mkdir()
    tour = tmp_path / "notebooks" / "tour.ipynb"
    tour.write_text('{"cells": []}')
    dev = load_dev(tmp_path)
    served = dev.demo_copy()
    assert served == tmp_path / ".demo" / "notebooks" and (served / "tour.ipynb").read_text() == '{"cells": []}'
    (served / "tour.ipynb").write_text("autosaved outputs")      # Lab writes into the copy, not the source
    dev.demo_copy()
    assert (served / "tour.ipynb").read_text() == "autosaved outputs" and tour.read_text() == '{"cells": []}'
    tour.write_text('{"cells": [1]}')                            # the tracked notebook was updated: copy refreshed
    dev.demo_copy()
    assert (served / "tour.ipynb").read_text() == '{"cells": [1]}'


def test_the_demo_copy_is_ignored_by_git():
    out = subprocess.run(["git", "check-ignore", ".demo/notebooks/tour.ipynb"], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, "the demo's working copy must be git-ignored"


def test_the_demo_server_starts_without_warnings(tmp_path):
    """What `demo` prints before the server runs: no DeprecationWarning (notebook_shim's "ServerApp.token config is
    deprecated", or traitlets' own, which voila turns on)."""
    import os
    import signal
    import sys
    import time

    dev = load_dev(tmp_path)
    cmd = dev.server_command(dev.free_port(0), "t0ken", tmp_path)
    cmd[0] = sys.executable
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines, deadline = [], time.time() + 180
    try:
        for line in proc.stdout:
            lines.append(line)
            if "is running at" in line or time.time() > deadline:
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    out = "".join(lines)
    assert "is running at" in out, out[-3000:]
    assert "Warning" not in out, out
