"""How the optimised picture is parametrized: pixels, a 1/f-scaled Fourier spectrum, decorrelated colour.

Olah, Mordvintsev & Schubert, "Feature Visualization" (Distill 2017), show that *what* the optimiser moves
matters as much as the objective. Gradient ascent on pixels follows the network's gradient, which is rich in
high frequencies, so the picture fills with fine texture. Optimising a Fourier spectrum whose coefficient at
frequency f is scaled by 1/f^decay (natural images have roughly that spectrum) makes each Adam step change
low frequencies as much as high ones, which whitens the gradient's spectrum; optimising colour in a
decorrelated basis (the square root of the data's colour covariance) does the same for colour. Both end in
a sigmoid, so every picture is a valid image in [0, 1] without clamping.

A parametrization is a description (``Pixels()``, ``Fourier(decay=1)``); :meth:`Parametrization.bind` checks
it against the model and returns a :class:`BoundParam` with ``to_pixels`` (differentiable) and its exact
inverse ``from_pixels``, which lets any regularizer that edits pixels (blur, clipping, centre bias) and any
initial image (a cluster mean for multifaceted views) work with any parametrization.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ipynetviz.engine.errors import InputError, SettingError

from .space import PixelSpace

__all__ = ["Parametrization", "Pixels", "Fourier", "BoundParam", "colour_covariance", "colour_sqrt",
           "fourier_scale", "parametrization"]

_EPS = 1e-4  # pixels are kept in [eps, 1 - eps] before the logit, so the inverse of the sigmoid is finite


def colour_covariance(images: Any) -> np.ndarray:
    """The (C, C) covariance of pixel colours in [0, 1] over all pixels of ``images``.

    Args:
        images: uint8 (N, C, H, W) (or (N, H, W, C) with C <= 4 last) or float pixels in [0, 1].

    Returns:
        float64 (C, C).

    Example:
        >>> a = np.zeros((1, 2, 1, 2), dtype=np.uint8); a[0, :, 0, 1] = 255
        >>> colour_covariance(a).round(3).tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise InputError(f"colour_covariance needs images (N, C, H, W), got shape {a.shape}")
    if a.shape[1] > 4 and a.shape[-1] <= 4:
        a = a.transpose(0, 3, 1, 2)
    a = a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0)
    flat = a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)
    return np.atleast_2d(np.cov(flat))


def colour_sqrt(cov: Any, channels: int) -> np.ndarray:
    """The symmetric square root of a colour covariance, scaled so its largest column has norm 1.

    A step of size 1 along any decorrelated axis then changes no pixel colour by more than 1, whatever the
    data's contrast; the largest principal colour axis (usually brightness) gets the largest share.

    Raises:
        SettingError: the matrix is not (channels, channels), not symmetric or not positive definite.
    """
    m = np.asarray(cov, dtype=np.float64)
    if m.shape != (channels, channels):
        raise SettingError(f"the colour covariance is {m.shape} but the model takes {channels} channel(s); "
                           f"give a ({channels}, {channels}) matrix or images with {channels} channel(s)")
    if not np.all(np.isfinite(m)) or not np.allclose(m, m.T, rtol=1e-6, atol=1e-10):
        raise SettingError("the colour covariance must be a finite symmetric matrix; pass "
                           "colour_covariance(images) or (M + M.T) / 2")
    vals, vecs = np.linalg.eigh(m)
    if vals.min() <= 1e-12 * max(1.0, abs(vals.max())):
        raise SettingError(f"the colour covariance is not positive definite (smallest eigenvalue "
                           f"{vals.min():.3g}); use images with varied colours or add a small ridge, "
                           "cov + 1e-4 * np.eye(C)")
    root = (vecs * np.sqrt(vals)) @ vecs.T
    return root / np.linalg.norm(root, axis=0).max()


def fourier_scale(h: int, w: int, decay: float) -> np.ndarray:
    """Per-coefficient gain 1 / max(f, 1/max(h, w))^decay of a real 2-D spectrum (h, w // 2 + 1).

    f is the frequency in cycles per pixel; the floor keeps the DC gain finite (``max(h, w)^decay``).
    """
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    return 1.0 / np.maximum(f, 1.0 / max(h, w)) ** decay


class BoundParam:
    """A parametrization fitted to one run: ``to_pixels(theta)`` and its inverse ``from_pixels(pixels)``."""

    squashed = False  # True when pixels come out of a sigmoid (no clamping needed)

    def __init__(self, space: PixelSpace, shape: tuple):
        self.space, self.shape = space, tuple(shape)

    def to_pixels(self, theta: torch.Tensor) -> torch.Tensor:
        return theta

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.detach().clone()

    def clamp_(self, theta: torch.Tensor) -> torch.Tensor:
        return self.space.clamp_(theta)


class _Colour(BoundParam):
    """Shared colour handling: theta -> spatial (C, H, W) -> colour mix -> sigmoid (when bounded)."""

    squashed = True

    def __init__(self, space, shape, root: np.ndarray | None):
        super().__init__(space, shape)
        dt, dev = space.dtype, space.device
        self.mix = None if root is None else torch.tensor(root, dtype=dt, device=dev)
        self.unmix = None if root is None else torch.tensor(np.linalg.inv(root), dtype=dt, device=dev)
        self.squashed = space.bounded

    def _colour(self, spatial: torch.Tensor) -> torch.Tensor:
        if self.mix is not None:
            spatial = torch.einsum("cd,ndhw->nchw", self.mix, spatial)
        return torch.sigmoid(spatial) if self.squashed else spatial

    def _uncolour(self, pixels: torch.Tensor) -> torch.Tensor:
        z = torch.logit(pixels.clamp(_EPS, 1 - _EPS)) if self.squashed else pixels
        if self.unmix is not None:
            z = torch.einsum("cd,ndhw->nchw", self.unmix, z)
        return z

    def clamp_(self, theta):
        return theta


class _ColourPixels(_Colour):
    def to_pixels(self, theta):
        return self._colour(theta)

    def from_pixels(self, pixels):
        return self._uncolour(pixels.detach()).clone()


class _FourierBound(_Colour):
    def __init__(self, space, shape, root, decay: float):
        super().__init__(space, shape, root)
        h, w = shape[-2:]
        self.hw = (h, w)
        # 1/4 keeps a unit DC coefficient near a unit logit change for 32-64 px pictures (as in Lucid)
        self.gain = torch.tensor(fourier_scale(h, w, decay) / 4.0, dtype=space.dtype, device=space.device)

    def to_pixels(self, theta):
        spectrum = torch.view_as_complex(theta) * self.gain
        return self._colour(torch.fft.irfft2(spectrum, s=self.hw, norm="ortho"))

    def from_pixels(self, pixels):
        spatial = self._uncolour(pixels.detach())
        spectrum = torch.fft.rfft2(spatial, s=self.hw, norm="ortho") / self.gain
        return torch.view_as_real(spectrum).contiguous()


class Parametrization:
    """What gradient ascent moves; ``bind(space, shape)`` checks it against the model and fits it.

    Args:
        colour: ``None`` (optimise RGB directly), a (C, C) colour covariance, or images whose colour
            covariance is used (:func:`colour_covariance`); the colour is then optimised in the basis of the
            covariance's square root (Olah et al. 2017, "decorrelated colour").
    """

    name = "pixels"

    def __init__(self, colour: Any = None):
        self.colour = colour

    def _root(self, channels: int) -> np.ndarray | None:
        c = self.colour
        if c is None:
            return None
        a = c.detach().cpu().numpy() if isinstance(c, torch.Tensor) else np.asarray(c)
        cov = a if a.ndim == 2 else colour_covariance(a)
        return colour_sqrt(cov, channels)

    def _check(self, space: PixelSpace, shape) -> None:
        if len(shape) != 4 or shape[1] != space.mean.shape[1]:
            raise InputError(f"the {self.name} parametrization got shape {tuple(shape)} but the model takes "
                             f"{space.mean.shape[1]} channel(s); pass images with that many channels")

    def bind(self, space: PixelSpace, shape) -> BoundParam:
        """Fit to pictures of ``shape`` (N, C, H, W); raises a SettingError/InputError that names the fix."""
        self._check(space, shape)
        root = self._root(int(shape[1]))
        return BoundParam(space, shape) if root is None else _ColourPixels(space, shape, root)

    def describe(self) -> str:
        return self.name + ("" if self.colour is None else ", decorrelated colour")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({'' if self.colour is None else 'colour=...'})"


class Pixels(Parametrization):
    """Pixels in [0, 1], clamped after every step (Simonyan et al. 2014); with ``colour``, a sigmoid of
    decorrelated colour channels instead.

    Example:
        >>> from ipynetviz.engine import Inspector
        >>> insp = Inspector(torch.nn.Conv2d(3, 2, 1), input_size=(3, 4, 4), device="cpu")
        >>> b = Pixels().bind(PixelSpace(insp), (1, 3, 4, 4))
        >>> bool(torch.equal(b.to_pixels(torch.ones(1, 3, 4, 4)), torch.ones(1, 3, 4, 4)))
        True
    """


class Fourier(Parametrization):
    """A real 2-D Fourier spectrum per channel, coefficient at frequency f scaled by 1/f^decay, then the
    (optionally decorrelated) colour and a sigmoid (Olah et al. 2017).

    Args:
        decay: the amplitude's power-law exponent; 1 is natural images' spectrum (Lucid's choice), 0 is white
            (pixel-like). The default 2 was measured on shapes-cnn (128 steps, standard transforms; 10 classes
            with LogProb, 10 conv4 units): high-frequency power fraction of class / unit pictures 0.40 / - at
            decay 1, 0.062 / 0.315 at 1.5, 0.031 / 0.182 at 1.75, 0.023 / 0.108 at 2 (class probability
            >= 0.999, mean unit activation 53.5, 48.8, 41.7); Lucent's defaults gave 0.151 / 0.145 at class
            probability >= 0.71 and unit activation 15.7. Higher decay: smoother, blobbier pictures.
        colour: as in :class:`Parametrization`.
        size: optional (H, W) this parametrization is meant for; checked against the model's input size.

    Example:
        >>> from ipynetviz.engine import Inspector, Preprocess
        >>> insp = Inspector(torch.nn.Conv2d(3, 2, 1), transform=Preprocess([0.5] * 3, [0.5] * 3),
        ...                  input_size=(3, 8, 8), device="cpu")
        >>> b = Fourier().bind(PixelSpace(insp), (2, 3, 8, 8))
        >>> p = torch.rand(2, 3, 8, 8) * 0.9 + 0.05
        >>> bool(torch.allclose(b.to_pixels(b.from_pixels(p)), p, atol=1e-5))
        True
    """

    name = "fourier"

    def __init__(self, decay: float = 2.0, colour: Any = None, size: Any = None):
        super().__init__(colour)
        if not (isinstance(decay, (int, float)) and math.isfinite(decay) and 0 <= decay <= 4):
            raise SettingError(f"Fourier decay must be a number in [0, 4] (1 for natural images), got {decay!r}")
        self.decay = float(decay)
        self.size = None if size is None else tuple(int(s) for s in size)

    def bind(self, space, shape):
        self._check(space, shape)
        if self.size is not None and self.size != tuple(shape[-2:]):
            raise InputError(f"Fourier(size={self.size}) does not fit the model's input size {tuple(shape[-2:])}; "
                             f"use Fourier(size={tuple(shape[-2:])}) or leave size out")
        return _FourierBound(space, shape, self._root(int(shape[1])), self.decay)

    def describe(self) -> str:
        return f"fourier 1/f^{self.decay:g}" + ("" if self.colour is None else ", decorrelated colour")

    def __repr__(self) -> str:
        return f"Fourier(decay={self.decay:g}{'' if self.colour is None else ', colour=...'})"


def parametrization(value: Any) -> Parametrization:
    """``"pixels"``, ``"fourier"`` or a :class:`Parametrization` as a Parametrization."""
    if isinstance(value, Parametrization):
        return value
    if value == "pixels":
        return Pixels()
    if value == "fourier":
        return Fourier()
    raise SettingError(f"param must be 'pixels', 'fourier', Pixels(...) or Fourier(...), got {value!r}")
