"""Frozen results of the picture optimisers: the picture (model input and uint8), histories and settings."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["OptimizationResult", "InversionResult", "StyleResult", "DreamResult", "AdversarialResult"]


class _Pictures:
    """What every optimiser's result shares: ``images`` (N, C, H, W) uint8 and ``interrupted``."""

    images: np.ndarray
    interrupted: bool

    def to_numpy(self) -> np.ndarray:
        """The pictures as uint8 (N, C, H, W)."""
        return self.images

    def render(self, i: int | None = None, scale: int = 1) -> np.ndarray:
        """Picture ``i`` (default: all of them in one row, 1 px gaps) as one uint8 (H, W, 3) image."""
        from ipynetviz.render import tile  # rendering is only needed for display

        images = self.images if i is None else self.images[i:i + 1]
        n = len(images)
        return tile(images, ncols=n, pad=0 if n == 1 else 1, scale=scale)[0]

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True, eq=False)
class OptimizationResult(_Pictures):
    """A picture made by gradient ascent (one per objective), with its history.

    Attributes:
        input: the picture as model input, float (N, C, H, W) on the CPU.
        images: the picture for display, uint8 (N, C, H, W) (through the transform's ``invert``).
        objective: (steps_done, N) value of the full objective (penalties included) at each step, measured
            on the picture the step started from (after jitter).
        terms: extra per-step series by name, each (steps_done, N).
        settings: the settings the run used (steps, lr, regularizers, init, seed, ...).
        interrupted: True when the run was stopped (cancel, KeyboardInterrupt) before ``settings["steps"]``.
        steps_done: steps actually taken.
        descriptions: one text per picture saying what it maximises.
    """

    input: torch.Tensor
    images: np.ndarray
    objective: np.ndarray
    terms: dict
    settings: dict
    interrupted: bool
    steps_done: int
    descriptions: tuple



@dataclass(frozen=True, eq=False)
class InversionResult(OptimizationResult):
    """A feature inversion: pictures whose code at ``layer`` matches the given images' code.

    Attributes:
        layer: the inverted layer.
        relative_error: (N,) final ``||phi(x) - phi(x0)|| / ||phi(x0)||`` at ``layer``, without jitter.
        original: the images that were inverted, uint8 (N, C, H, W).
    """

    layer: str
    relative_error: np.ndarray
    original: np.ndarray


@dataclass(frozen=True, eq=False)
class StyleResult(OptimizationResult):
    """A style transfer: the content of one picture drawn in the style (Gram matrices) of another.

    Attributes:
        content_loss, style_loss: final values (N,), unweighted.
    """

    content_loss: np.ndarray
    style_loss: np.ndarray


@dataclass(frozen=True, eq=False)
class DreamResult(_Pictures):
    """A DeepDream picture and the layer's activation size at every step of every octave.

    Attributes:
        input: model input (N, C, H, W) on the CPU; images: uint8 (N, C, H, W).
        layer: the layer whose activations were amplified.
        norms: (octaves, steps + 1, N) RMS activation of ``layer``: entry ``[o, s]`` before step ``s`` of
            octave ``o`` (``[o, steps]`` after the last step); NaN for steps not run.
        sizes: (H, W) of each octave.
        settings, interrupted, steps_done: as in :class:`OptimizationResult`.
    """

    input: torch.Tensor
    images: np.ndarray
    layer: str
    norms: np.ndarray
    sizes: tuple
    settings: dict
    interrupted: bool
    steps_done: int



@dataclass(frozen=True, eq=False)
class AdversarialResult(_Pictures):
    """Adversarial images (FGSM for one step, PGD for more) and how well they fooled the network.

    Perturbation sizes are in pixel units ([0, 1] per channel), whatever the model's normalisation.

    Attributes:
        input: adversarial model input (N, C, H, W) on the CPU; images: the same as uint8 (N, C, H, W).
        perturbation: adversarial minus clean pixels, float (N, C, H, W).
        linf, l2: (N,) size of the perturbation per image.
        labels: (N,) the classes the attack moved away from (given labels, else the clean predictions).
        target: (N,) target classes of a targeted attack, or None.
        clean_pred, adv_pred: (N,) predicted classes before and after; clean_prob, adv_prob: their softmax
            probabilities (N, K).
        fooled: (N,) bool: adv_pred == target (targeted) or adv_pred != labels (untargeted).
        fooled_at: (N,) first step after which the image fooled the network (1-based), -1 if never.
        settings: eps, norm, steps, step_size; steps_done, interrupted as in the other results.
    """

    input: torch.Tensor
    images: np.ndarray
    perturbation: torch.Tensor
    linf: np.ndarray
    l2: np.ndarray
    labels: np.ndarray
    target: np.ndarray | None
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    clean_prob: np.ndarray
    adv_prob: np.ndarray
    fooled: np.ndarray
    fooled_at: np.ndarray
    settings: dict
    interrupted: bool
    steps_done: int

    @property
    def success_rate(self) -> float:
        """Share of images that fooled the network."""
        return float(self.fooled.mean())

    @property
    def clean_accuracy(self) -> float:
        """Accuracy on the clean images against ``labels`` (1.0 when labels are the clean predictions)."""
        return float((self.clean_pred == self.labels).mean())

    @property
    def adversarial_accuracy(self) -> float:
        """Accuracy on the adversarial images against ``labels``."""
        return float((self.adv_pred == self.labels).mean())

