"""Turning activations into (n_samples, n_units) float64 tensors, and the errors for bad ones.

Activations arrive as NumPy arrays or torch tensors, of shape (n_samples, n_units) for fully connected
layers or (N, C, H, W) for conv layers. Following Li et al. (2016), every spatial position of a conv map
is a sample, so (N, C, H, W) becomes (N*H*W, C).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ipynetviz.engine.checks import check_batch_size
from ipynetviz.engine.errors import InputError, IpynetvizError

__all__ = [
    "SampleCountError", "SpatialSizeError", "UndefinedSimilarityError", "flatten_positions", "align_spatial",
]


class SampleCountError(InputError):
    """The two sets of activations do not have the same samples (images or positions)."""


class SpatialSizeError(InputError):
    """Two conv layers with maps of different sizes, compared position by position."""


class UndefinedSimilarityError(IpynetvizError):
    """A similarity that the data cannot define (e.g. CCA with fewer samples than units)."""


def as_tensor(x, name: str = "activations") -> torch.Tensor:
    """Return `x` as a torch tensor without copying where possible (NumPy arrays share memory)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        arr = np.asarray(x)
        if arr.dtype == object:
            raise InputError(f"{name} must be a numeric array or tensor, got an object array")
        t = torch.from_numpy(arr)
    else:
        raise InputError(f"{name} must be a NumPy array or torch tensor of shape (n_samples, n_units) or "
                         f"(N, C, H, W), got {type(x).__name__}")
    if t.is_complex():
        raise InputError(f"{name} must be real-valued, got {t.dtype}")
    if t.ndim < 2:
        raise InputError(f"{name} must have shape (n_samples, n_units) or (N, C, H, W), got shape "
                         f"{tuple(t.shape)}; for a single unit use x.reshape(-1, 1)")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise InputError(f"{name} is empty (shape {tuple(t.shape)})")
    return t


def flatten_positions(acts):
    """Make every spatial position a sample: (N, C, H, W) -> (N*H*W, C), as Li et al. (2016) do.

    Args:
        acts: array or tensor of shape (N, C, *spatial); (N, C) passes through unchanged.

    Returns:
        The same kind of object (NumPy array or tensor) of shape (N*prod(spatial), C); row
        ``(n*H + y)*W + x`` holds image ``n`` at position ``(y, x)``.

    Example:
        >>> flatten_positions(np.zeros((2, 3, 4, 5))).shape
        (40, 3)
    """
    if acts.ndim <= 2:
        return acts
    c = acts.shape[1]
    if isinstance(acts, torch.Tensor):
        return acts.movedim(1, -1).reshape(-1, c)
    return np.moveaxis(np.asarray(acts), 1, -1).reshape(-1, c)


def spatial_shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape[2:])


def check_same_samples(a: torch.Tensor, b: torch.Tensor, what: str = "") -> None:
    """Raise :class:`SampleCountError` or :class:`SpatialSizeError` unless `a` and `b` share their samples."""
    if a.shape[0] != b.shape[0]:
        raise SampleCountError(
            f"A has {a.shape[0]} samples but B has {b.shape[0]}{what}: correspondence compares the two "
            "layers on the same inputs, so pass activations of both networks for the same images, in the same "
            "order")
    if a.ndim > 2 or b.ndim > 2:
        if a.ndim != b.ndim or spatial_shape(a) != spatial_shape(b):
            raise SpatialSizeError(
                f"A has maps of shape {tuple(a.shape[1:])} but B {tuple(b.shape[1:])}: positions are samples, "
                "so both maps must have the same spatial size. Align them first with "
                "align_spatial(a, b, mode='resize') (bilinear interpolation of the smaller map to the larger "
                "size) or mode='pool' (average pooling of the larger map to the smaller size)")


def align_spatial(a, b, mode: str = "resize"):
    """Bring two conv activations (N, C, H, W) to the same spatial size, so positions can be compared.

    Args:
        a, b: arrays or tensors of shape (N, Ca, Ha, Wa) and (N, Cb, Hb, Wb).
        mode: ``"resize"`` upsamples the smaller map to the larger size by bilinear interpolation
            (``align_corners=False``, so map corners stay aligned to the image corners); ``"pool"``
            reduces the larger map to the smaller size by adaptive average pooling. A map is "larger"
            when it has more positions.

    Returns:
        ``(a2, b2)`` as float tensors of the same spatial size (a map already at that size is returned
        unchanged).

    Example:
        >>> a2, b2 = align_spatial(np.ones((2, 3, 4, 4)), np.ones((2, 5, 8, 8)), mode="pool")
        >>> tuple(a2.shape), tuple(b2.shape)
        ((2, 3, 4, 4), (2, 5, 4, 4))
    """
    a, b = as_tensor(a, "A"), as_tensor(b, "B")
    if a.ndim != 4 or b.ndim != 4:
        raise InputError(f"align_spatial needs two (N, C, H, W) maps, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if mode not in ("resize", "pool"):
        raise InputError(f"mode must be 'resize' or 'pool', got {mode!r}")
    if spatial_shape(a) == spatial_shape(b):
        return a, b
    a_larger = a.shape[2] * a.shape[3] >= b.shape[2] * b.shape[3]
    big, small = (a, b) if a_larger else (b, a)
    if mode == "resize":
        small = F.interpolate(small.float() if not small.is_floating_point() else small,
                              size=spatial_shape(big), mode="bilinear", align_corners=False)
    else:
        big = F.adaptive_avg_pool2d(big.float() if not big.is_floating_point() else big, spatial_shape(small))
    return (big, small) if a_larger else (small, big)


def row_chunks(n: int, width: int, batch_size: int | None) -> Iterator[slice]:
    """Slices of at most `batch_size` leading rows (default: about 2**24 float64 values per chunk)."""
    batch_size = check_batch_size(batch_size, default=max(1, (1 << 24) // max(1, width)))
    for start in range(0, n, int(batch_size)):
        yield slice(start, min(n, start + int(batch_size)))


def positions_per_item(t: torch.Tensor) -> int:
    return int(np.prod(t.shape[2:])) if t.ndim > 2 else 1


def accumulation_device(t: torch.Tensor) -> torch.device:
    """The device of the data, unless it cannot hold float64 (Apple MPS), then the CPU."""
    return torch.device("cpu") if t.device.type == "mps" else t.device
