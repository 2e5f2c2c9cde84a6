"""The bundled notebooks (tour, topics) and a safe copy of one into a folder under the server's root.

Safety rules, all checked here and not left to the caller:
- the target folder is a relative path made of plain names (no ``..``, no absolute path, no hidden folder unless
  the server allows hidden files), and its real path (symlinks resolved) stays inside the real root;
- an existing file is never overwritten: the file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so even a
  race or a dangling symlink with the same name makes the copy fail instead of writing through it.
"""
from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ORDER = ("tour", "dashboard")  # first in the launcher, in this order; the rest follow by name


class CopyError(Exception):
    """A copy that cannot be done; ``status`` is the HTTP status, the message says the fix."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


@dataclass(frozen=True)
class Notebook:
    name: str      # 'tour'
    path: Path     # the bundled file
    title: str     # the first heading of the notebook

    def to_json(self) -> dict:
        return {"name": self.name, "file": self.path.name, "title": self.title}


def notebook_dirs() -> list[Path]:
    """Where bundled notebooks live: a source checkout's ``notebooks/`` first (an editable install sees edits),
    then ``share/jupyter/ipynetviz/notebooks`` in every Jupyter data path (a wheel installs them there)."""
    dirs = []
    checkout = PACKAGE.parent / "notebooks"
    if (PACKAGE.parent / "pyproject.toml").is_file() and checkout.is_dir():
        dirs.append(checkout)
    try:
        from jupyter_core.paths import jupyter_path
        dirs += [Path(p) for p in jupyter_path("ipynetviz", "notebooks")]
    except ImportError:  # pragma: no cover - jupyter_core comes with every server
        pass
    return [d for d in dirs if d.is_dir()]


def _title(path: Path) -> str:
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        for cell in cells:
            if cell.get("cell_type") == "markdown":
                for line in "".join(cell.get("source", "")).splitlines():
                    if line.startswith("#"):
                        return line.lstrip("#").strip()
    except (OSError, ValueError):
        pass
    return path.stem.replace("_", " ")


def catalogue() -> list[Notebook]:
    """Every bundled notebook once (the first directory that has a name wins), the tour first."""
    found: dict[str, Path] = {}
    for d in notebook_dirs():
        for p in sorted(d.glob("*.ipynb")):
            found.setdefault(p.stem, p)
    names = sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return [Notebook(n, found[n], _title(found[n])) for n in names]


def _is_inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def target_folder(root: str | os.PathLike, folder: str, allow_hidden: bool = False) -> tuple[str, Path]:
    """Check ``folder`` (relative to ``root``, '/'-separated) and return (clean API path, real OS path)."""
    if not isinstance(folder, str) or "\x00" in folder or "\\" in folder:
        raise CopyError(400, f"folder {folder!r} is not a valid path")
    if folder.startswith("/") or os.path.isabs(folder):
        raise CopyError(400, f"folder {folder!r} is absolute; give a folder relative to the server's root")
    parts = [p for p in folder.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CopyError(400, f"folder {folder!r} leaves the server's root ('..' is not allowed)")
    if not allow_hidden and any(p.startswith(".") for p in parts):
        raise CopyError(400, f"folder {folder!r} is hidden; this server does not serve hidden files")
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *parts))
    if not _is_inside(real, real_root):
        raise CopyError(400, f"folder {folder!r} is a link out of the server's root; copy into a real folder")
    if not os.path.isdir(real):
        raise CopyError(404, f"folder {folder!r} does not exist")
    return "/".join(parts), Path(real)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        os.unlink(path)  # ours (O_EXCL): never leave half a notebook behind
        raise


_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def copy_notebook(name: str, root: str | os.PathLike, folder: str = "", rename: bool = False,
                  allow_hidden: bool = False) -> str:
    """Copy bundled notebook ``name`` into ``folder`` under ``root``; returns the new file's API path.

    Args:
        name: a bundled notebook's name ('tour'); see :func:`catalogue`.
        root: the server's root directory.
        folder: the target folder, relative to ``root`` ('' is the root itself).
        rename: when ``<name>.ipynb`` exists, write ``<name>-1.ipynb`` (then -2, ...) instead of refusing.

    Raises:
        CopyError: 404 unknown notebook or folder, 400 unsafe folder, 409 the file exists (``extra['path']``
        names it), 403 the folder is read-only.
    """
    books = {b.name: b for b in catalogue()}
    if name not in books:
        known = ", ".join(books) or "none found"
        raise CopyError(404, f"no bundled notebook {name!r} (bundled: {known})")
    api_folder, real_folder = target_folder(root, folder, allow_hidden)
    data = books[name].path.read_bytes()
    where = api_folder or "the root folder"
    for i in range(0, 1000 if rename else 1):
        filename = f"{name}.ipynb" if i == 0 else f"{name}-{i}.ipynb"
        api_path = f"{api_folder}/{filename}" if api_folder else filename
        try:
            _write_new(real_folder / filename, data)
            return api_path
        except FileExistsError:
            if not rename:
                raise CopyError(409, f"{filename} already exists in {where}; it was not overwritten",
                                path=api_path) from None
        except OSError as err:
            if err.errno in _READ_ONLY:
                raise CopyError(403, f"cannot create {filename} in {where}: the folder is read-only "
                                f"({err.strerror}). Open a folder you can write to and try again.") from None
            raise CopyError(500, f"cannot create {filename} in {where}: {err.strerror or err}") from None
    raise CopyError(409, f"{name}.ipynb and 999 numbered copies already exist in {where}")
