"""Frozen results of the attribution methods, with ``.to_numpy()`` and rendering helpers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...engine.errors import SettingError

__all__ = ["AttributionResult", "OcclusionResult"]

GRADIENT_METHODS = ("gradient", "saliency", "guided_backprop", "deconvnet")


@dataclass(frozen=True, eq=False)
class AttributionResult:
    """What a gradient-based method says about each input pixel, for each image.

    Attributes:
        method: "gradient", "saliency", "guided_backprop" or "deconvnet".
        attributions: float (N, C, H, W) on the CPU; for "saliency" (N, H, W) (max |gradient| over colours).
        scores: (N,) the target's score at the unmodified input (class logit or unit value).
        target: what was explained, e.g. "class 3" or "conv2[5]".
        images: the inputs as uint8 (N, H, W, 3) pictures, for overlays.

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> from ipynetviz.methods.attribution import saliency
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        >>> r = saliency(Inspector(m, input_size=(3, 8, 8), device="cpu"), torch.rand(2, 3, 8, 8), target=1)
        >>> r.to_numpy().shape, r.render(0).shape
        ((2, 8, 8), (8, 8, 3))
    """

    method: str
    attributions: torch.Tensor
    scores: torch.Tensor
    target: str
    images: np.ndarray

    def to_numpy(self) -> np.ndarray:
        """The attributions as a float32 NumPy array, (N, C, H, W) or (N, H, W) for saliency."""
        return self.attributions.numpy()

    def __len__(self) -> int:
        return int(self.attributions.shape[0])

    def heatmap(self, i: int = 0) -> np.ndarray:
        """One image's map as (H, W): saliency itself, else the maximum |attribution| over colour channels."""
        a = self.attributions[i]
        return (a if a.ndim == 2 else a.abs().amax(0)).numpy()

    def render(self, i: int = 0, kind: str | None = None, cmap: str = "inferno", alpha: float = 0.5) -> np.ndarray:
        """One image's map as a uint8 (H, W, 3) picture.

        Args:
            i: which image.
            kind: "rgb" (signed attributions as colours, 0 -> grey; the classic guided-backprop picture),
                "heat" (:meth:`heatmap` through ``cmap``) or "overlay" (the heat map blended over the image).
                Default: "heat" for saliency, "rgb" otherwise.
            cmap: colormap for "heat" and "overlay".
            alpha: heat-map opacity for "overlay".

        Returns:
            uint8 (H, W, 3).
        """
        from ...render import colorize, normalize, overlay, to_hwc_uint8

        kind = kind or ("heat" if self.method == "saliency" or self.attributions.ndim == 3 else "rgb")
        if kind == "rgb":
            a = self.attributions[i]
            if a.ndim == 2:
                a = a.unsqueeze(0)
            return to_hwc_uint8(normalize(a.numpy(), "symmetric").astype(np.float32))
        if kind == "heat":
            return colorize(self.heatmap(i), cmap, "minmax")
        if kind == "overlay":
            return overlay(self.images[i], self.heatmap(i), alpha=alpha, cmap=cmap)
        raise SettingError(f"unknown kind {kind!r}; use 'rgb', 'heat' or 'overlay'")


@dataclass(frozen=True, eq=False)
class OcclusionResult:
    """Target scores with a window occluding each cell of a grid, for each image (Zeiler & Fergus 2014).

    Attributes:
        scores: (N, gh, gw) the target's score with the window at grid cell (gy, gx), whose window covers rows
            ``gy * stride[0]`` .. ``+ window[0]`` and columns ``gx * stride[1]`` .. ``+ window[1]`` (clipped at
            the image border, as in Captum).
        probabilities: (N, gh, gw) softmax probability of the target class, or None for unit targets.
        baseline_score: (N,) the score of the unoccluded image; baseline_probability likewise (or None).
        window, stride: (height, width) of the window and of its steps, in pixels.
        image_size: (H, W).
        fill: how the window was filled ("zero", "mean", "blur", or the colour given).
        target: what was explained, e.g. "class 3"; target_classes: (N,) class per image (None for units).
        inputs: (N, C, H, W) the model input; fill_inputs: what the window shows at each pixel (same shape).
        images: (N, H, W, 3) uint8 pictures for overlays.
        complete: False for the coarse first pass of progressive mode.
        incremental: True when incremental inference computed it (False: plain batches).
    """

    scores: torch.Tensor
    probabilities: torch.Tensor | None
    baseline_score: torch.Tensor
    baseline_probability: torch.Tensor | None
    window: tuple
    stride: tuple
    image_size: tuple
    fill: object
    target: str
    target_classes: tuple | None
    inputs: torch.Tensor
    fill_inputs: torch.Tensor
    images: np.ndarray
    complete: bool = True
    incremental: bool = False

    @property
    def grid_shape(self) -> tuple[int, int]:
        return int(self.scores.shape[1]), int(self.scores.shape[2])

    def to_numpy(self) -> np.ndarray:
        """The score grid (N, gh, gw) as float32."""
        return self.scores.numpy()

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def box(self, gy: int, gx: int) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) pixel rectangle of grid cell (gy, gx)'s window, clipped to the image."""
        gh, gw = self.grid_shape
        if not (0 <= gy < gh and 0 <= gx < gw):
            raise IndexError(f"cell ({gy}, {gx}) is outside the {gh}x{gw} grid")
        y0, x0 = gy * self.stride[0], gx * self.stride[1]
        return (y0, min(y0 + self.window[0], self.image_size[0]), x0, min(x0 + self.window[1], self.image_size[1]))

    def cell_at(self, y: float, x: float) -> tuple[int, int]:
        """The grid cell whose window centre is nearest to pixel (y, x) (e.g. a click on the image)."""
        gh, gw = self.grid_shape
        gy = int(np.clip(round((y - self.window[0] / 2) / self.stride[0]), 0, gh - 1))
        gx = int(np.clip(round((x - self.window[1] / 2) / self.stride[1]), 0, gw - 1))
        return gy, gx

    def drop(self) -> np.ndarray:
        """(N, gh, gw) baseline score minus occluded score: how much each window mattered."""
        return (self.baseline_score.view(-1, 1, 1) - self.scores).numpy()

    def attribution(self) -> np.ndarray:
        """Per-pixel attribution (N, H, W): the score drop averaged over the windows covering each pixel.

        This is Captum's ``Occlusion`` definition; pixels no window covers (stride > window) get 0.
        """
        H, W = self.image_size
        gh, gw = self.grid_shape
        rows = np.zeros((gh, H))
        cols = np.zeros((gw, W))
        for g in range(gh):
            rows[g, g * self.stride[0]:g * self.stride[0] + self.window[0]] = 1
        for g in range(gw):
            cols[g, g * self.stride[1]:g * self.stride[1] + self.window[1]] = 1
        count = rows.sum(0)[:, None] * cols.sum(0)[None, :]
        total = np.einsum("gh,ngk,kw->nhw", rows, self.drop().astype(np.float64), cols)
        return (total / np.where(count > 0, count, 1)).astype(np.float32)

    def occluded(self, i: int, gy: int, gx: int) -> torch.Tensor:
        """The model input (1, C, H, W) of image ``i`` with the window at cell (gy, gx)."""
        y0, y1, x0, x1 = self.box(gy, gx)
        x = self.inputs[i:i + 1].clone()
        x[..., y0:y1, x0:x1] = self.fill_inputs[i:i + 1, :, y0:y1, x0:x1]
        return x

    def render(self, i: int = 0, kind: str = "attribution", overlay: bool = True, cmap: str = "inferno",
               alpha: float = 0.5) -> np.ndarray:
        """One image's map as uint8 (H, W, 3), over the image by default.

        Args:
            i: which image.
            kind: "attribution" (per pixel, :meth:`attribution`), "drop" (the grid of score drops) or
                "probability" (the grid of target probabilities).
            overlay: blend over the image; False gives the bare colour-mapped map at image size.
            cmap: colormap; alpha: heat-map opacity.
        """
        from ...render import colorize, overlay as blend, resize

        if kind == "attribution":
            heat = self.attribution()[i]
        elif kind == "drop":
            heat = self.drop()[i]
        elif kind == "probability":
            if self.probabilities is None:
                raise SettingError("no probabilities for a unit target; use kind='drop'")
            heat = self.probabilities[i].numpy()
        else:
            raise SettingError(f"unknown kind {kind!r}; use 'attribution', 'drop' or 'probability'")
        if overlay:
            return blend(self.images[i], heat, alpha=alpha, cmap=cmap)
        return resize(colorize(heat, cmap, "minmax"), self.image_size)
