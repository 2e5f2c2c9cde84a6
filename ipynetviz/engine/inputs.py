"""Turning what users hold (PIL images, uint8 arrays, float tensors) into model input.

Rules, in one place:

* float tensors / float arrays of shape (N, C, H, W) or (C, H, W) are model input, used unchanged;
* everything else is an *image* (PIL, a file path, uint8 HWC/CHW/NHWC/NCHW) and goes through the transform;
* a 3-D uint8 array is read by the model's channel count when it is known: for a 1-channel model (N, H, W) is N
  grayscale images, whatever N; otherwise (C, H, W) / (H, W, C) by where 1, 3 or 4 sits;
* NumPy views with negative strides (``img[::-1]``) are copied first;
* the default transform scales uint8 to [0, 1]; :class:`Preprocess` adds mean/std normalisation and an
  optional resize, and works on whole uint8 batches at once (no per-image Python loop).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError

try:  # Pillow is a hard dependency, but keep the import local in spirit
    from PIL import Image as _PILImage
except ImportError:  # pragma: no cover
    _PILImage = None


def is_pil(x: Any) -> bool:
    return _PILImage is not None and isinstance(x, _PILImage.Image)


def pil_to_uint8(img) -> torch.Tensor:
    """A PIL image as a uint8 tensor (C, H, W); the mode decides C (L -> 1, RGB -> 3, RGBA -> 4)."""
    if img.mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGB")
    arr = np.array(img)  # a writable copy: torch refuses read-only buffers
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _as_tensor(x: Any) -> torch.Tensor:
    """A tensor view of an array; NumPy views with negative strides (``img[::-1]``) are copied first."""
    if isinstance(x, torch.Tensor):
        return x
    a = np.asarray(x)
    if any(st < 0 for st in a.strides):
        a = np.ascontiguousarray(a)
    return torch.as_tensor(a)


def _load_path(p) -> torch.Tensor:
    """An image file as uint8 (C, H, W), read with Pillow."""
    import os
    if not os.path.isfile(p):
        raise InputError(f"no image file at {str(p)!r}; pass an existing path, a PIL image or an array")
    try:
        with _PILImage.open(p) as img:
            img.load()
            return pil_to_uint8(img)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {str(p)!r} as an image ({err}); pass a PNG/JPEG file or an array") from None


def _is_path(x: Any) -> bool:
    import os
    return isinstance(x, (str, os.PathLike))


def _channels_first(t: torch.Tensor, channels: int | None = None) -> torch.Tensor:
    """(N,H,W,C) or (H,W,C) uint8 -> channels first; a 3-D array for a 1-channel model is N grayscale images."""
    if t.ndim == 3 and channels == 1 and t.shape[-1] != 1:
        return t.unsqueeze(1)  # (N, H, W): N grayscale images (N = 1, 3 or 4 included)
    if t.ndim == 3:
        if t.shape[0] in (1, 3, 4):
            return t
        if t.shape[-1] in (1, 3, 4):
            return t.permute(2, 0, 1)
        return t.unsqueeze(0)  # a grayscale H x W x W? treat (H, W, W) as ambiguous below
    if t.ndim == 4:
        if t.shape[1] in (1, 3, 4):
            return t
        if t.shape[-1] in (1, 3, 4):
            return t.permute(0, 3, 1, 2)
    return t


def to_uint8_batch(images: Any, channels: int | None = None) -> torch.Tensor | list[torch.Tensor]:
    """Images of any accepted kind as a uint8 (N, C, H, W) tensor, or a list of (C, H, W) when sizes differ.

    ``channels``: the model's input channels when known; it decides how a 3-D array is read (see the module).
    """
    if is_pil(images) or _is_path(images):
        images = [images]
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise InputError("no images given (an empty list); pass at least one image")
        items = []
        for im in images:
            if is_pil(im):
                items.append(pil_to_uint8(im))
            elif _is_path(im):
                items.append(_load_path(im))
            else:
                t = _as_tensor(im)
                if t.dtype != torch.uint8:
                    raise InputError(
                        f"a list mixes image kinds (got an item of dtype {t.dtype}); pass PIL images or uint8 arrays, "
                        "or one float tensor (N, C, H, W) of model input")
                if t.ndim == 2:
                    t = t.unsqueeze(0)
                items.append(_channels_first(t))
        if all(i.shape == items[0].shape for i in items):
            return torch.stack(items)
        return items
    t = _as_tensor(images)
    if t.dtype != torch.uint8:
        raise InputError(f"expected uint8 images, got {t.dtype}")
    if t.ndim == 2:
        t = t.unsqueeze(0).unsqueeze(0)
    elif t.ndim == 3 and channels == 1 and t.shape[-1] != 1:
        t = _channels_first(t, channels)
    elif t.ndim == 3:
        t = _channels_first(t).unsqueeze(0)
    elif t.ndim == 4:
        t = _channels_first(t)
    else:
        raise InputError(f"images must have 2 to 4 dimensions (H,W / C,H,W / N,C,H,W), got shape {tuple(t.shape)}")
    return t


def is_model_input(images: Any) -> bool:
    """True for float tensors/arrays, which are taken as model input unchanged."""
    if isinstance(images, torch.Tensor):
        return images.is_floating_point()
    if isinstance(images, np.ndarray):
        return np.issubdtype(images.dtype, np.floating)
    return False


class Preprocess:
    """Batched transform: uint8 images (or PIL) -> normalised float model input.

    Args:
        mean: per-channel mean of the [0, 1]-scaled input.
        std: per-channel standard deviation.
        size: (H, W) to resize to (bilinear, antialiased), or None to keep the size.

    Example:
        >>> p = Preprocess(mean=[0.5], std=[0.25])
        >>> p(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)).flatten().tolist()
        [2.0, 2.0, 2.0, 2.0]
    """

    batched = True

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: tuple[int, int] | None = None):
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std):
            raise InputError(f"mean has {len(self.mean)} channels but std has {len(self.std)}")
        self.size = None if size is None else (int(size[0]), int(size[1]))

    @property
    def channels(self) -> int:
        return len(self.mean)

    def __repr__(self) -> str:
        return f"Preprocess(mean={self.mean}, std={self.std}, size={self.size})"

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return x

    def __call__(self, images: Any) -> torch.Tensor:
        batch = to_uint8_batch(images, self.channels)
        if isinstance(batch, list):
            if self.size is None:
                sizes = sorted({tuple(b.shape[-2:]) for b in batch})
                raise InputError(
                    f"images of mixed sizes {sizes[:4]}; resize them first or use a transform that resizes, "
                    "e.g. Preprocess(mean, std, size=(H, W))")
            batch = torch.cat([self._resize(b.unsqueeze(0).float()) for b in batch])
        else:
            batch = self._resize(batch.float())
        _check_channels(batch, self.channels)
        mean = torch.tensor(self.mean, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
        return (batch / 255.0 - mean) / std

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        """Model input back to uint8 images (N, C, H, W), clipped to [0, 255]."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return ((x * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)


def _check_channels(batch: torch.Tensor, expected: int | None) -> None:
    if expected is None:
        return
    c = batch.shape[1]
    if c == expected:
        return
    if c == 4 and expected == 3:
        raise InputError("got RGBA images (4 channels) for an RGB model; convert them: img.convert('RGB')")
    if c == 1 and expected == 3:
        raise InputError("got grayscale images (1 channel) for an RGB model (3 channels); convert them: "
                         "img.convert('RGB'), or x.repeat(1, 3, 1, 1) for tensors")
    if c == 3 and expected == 1:
        raise InputError("got RGB images (3 channels) for a grayscale model (1 channel); convert them: "
                         "img.convert('L'), or x.mean(1, keepdim=True) for tensors")
    raise InputError(f"images have {c} channels but the model expects {expected}")


def apply_transform(images: Any, transform: Callable | None, expected_channels: int | None) -> torch.Tensor:
    """Images (not float model input) -> float (N, C, H, W) through `transform`."""
    if transform is None:
        batch = to_uint8_batch(images, expected_channels)
        if isinstance(batch, list):
            sizes = sorted({tuple(b.shape[-2:]) for b in batch})
            raise InputError(f"images of mixed sizes {sizes[:4]}; resize them or give the Inspector a transform "
                             "that resizes, e.g. Preprocess(mean, std, size=(H, W))")
        _check_channels(batch, expected_channels)
        return batch.float() / 255.0
    if getattr(transform, "batched", False):
        return transform(images)
    # a per-image callable, torchvision style: PIL in, float (C, H, W) out
    if is_pil(images) or _is_path(images):
        images = [images]
    if isinstance(images, (list, tuple)):
        pils = [im if is_pil(im) else _to_pil(_load_path(im) if _is_path(im) else im) for im in images]
    else:
        batch = to_uint8_batch(images, expected_channels)
        pils = [_to_pil(b) for b in batch]
    if not pils:
        raise InputError("no images given; pass at least one image")
    outs = [transform(p) for p in pils]
    outs = [o if isinstance(o, torch.Tensor) else torch.as_tensor(np.asarray(o)) for o in outs]
    if any(o.shape != outs[0].shape for o in outs):
        raise InputError("the transform returned tensors of different shapes; add a Resize to it")
    return torch.stack(outs).float()


def _to_pil(t) -> Any:
    t = t if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t))
    t = _channels_first(t) if t.ndim == 3 else t.unsqueeze(0)
    arr = t.permute(1, 2, 0).cpu().numpy()
    if arr.shape[2] == 1:
        return _PILImage.fromarray(arr[:, :, 0], mode="L")
    return _PILImage.fromarray(arr)


def normalisation_of(transform: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) of a :class:`Preprocess`, a torchvision ``Normalize`` or a ``Compose`` holding one.

    ``None`` as transform means the model takes pixels in [0, 1]: ((0,), (1,)). An unknown transform gives None.
    """
    if transform is None:
        return (0.0,), (1.0,)
    mean, std = getattr(transform, "mean", None), getattr(transform, "std", None)
    if mean is not None and std is not None:
        return tuple(np.atleast_1d(np.asarray(mean, dtype=float))), tuple(np.atleast_1d(np.asarray(std, dtype=float)))
    for t in getattr(transform, "transforms", ()) or ():
        found = normalisation_of(t) if t is not None else None
        if found is not None and found != ((0.0,), (1.0,)):
            return found
    return None


def to_pictures(x: torch.Tensor, transform: Any = None, channels_last: bool = False) -> np.ndarray:
    """Model input (N, C, H, W) back to uint8 pictures: the one way every method and view does it.

    In order: the transform's own ``invert`` (e.g. :class:`Preprocess`); a known normalisation undone and clipped
    to [0, 1]; with no transform, input already in [0, 1] as is; otherwise each image stretched to its range.

    Args:
        x: model input.
        transform: the inspector's transform.
        channels_last: (N, H, W, 3) RGB for overlays (grey images repeated) instead of (N, C, H, W).

    Example:
        >>> to_pictures(torch.full((1, 3, 2, 2), 0.5)).shape, int(to_pictures(torch.full((1, 3, 2, 2), 0.5)).max())
        ((1, 3, 2, 2), 128)
    """
    x = x.detach()
    invert = getattr(transform, "invert", None)
    found = normalisation_of(transform)
    if callable(invert):
        u8 = invert(x)
    elif found is not None and (transform is not None or (float(x.min()) >= 0.0 and float(x.max()) <= 1.0)):
        c = x.shape[1]
        mean, std = (list(v) * c if len(v) == 1 else list(v) for v in found)
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        u8 = ((x * s + m).clamp(0, 1) * 255).round().to(torch.uint8)
    else:
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        u8 = ((x - lo) / (hi - lo).clamp_min(1e-12) * 255).round().to(torch.uint8)
    u8 = u8.cpu()
    if not channels_last:
        return u8.numpy()
    if u8.shape[1] == 1:
        u8 = u8.repeat(1, 3, 1, 1)
    return u8[:, :3].permute(0, 2, 3, 1).contiguous().numpy()
