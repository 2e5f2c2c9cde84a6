"""Regularizers that act on the picture between steps (Yosinski et al. 2015), and a smoothness measure.

Yosinski et al., "Understanding Neural Networks Through Deep Visualization" (2015), keep gradient-ascent
pictures natural-looking with four operations applied around each step: L2 decay (here the :class:`L2`
penalty term), Gaussian blur every few steps, clipping of pixels with a small norm, and clipping of pixels
with a small contribution to the objective. Jitter (random translation before each forward pass, from
DeepDream and Lucid) discourages patterns that only work at one exact alignment. All operate on pixels in
[0, 1]; "clipping" a pixel sets it to the data set's mean colour (model input 0), as in the paper, where
images are mean-subtracted.
"""
from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F

from ipynetviz.engine.errors import SettingError

from .space import PixelSpace


class ImageOp:
    """A regularizer applied to the picture: ``shift`` before the forward pass, ``apply_`` after the step.

    ``begin(steps)`` is called once before a run of ``steps`` steps (for schedules such as a centre bias).
    """

    def begin(self, steps: int) -> None:
        return None

    def edits_pixels(self) -> bool:
        """True when :meth:`apply_` may change the picture after a step."""
        return type(self).apply_ is not ImageOp.apply_

    def shift(self, pixels: torch.Tensor, rng: random.Random) -> torch.Tensor:
        return pixels

    def apply_(self, pixels: torch.Tensor, grad: torch.Tensor, step: int, space: PixelSpace) -> None:
        return None


def gaussian_kernel(sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """A normalised 1-D Gaussian cut at 3 sigma (radius ``int(3 sigma + 0.5)``, SciPy's rule)."""
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflected borders (the mean colour is preserved)."""
    if sigma <= 0:
        return images
    k = gaussian_kernel(sigma, images.device, images.dtype)
    r = (k.numel() - 1) // 2
    c = images.shape[1]
    h, w = images.shape[-2:]
    mode = "reflect" if r < min(h, w) else "replicate"
    x = F.pad(images, (r, r, 0, 0), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode=mode)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class Blur(ImageOp):
    """Gaussian blur of the picture every ``every`` steps (Yosinski et al.: sigma 0.3-1, every 1-8 steps).

    Args:
        sigma: standard deviation in pixels.
        every: blur after every ``every``-th step.
    """

    def __init__(self, sigma: float = 0.5, every: int = 4):
        if not (math.isfinite(float(sigma)) and float(sigma) > 0):
            raise SettingError(f"Blur sigma must be > 0 pixels, got {sigma!r}")
        if isinstance(every, bool) or int(every) < 1:
            raise SettingError(f"Blur every must be a positive integer, got {every!r}")
        self.sigma = float(sigma)
        self.every = int(every)

    def apply_(self, pixels, grad, step, space):
        if (step + 1) % self.every == 0:
            pixels.copy_(gaussian_blur(pixels, self.sigma))

    def __repr__(self) -> str:
        return f"Blur(sigma={self.sigma:g}, every={self.every})"


class Jitter(ImageOp):
    """Shift the picture by a random offset of up to ``pixels`` (wrapping around) before each forward pass.

    One offset per step for the whole batch, drawn from the run's seed.
    """

    def __init__(self, pixels: int = 2):
        if isinstance(pixels, bool) or int(pixels) < 0:
            raise SettingError(f"Jitter pixels must be a non-negative integer, got {pixels!r}")
        self.pixels = int(pixels)

    def shift(self, pixels, rng):
        if self.pixels == 0:
            return pixels
        dy, dx = rng.randint(-self.pixels, self.pixels), rng.randint(-self.pixels, self.pixels)
        return torch.roll(pixels, shifts=(dy, dx), dims=(-2, -1))

    def __repr__(self) -> str:
        return f"Jitter(pixels={self.pixels})"


def _check_pct(pct) -> float:
    p = float(pct)
    if not (0 <= p < 100):
        raise SettingError(f"the clipping percentile must be in [0, 100), got {pct!r}")
    return p


def _clip_below_(pixels: torch.Tensor, measure: torch.Tensor, pct: float, space: PixelSpace) -> None:
    """Set pixels whose ``measure`` (N, H, W) is below each image's ``pct`` percentile to the mean colour."""
    if pct <= 0:
        return
    flat = measure.reshape(measure.shape[0], -1)
    thresh = torch.quantile(flat.float(), pct / 100.0, dim=1).to(measure.dtype).view(-1, 1, 1)
    mask = (measure < thresh).unsqueeze(1)
    pixels.copy_(torch.where(mask, space.mean.expand_as(pixels), pixels))


class ClipNorm(ImageOp):
    """Set pixels with a small norm (over channels, of the model input) to the mean colour after each step.

    Args:
        pct: percentile of the per-pixel norms below which pixels are cleared (Yosinski et al.: 0-50).
    """

    def __init__(self, pct: float = 10.0):
        self.pct = _check_pct(pct)

    def apply_(self, pixels, grad, step, space):
        _clip_below_(pixels, space.to_model(pixels).norm(dim=1), self.pct, space)

    def __repr__(self) -> str:
        return f"ClipNorm(pct={self.pct:g})"


class ClipContribution(ImageOp):
    """Set pixels with a small contribution to the objective to the mean colour after each step.

    The contribution of a pixel is ``|sum_c x_c * d objective / d x_c|``: the first-order change of the
    objective if that pixel were set to the mean (model input 0). Since ``x = (p - mean) / std`` this equals
    ``|sum_c (p_c - mean_c) * d objective / d p_c|`` with the pixel gradient the optimiser already has.

    Args:
        pct: percentile of the contributions below which pixels are cleared.
    """

    def __init__(self, pct: float = 10.0):
        self.pct = _check_pct(pct)

    def apply_(self, pixels, grad, step, space):
        if grad is not None:
            _clip_below_(pixels, ((pixels - space.mean) * grad).sum(1).abs(), self.pct, space)

    def __repr__(self) -> str:
        return f"ClipContribution(pct={self.pct:g})"


def total_variation(images) -> np.ndarray:
    """Mean absolute difference between neighbouring pixels, per image, in [0, 1] pixel units.

    A smoothness measure for reports and tests (not the penalty :class:`TV` optimises): 0 for a flat
    picture, about 0.5 for independent uniform noise.

    Args:
        images: uint8 (N, C, H, W) or float pixels in [0, 1].

    Returns:
        float64 array (N,).

    Example:
        >>> total_variation(np.array([[[[0, 255], [0, 255]]]], dtype=np.uint8)).tolist()
        [0.5]
    """
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    a = a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0)
    if a.ndim == 3:
        a = a[None]
    dx = np.abs(np.diff(a, axis=-1)).reshape(len(a), -1)
    dy = np.abs(np.diff(a, axis=-2)).reshape(len(a), -1)
    return (dx.sum(1) + dy.sum(1)) / (dx.shape[1] + dy.shape[1])


def high_frequency_fraction(images) -> np.ndarray:
    """Share of a picture's spectral power above half the Nyquist frequency, per image.

    The grey picture (mean over channels, its mean removed) is Fourier transformed; the power at radial
    frequencies above 0.25 cycles per pixel is divided by the total. Natural pictures put little power there
    (the shapes test images: about 0.07); gradient-ascent noise puts a lot (0.3-0.5). Used to compare
    parametrizations and regularizers (issue 13, ``benchmarks/bench_feature_vis.py``).

    Args:
        images: uint8 (N, C, H, W) or float pixels.

    Returns:
        float64 array (N,).

    Example:
        >>> checker = np.indices((8, 8)).sum(0) % 2 * 255
        >>> high_frequency_fraction(checker[None, None].astype(np.uint8)).round(3).tolist()
        [1.0]
    """
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    grey = a.astype(np.float64).mean(1)
    grey = grey - grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    h, w = grey.shape[-2:]
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2)
    return power[:, f > 0.25].sum(1) / np.maximum(power.reshape(len(grey), -1).sum(1), 1e-12)


def split_regularizers(regularizers) -> tuple[list, list[ImageOp]]:
    """Separate penalty objectives (subtracted from the objective) from picture operations."""
    from .objectives import Objective

    if regularizers is None:
        return [], []
    if isinstance(regularizers, (Objective, ImageOp)):
        regularizers = [regularizers]
    penalties, ops = [], []
    for r in regularizers:
        if isinstance(r, ImageOp):
            ops.append(r)
        elif isinstance(r, Objective):
            penalties.append(r)
        else:
            raise SettingError(f"unknown regularizer {r!r}; use L2(), TV(), Blur(), Jitter(), ClipNorm() or "
                               "ClipContribution() (scaled, e.g. 1e-4 * L2())")
    return penalties, ops
