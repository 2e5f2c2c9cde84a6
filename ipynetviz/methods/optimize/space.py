"""Where the optimised picture lives: pixel space, settings checks and interruption.

Every optimiser in this package works on **pixels in [0, 1]** (the picture a person sees) and maps them to
model input with the inspector's normalisation, ``x = (p - mean) / std``. The lecture's regularizers (blur,
jitter, pixel clipping, total variation) and the adversarial budget (eps = 8/255) are all defined on pixels,
and Adam's step size ``lr`` is then in pixel units whatever the scale of the objective. Clamping to [0, 1]
after every step keeps the picture a valid image. Class and unit visualisation may instead move another
parametrization of the same pixels (a 1/f-scaled Fourier spectrum, decorrelated colour; :mod:`.param`),
which maps to pixels and back exactly, so every regularizer still acts on pixels.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from ipynetviz.engine.checks import check_positive_int
from ipynetviz.engine.errors import InputError, SettingError
from ipynetviz.engine.inputs import normalisation_of


def check_steps(steps: Any, name: str = "steps") -> int:
    """``steps`` as a positive int, or a :class:`SettingError` that names the fix."""
    return check_positive_int(steps, name)


class PixelSpace:
    """Maps pixels in [0, 1] to the inspector's model input and back, and model input to uint8 for display.

    With an unknown transform the model input itself is optimised, unclamped (``bounded`` is False).

    Args:
        insp: the inspector (its ``transform``, ``device`` and channel count are used).
        channels: channel count when the inspector cannot tell.

    Example:
        >>> from ipynetviz.engine import Inspector, Preprocess
        >>> m = torch.nn.Conv2d(3, 2, 1)
        >>> s = PixelSpace(Inspector(m, transform=Preprocess([0.5] * 3, [0.25] * 3), device="cpu"))
        >>> s.to_model(torch.ones(1, 3, 1, 1)).flatten().tolist()
        [2.0, 2.0, 2.0]
    """

    def __init__(self, insp, channels: int | None = None):
        self.insp = insp
        self.device = insp.device
        c = channels or insp.expected_channels or 3
        found = normalisation_of(insp.transform)
        self.bounded = found is not None
        mean, std = found if found is not None else ((0.0,), (1.0,))
        mean = list(mean) * c if len(mean) == 1 else list(mean)
        std = list(std) * c if len(std) == 1 else list(std)
        if len(mean) != c:
            raise InputError(f"the transform normalises {len(mean)} channels but the model takes {c}")
        p = next(insp.model.parameters(), None)
        self.dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        self.mean = torch.tensor(mean, dtype=self.dtype, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=self.dtype, device=self.device).view(1, -1, 1, 1)

    def to_model(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean) / self.std

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def clamp_(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.bounded:
            pixels.clamp_(0.0, 1.0)
        return pixels

    def neutral(self, shape: Sequence[int]) -> torch.Tensor:
        """Pixels whose model input is zero: the data set's mean colour."""
        return self.mean.expand(*shape).clone()

    def to_uint8(self, x: torch.Tensor) -> np.ndarray:
        """Model input -> uint8 (N, C, H, W) for display (:meth:`Inspector.pictures`, the one way)."""
        return self.insp.pictures(x)

    def initial(self, init: Any, n: int, size: Sequence[int] | None, seed: int) -> torch.Tensor:
        """Starting pixels (n, C, H, W): ``"zeros"`` (model input 0, the mean colour), ``"noise"`` or images."""
        if isinstance(init, str):
            if init not in ("zeros", "noise"):
                raise SettingError(f"init must be 'zeros', 'noise' or an image, got {init!r}")
            if size is None:
                raise SettingError("the inspector does not know the input size; create it with "
                                   "Inspector(model, input_size=(C, H, W)) or pass init=<an image>")
            shape = (n, self.mean.shape[1]) + tuple(size[-2:])
            pixels = self.neutral(shape)
            if init == "noise":
                g = torch.Generator().manual_seed(int(seed))
                noise = torch.randn(shape, generator=g, dtype=self.dtype).to(self.device)
                pixels = pixels + 0.1 * (noise if self.bounded else noise * self.std)
            return self.clamp_(pixels)
        x = self.insp.prepare(init)
        if x.shape[0] == 1 and n > 1:
            x = x.expand(n, -1, -1, -1)
        elif x.shape[0] != n:
            raise InputError(f"init has {x.shape[0]} images for {n} objectives; pass one image or {n}")
        return self.clamp_(self.to_pixels(x).clone())
