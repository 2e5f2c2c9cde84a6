#!/usr/bin/env python3
"""The two quick-start commands, on a fresh Debian machine with only python3:

    python3 .ci/dev.py demo    # venv + install + serve a working copy of notebooks/ (tour.ipynb) in JupyterLab
    python3 .ci/dev.py test    # venv + test extras + Debian's Chromium if missing, then the whole suite

Standard library only: it runs before anything is installed. The venv lives in .venv and is reused;
packages are reinstalled only when pyproject.toml changes.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("IPYNETVIZ_VENV", ROOT / ".venv"))
PY = VENV / "bin" / "python"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def say(msg: str) -> None:
    print(f"[ipynetviz] {msg}", flush=True)


def run(cmd: list, **kw) -> None:
    say("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def apt_install(*packages: str) -> bool:
    if not IS_ROOT or shutil.which("apt-get") is None:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", *packages], env=env)
    return True


def ensure_venv() -> None:
    if PY.exists():
        return
    say(f"creating the virtual environment {VENV}")
    try:
        venv.EnvBuilder(with_pip=True).create(VENV)
    except Exception as err:  # Debian's python3 ships venv's pip only with python3-venv
        shutil.rmtree(VENV, ignore_errors=True)
        ver = f"python{sys.version_info.major}.{sys.version_info.minor}-venv"
        if apt_install("python3-venv", ver):
            venv.EnvBuilder(with_pip=True).create(VENV)
        else:
            sys.exit(f"cannot create a venv ({err}); install Debian's python3-venv: sudo apt-get install python3-venv")


def ensure_installed(extras: str) -> None:
    ensure_venv()
    spec = (ROOT / "pyproject.toml").read_bytes()
    stamp = VENV / f".ipynetviz-{extras or 'base'}-{hashlib.sha1(spec).hexdigest()[:12]}"
    if stamp.exists():
        return
    run([PY, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    run([PY, "-m", "pip", "install", "-q", "-e", target])
    stamp.touch()


def ensure_chromium() -> None:
    if os.environ.get("IPYNETVIZ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    say("Debian's Chromium is missing (the widget tests drive it)")
    if not apt_install("chromium"):
        sys.exit("install Debian's Chromium first: sudo apt-get install -y chromium  (then run this again)")


def free_port(preferred: int = 8888) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    return 0


DEMO_DIR = ROOT / ".demo"


def demo_copy() -> Path:
    """A working copy of ``notebooks/`` in .demo/ (git-ignored) for the demo server.

    JupyterLab autosaves outputs into the notebooks it serves; serving the tracked files dirtied the checkout.
    A copy is refreshed only where its tracked source changed since it was made, so a user's own edits in the
    copy survive the next ``demo`` unless the notebook itself was updated (then the copy is replaced, and said).
    """
    import json
    import shutil as sh
    dest = DEMO_DIR / "notebooks"
    dest.mkdir(parents=True, exist_ok=True)
    record_path = DEMO_DIR / "sources.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    for src in sorted((ROOT / "notebooks").glob("*.ipynb")):
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        copy = dest / src.name
        if not copy.exists() or record.get(src.name) != digest:
            if copy.exists():
                say(f"notebooks/{src.name} changed: its demo copy is replaced")
            sh.copyfile(src, copy)
            record[src.name] = digest
    record_path.write_text(json.dumps(record, indent=1))
    return dest


def server_command(port: int, token: str, root: Path) -> list[str]:
    """The JupyterLab server the demo runs (Lab, Notebook 7 and Voila as server extensions), quiet at start-up.

    The token goes to IdentityProvider.token. A "ServerApp.token config is deprecated" DeprecationWarning at start-up
    still came from notebook_shim (Notebook 7's server part, installed by the test extras), which reads every
    ServerApp attribute, the deprecated token included; voila's __init__ turns traitlets' DeprecationWarnings on
    ("default"), so an environment filter cannot hide it. Here, after voila's filter is in place, traitlets'
    DeprecationWarnings go back to Python's default (hidden): they are for the authors of the packages that raise
    them, not for someone opening the tour.
    """
    start = ("import sys, warnings; import voila; warnings.filterwarnings('ignore', category=DeprecationWarning, "
             "module='traitlets'); from jupyterlab.labapp import main; sys.exit(main())")
    cmd = [str(PY), "-c", start, "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if IS_ROOT:
        cmd.append("--allow-root")
    return cmd


def demo() -> None:
    ensure_installed("demo")
    demo_copy()
    port = free_port()
    token = secrets.token_hex(12)
    url = f"http://127.0.0.1:{port}/lab/tree/notebooks/tour.ipynb?token={token}"
    app = f"http://127.0.0.1:{port}/voila/render/notebooks/dashboard.ipynb?token={token}"
    say("serving the tour (offline, on the bundled teaching model); open this URL in a browser:")
    print(f"\n    {url}\n", flush=True)
    say("and the linked dashboard as a Voila app (for a projector, 1280 x 800):")
    print(f"\n    {app}\n", flush=True)
    cmd = server_command(port, token, DEMO_DIR)
    os.execv(str(PY), [str(c) for c in cmd])


def test(args: list[str]) -> None:
    ensure_installed("test")
    ensure_chromium()
    # PASSIVE: idle OpenMP threads sleep instead of spinning, which halved wall time on busy 2-core machines
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"), OMP_WAIT_POLICY="PASSIVE",
               PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    cmd = [PY, "-m", "pytest", "-q", "--timeout=900", "-p", "no:cacheprovider", *(args or ["tests"])]
    say("$ " + " ".join(str(c) for c in cmd))
    sys.exit(subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env).returncode)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("demo", "test", "install"):
        sys.exit(__doc__)
    if argv[0] == "demo":
        demo()
    elif argv[0] == "install":
        ensure_installed("test")
    else:
        test(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
