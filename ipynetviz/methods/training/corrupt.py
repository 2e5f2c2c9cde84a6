"""Zhang et al.'s randomization test (ICLR 2017): the same images with corrupted labels or corrupted pixels.

Kinds (``CORRUPTIONS``), applied once before training so every epoch sees the same corrupted set:

* ``"true"``: the data unchanged.
* ``"partial"``: each label, with probability ``p``, replaced by a class drawn uniformly (it may draw the
  true class again, as in the paper; so about ``p * (1 - 1/K)`` labels change).
* ``"random"``: every label drawn uniformly (the same as ``"partial"`` with ``p = 1``).
* ``"shuffled_pixels"``: one random permutation of the pixel positions, the same for every image (train
  and test alike).
* ``"random_pixels"``: a different permutation for every image.
* ``"gaussian"``: every image replaced by Gaussian noise with the data set's per-channel mean and
  variance (float images in the data's units, not clipped, so the statistics hold exactly in expectation).

Pixel corruptions move whole pixels (all channels together), keep the labels, and are applied to the
test images too; label corruptions leave the test set alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...engine.checks import check_choice, check_probability

CORRUPTIONS = ("true", "partial", "random", "shuffled_pixels", "random_pixels", "gaussian")


@dataclass(frozen=True)
class Corrupted:
    """A corrupted copy of a data set.

    Attributes:
        images, labels: the corrupted data (same shapes as the input).
        kind, p: what was done.
        changed: per image, whether its label differs from the original one.
        permutation: the pixel permutation of ``"shuffled_pixels"`` (None otherwise).
        mean, std: per channel, the statistics the ``"gaussian"`` images are drawn with (None otherwise).
    """

    images: np.ndarray
    labels: np.ndarray
    kind: str
    p: float
    changed: np.ndarray
    permutation: np.ndarray | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def to_numpy(self) -> np.ndarray:
        """The corrupted images (their labels are ``.labels``)."""
        return self.images

    def apply_to_test(self, images: np.ndarray, seed: int = 1) -> np.ndarray:
        """The same pixel corruption on test images (label corruptions leave them as they are)."""
        rng = np.random.default_rng(seed)
        if self.kind == "shuffled_pixels":
            return _permute(images, self.permutation)
        if self.kind == "random_pixels":
            return _permute_each(images, rng)
        if self.kind == "gaussian":
            return _gaussian(images.shape, self.mean, self.std, rng)
        return images


def _permute(images: np.ndarray, perm: np.ndarray) -> np.ndarray:
    n, c = images.shape[:2]
    flat = images.reshape(n, c, -1)
    return flat[:, :, perm].reshape(images.shape)


def _permute_each(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n, c = images.shape[:2]
    flat = images.reshape(n, c, -1)
    perms = np.argsort(rng.random((n, flat.shape[-1])), axis=1)
    return np.take_along_axis(flat, perms[:, None, :], axis=2).reshape(images.shape)


def _gaussian(shape, mean: np.ndarray, std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(shape, dtype=np.float32)
    return (noise * std.reshape(1, -1, 1, 1) + mean.reshape(1, -1, 1, 1)).astype(np.float32)


def corrupt(images, labels, kind: str = "true", p: float = 1.0, num_classes: int | None = None,
            seed: int = 0) -> Corrupted:
    """A corrupted copy of ``(images, labels)`` as in Zhang et al.'s randomization test.

    Args:
        images: (N, C, H, W) array (uint8 or float).
        labels: (N,) integer classes.
        kind: one of :data:`CORRUPTIONS`.
        p: probability that a label is corrupted (``"partial"`` only; in [0, 1]).
        num_classes: classes to draw random labels from (default: ``labels.max() + 1``).
        seed: the corruption's random state (fixed, so all runs of a comparison see the same set).

    Returns:
        A :class:`Corrupted`.

    Example:
        >>> x = np.arange(2 * 1 * 2 * 2, dtype=np.uint8).reshape(2, 1, 2, 2)
        >>> c = corrupt(x, np.array([0, 1]), "shuffled_pixels", seed=0)
        >>> sorted(c.images[0].ravel().tolist()) == sorted(x[0].ravel().tolist())
        True
    """
    check_choice(kind, "corruption", CORRUPTIONS)
    p = check_probability(p, "p")
    images, labels = np.asarray(images), np.asarray(labels)
    k = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    rng = np.random.default_rng(seed)
    out_x, out_y, perm, mean, std = images, labels.copy(), None, None, None
    if kind in ("partial", "random"):
        chance = 1.0 if kind == "random" else p
        hit = rng.random(len(labels)) < chance
        out_y = np.where(hit, rng.integers(0, k, len(labels)), labels).astype(labels.dtype)
    elif kind == "shuffled_pixels":
        perm = rng.permutation(images.shape[2] * images.shape[3])
        out_x = _permute(images, perm)
    elif kind == "random_pixels":
        out_x = _permute_each(images, rng)
    elif kind == "gaussian":
        axes = (0, 2, 3)
        mean = images.mean(axis=axes, dtype=np.float64)
        std = images.std(axis=axes, dtype=np.float64)
        out_x = _gaussian(images.shape, mean, std, rng)
    return Corrupted(out_x, out_y, kind, p if kind == "partial" else float(kind == "random"),
                     out_y != labels, perm, mean, std)


__all__ = ["CORRUPTIONS", "Corrupted", "corrupt"]
