"""A folder of image files as a data set: ImageFolder layout (one subfolder per class) or a flat folder.

Files are listed once, sorted, so an image's index (its id in every scan result) depends only on the folder's
content. Decoding happens when a batch is read; a file that cannot be decoded (corrupt, truncated, not an image)
is skipped, counted and listed with the reason, and never stops a scan.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("cat", "dog"):
    ...     (root / name).mkdir()
    ...     Image.new("RGB", (8, 8), (200, 0, 0)).save(root / name / "a.png")
    >>> _ = (root / "dog" / "notes.txt").write_text("hello")
    >>> data = ImageFolder(root)
    >>> len(data), data.class_names, data.labels.tolist()
    (3, ['cat', 'dog'], [0, 1, 1])
    >>> images, ok, skipped = data.read([0, 2])
    >>> images.shape, ok, skipped
    ((1, 8, 8, 3), [0], [('dog/notes.txt', 'not an image (.txt)')])
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DatasetError

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS"]

# what Pillow decodes that photo collections hold; other files are listed and skipped as "not an image"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _visible(name: str) -> bool:
    return not name.startswith(".")


class ImageFolder:
    """Images in a folder, read lazily in batches; unreadable files are skipped and listed.

    Args:
        root: the folder. With subfolders (and no images at the top) it is an ImageFolder layout: each
            subfolder is a class, sorted by name, searched recursively. Otherwise a flat folder: its files,
            without labels.
        mode: PIL mode the images are converted to: "RGB" (default) or "L" for one-channel models.

    Attributes:
        root, paths (relative, sorted), labels ((N,) int64 or None), class_names (or None).
    """

    def __init__(self, root, mode: str = "RGB"):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"{str(root)!r} is not a folder; pass the folder that holds the images (or one "
                               "subfolder per class)")
        if mode not in ("RGB", "L"):
            raise DatasetError(f"mode must be 'RGB' or 'L', got {mode!r}")
        self.mode = mode
        top = sorted((e for e in os.scandir(self.root) if _visible(e.name)), key=lambda e: e.name)
        subdirs = [e for e in top if e.is_dir()]
        top_images = [e for e in top if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)]
        paths: list[str] = []
        labels: list[int] = []
        if subdirs and not top_images:
            self.class_names = [d.name for d in subdirs]
            for label, d in enumerate(subdirs):
                for dirpath, dirnames, filenames in os.walk(d.path):
                    dirnames[:] = sorted(n for n in dirnames if _visible(n))
                    for name in sorted(filenames):
                        if _visible(name):
                            paths.append(os.path.relpath(os.path.join(dirpath, name), self.root))
                            labels.append(label)
            self.labels = np.asarray(labels, np.int64)
        else:
            self.class_names = None
            paths = [e.name for e in top if e.is_file()]
            self.labels = None
        self.paths = [p.replace(os.sep, "/") for p in paths]
        if not self.paths:
            raise DatasetError(f"the folder {str(self.root)!r} holds no files; put images (JPEG/PNG) in it, or one "
                               "subfolder of images per class")
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        layout = f"{len(self.class_names)} classes" if self.class_names else "flat"
        return f"ImageFolder({str(self.root)!r}, files={len(self)}, {layout})"

    def fingerprint(self) -> str:
        """A hash of the listing (relative paths, sizes, modification times): names this data set's version."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            for p in self.paths:
                st = os.stat(self.root / p)
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def read_one(self, index: int) -> np.ndarray:
        """Decode image ``index`` as uint8 (H, W, C); raises ``OSError``/``ValueError`` when it cannot be read."""
        from PIL import Image

        path = self.paths[index]
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            raise ValueError(f"not an image ({Path(path).suffix or 'no extension'})")
        with Image.open(self.root / path) as im:
            im = im.convert(self.mode)
            arr = np.array(im, dtype=np.uint8)  # a writable copy (torch warns on read-only arrays)
        return arr[:, :, None] if arr.ndim == 2 else arr

    def read(self, indices: Sequence[int]) -> tuple[np.ndarray | list, list[int], list[tuple[str, str]]]:
        """Decode several images.

        Returns:
            (images, ok, skipped): a uint8 (n, H, W, C) array (a list of arrays when sizes differ) of the
            readable images, their indices, and ``(relative path, reason)`` for each file skipped.
        """
        images, ok, skipped = [], [], []
        for i in indices:
            i = int(i)
            try:
                images.append(self.read_one(i))
                ok.append(i)
            except Exception as err:  # noqa: BLE001  (PIL raises many kinds for corrupt or truncated data)
                skipped.append((self.paths[i], str(err) or type(err).__name__))
        if images and all(im.shape == images[0].shape for im in images):
            return np.stack(images), ok, skipped
        return images, ok, skipped
