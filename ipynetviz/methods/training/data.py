"""Training data plumbing shared by every run: normalisation, label-preserving augmentation, tensors.

(The zoo's trainer uses these too; ``ipynetviz.zoo.train`` re-exports them under their old names.)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...engine.errors import DatasetError


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), in [0, 1] units.

    Computed exactly from each channel's 256-bin histogram: no float copy of the data set.

    Example:
        >>> channel_stats(np.array([[[[0, 255]]]], dtype=np.uint8))
        ([0.5], [0.5])
    """
    images = images.cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = np.bincount(np.ascontiguousarray(images[:, c]).ravel(), minlength=256).astype(np.float64)
        p = counts / counts.sum()
        mean = float(p @ levels)
        means.append(mean)
        stds.append(float(np.sqrt(p @ (levels - mean) ** 2)))
    return means, stds


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float model input ``(x / 255 - mean) / std`` on the images' device."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


class Normalise:
    """A picklable ``x -> normalise(x, mean, std)`` (the default transform of uint8 data)."""

    def __init__(self, mean, std):
        self.mean, self.std = list(mean), [max(float(s), 1e-8) for s in std]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return normalise(images, self.mean, self.std)

    def __repr__(self) -> str:
        return f"Normalise(mean={self.mean}, std={self.std})"


def augment(x: torch.Tensor, gen: torch.Generator, symmetries: bool = True, max_shift: int = 0) -> torch.Tensor:
    """Random flips and transposes (the 8 symmetries of a square) and shifts (black fill) per image."""
    n = len(x)
    if symmetries:
        flags = torch.randint(0, 8, (n,), generator=gen).to(x.device).view(-1, 1, 1, 1)
        x = torch.where((flags & 1).bool(), x.flip(-1), x)
        x = torch.where((flags & 2).bool(), x.flip(-2), x)
        x = torch.where((flags & 4).bool(), x.transpose(-1, -2), x)
    if max_shift > 0:
        h, w = x.shape[-2:]
        s = max_shift
        padded = nn.functional.pad(x, (s, s, s, s))
        dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=gen).to(x.device)
        rows = (torch.arange(h, device=x.device)[None] + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device)[None] + dx[:, None])[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    return x


class Augment:
    """A picklable ``(x, generator) -> augment(x, generator, symmetries, max_shift)``."""

    def __init__(self, symmetries: bool = True, max_shift: int = 0):
        self.symmetries, self.max_shift = bool(symmetries), int(max_shift)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return augment(x, gen, self.symmetries, self.max_shift)


def as_tensors(data, device, name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` arrays or tensors -> tensors on ``device`` (labels as int64 when integral)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise DatasetError(f"{name} must be a pair (images, labels), got {type(data).__name__}")
    x, y = (torch.as_tensor(np.asarray(v)) if not torch.is_tensor(v) else v for v in data)
    if len(x) == 0:
        raise DatasetError(f"{name} is empty; pass at least one image")
    if len(x) != len(y):
        raise DatasetError(f"{name} has {len(x)} images but {len(y)} labels; pass one label per image")
    if not y.is_floating_point():
        y = y.long()
    return x.to(device), y.to(device)


__all__ = ["channel_stats", "normalise", "Normalise", "augment", "Augment", "as_tensors"]
