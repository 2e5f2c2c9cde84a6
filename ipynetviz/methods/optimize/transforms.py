"""Transformation robustness and centre bias: picture operations that keep pictures natural.

Lucid (Olah et al. 2017) applies small random transformations to the picture before every forward pass --
padding, jitter, scaling, rotation -- so only patterns that survive them are reinforced; high-frequency
patterns that work at one exact alignment do not. Nguyen, Yosinski & Clune (2016, "Multifaceted feature
visualization") add a *centre bias*: the periphery is gradually calmed so one centred, whole object forms
instead of repeated fragments. Every operation here keeps the picture's size (the model sees the size it
was trained on) and draws its randomness from the run's seed: one draw per step for the whole batch.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from ipynetviz.engine.errors import SettingError

from .regularizers import ImageOp, Jitter, gaussian_blur

__all__ = ["Pad", "RandomScale", "RandomRotate", "CenterBias", "standard_transforms", "affine"]


def _number(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SettingError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def affine(pixels: torch.Tensor, scale: float = 1.0, degrees: float = 0.0) -> torch.Tensor:
    """Zoom by ``scale`` and rotate by ``degrees`` (counter-clockwise) about the centre, keeping the size.

    Bilinear sampling with pixel centres on the grid (``align_corners=False``); outside points reflect.
    """
    if scale == 1.0 and degrees == 0.0:
        return pixels
    n, _, h, w = pixels.shape
    a = math.radians(degrees)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    # affine_grid works in [-1, 1] per axis; correct for non-square pictures with the aspect ratio
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=pixels.dtype,
                         device=pixels.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class Pad(ImageOp):
    """Pad the picture by ``pixels`` with a constant colour and crop it back at a random place.

    The picture's borders then move around inside the model's view, so nothing can rely on them (Lucid's
    ``pad`` followed by a crop; here the crop restores the model's input size).

    Args:
        pixels: padding on each side (>= 0).
        value: the padding's pixel value in [0, 1] (0.5: grey).
    """

    def __init__(self, pixels: int = 4, value: float = 0.5):
        if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 0:
            raise SettingError(f"Pad pixels must be a non-negative integer, got {pixels!r}")
        value = _number(value, "Pad value")
        if not 0 <= value <= 1:
            raise SettingError(f"Pad value is a pixel value in [0, 1], got {value!r}")
        self.pixels, self.value = pixels, value

    def shift(self, pixels, rng):
        k = self.pixels
        if k == 0:
            return pixels
        h, w = pixels.shape[-2:]
        dy, dx = rng.randint(0, 2 * k), rng.randint(0, 2 * k)
        padded = F.pad(pixels, (k, k, k, k), value=self.value)
        return padded[..., dy:dy + h, dx:dx + w]

    def __repr__(self) -> str:
        return f"Pad(pixels={self.pixels}, value={self.value:g})"


class RandomScale(ImageOp):
    """Zoom the picture about its centre by a factor drawn uniformly from [low, high] at each step.

    Args:
        low, high: the range of factors, 0 < low <= high (Lucid: 0.9-1.1).
    """

    def __init__(self, low: float = 0.9, high: float = 1.1):
        low, high = _number(low, "RandomScale low"), _number(high, "RandomScale high")
        if low <= 0 or high < low:
            raise SettingError(f"RandomScale needs 0 < low <= high, got low={low:g}, high={high:g}; "
                               "e.g. RandomScale(0.9, 1.1)")
        self.low, self.high = low, high

    def shift(self, pixels, rng):
        return affine(pixels, scale=rng.uniform(self.low, self.high))

    def __repr__(self) -> str:
        return f"RandomScale({self.low:g}, {self.high:g})"


class RandomRotate(ImageOp):
    """Rotate the picture about its centre by an angle drawn uniformly from [-degrees, degrees] each step.

    Args:
        degrees: the largest rotation, >= 0 (Lucid: 10).
    """

    def __init__(self, degrees: float = 10.0):
        degrees = _number(degrees, "RandomRotate degrees")
        if degrees < 0:
            raise SettingError(f"RandomRotate degrees is a range [-d, d], so d must be >= 0, got {degrees:g}; "
                               f"use RandomRotate({abs(degrees):g})")
        self.degrees = degrees

    def shift(self, pixels, rng):
        return affine(pixels, degrees=rng.uniform(-self.degrees, self.degrees))

    def __repr__(self) -> str:
        return f"RandomRotate({self.degrees:g})"


class CenterBias(ImageOp):
    """Calm the periphery so one centred, whole object forms (after Nguyen, Yosinski & Clune 2016).

    Nguyen et al. optimise the whole image first and then let only a shrinking centre region change. Here,
    after every step, pixels outside a centred disc are pulled towards a blurred copy of themselves and
    towards grey; the disc's radius shrinks linearly from the whole picture (first third of the run) to
    ``final`` times the half-width (at the end).

    Args:
        final: the final radius as a share of the half-width, in (0, 1.5].
        strength: how far the periphery moves towards the calm picture each step, in (0, 1].
        sigma: the blur's standard deviation in pixels.
    """

    def __init__(self, final: float = 0.7, strength: float = 0.1, sigma: float = 1.0):
        final, strength, sigma = (_number(final, "CenterBias final"), _number(strength, "CenterBias strength"),
                                  _number(sigma, "CenterBias sigma"))
        if not (0 < final <= 1.5 and 0 < strength <= 1 and sigma > 0):
            raise SettingError(f"CenterBias needs 0 < final <= 1.5, 0 < strength <= 1 and sigma > 0, got "
                               f"final={final:g}, strength={strength:g}, sigma={sigma:g}")
        self.final, self.strength, self.sigma = final, strength, sigma
        self.steps = 1

    def begin(self, steps: int) -> None:
        self.steps = max(1, int(steps))

    def radius(self, step: int) -> float:
        """The disc's radius (share of the half-width) after step ``step`` (0-based)."""
        t = (step + 1) / self.steps
        start = math.sqrt(2.0)  # the corners: the whole picture
        if t <= 1 / 3:
            return start
        return start + (self.final - start) * (t - 1 / 3) / (2 / 3)

    def mask(self, h: int, w: int, step: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """(H, W) weight in [0, 1]: 1 inside the disc, falling to 0 over a tenth of the half-width."""
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h * 2 - 1
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w * 2 - 1
        r = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
        return ((self.radius(step) - r) / 0.1 + 1).clamp(0, 1)

    def apply_(self, pixels, grad, step, space):
        m = self.mask(pixels.shape[-2], pixels.shape[-1], step, pixels.device, pixels.dtype)
        if bool((m == 1).all()):
            return
        calm = 0.5 * gaussian_blur(pixels, self.sigma) + 0.25
        pulled = pixels + self.strength * (calm - pixels)
        pixels.copy_(m * pixels + (1 - m) * pulled)

    def __repr__(self) -> str:
        return f"CenterBias(final={self.final:g}, strength={self.strength:g})"


def standard_transforms(size: int = 64) -> list[ImageOp]:
    """Lucid's standard robustness set scaled to a picture of ``size`` pixels (Lucid's is for 224 px):
    pad, jitter, random scale 0.9-1.1, random rotation +-10 degrees, a small final jitter.

    Example:
        >>> standard_transforms(64)
        [Pad(pixels=3, value=0.5), Jitter(pixels=2), RandomScale(0.9, 1.1), RandomRotate(10), Jitter(pixels=1)]
    """
    s = max(1, int(size)) / 224
    return [Pad(max(1, round(12 * s))), Jitter(max(1, round(8 * s))), RandomScale(0.9, 1.1), RandomRotate(10.0),
            Jitter(max(1, round(4 * s)))]
