"""Pictures made by gradient ascent on the input: what a class or unit wants to see, what a layer remembers,
dreams, styles and fooling images.

Every optimiser works on pixels in [0, 1] (see :mod:`.space`); class and unit visualisation can instead move a
1/f-scaled Fourier spectrum with decorrelated colour (:mod:`.param`). Every optimiser runs under the inspector's eval
guard, leaves no hook and no parameter gradient behind, and returns a frozen result.
"""
from .adversarial import adversarial
from .compare import compare_regularizers, regularizer_sets
from .diversity import Diversity
from .dream import deep_dream
from .invert import invert
from .multifaceted import MultifacetedResult, multifaceted
from .objectives import L2, TV, LayerNorm, LogProb, Objective, TargetTerm, objective
from .param import Fourier, Parametrization, Pixels, colour_covariance
from .regularizers import (Blur, ClipContribution, ClipNorm, ImageOp, Jitter, high_frequency_fraction,
                           total_variation)
from .results import AdversarialResult, DreamResult, InversionResult, OptimizationResult, StyleResult
from .style import gram, style_transfer
from .transforms import CenterBias, Pad, RandomRotate, RandomScale, standard_transforms
from .visualize import default_regularizers, visualize

__all__ = [
    "visualize", "multifaceted", "compare_regularizers", "regularizer_sets", "default_regularizers", "invert",
    "deep_dream", "style_transfer", "gram", "adversarial",
    "Objective", "TargetTerm", "objective", "LayerNorm", "LogProb", "L2", "TV",
    "ImageOp", "Blur", "Jitter", "ClipNorm", "ClipContribution", "total_variation",
    "high_frequency_fraction", "Diversity",
    "Pad", "RandomScale", "RandomRotate", "CenterBias", "standard_transforms",
    "Parametrization", "Pixels", "Fourier", "colour_covariance",
    "OptimizationResult", "MultifacetedResult", "InversionResult", "StyleResult", "DreamResult", "AdversarialResult",
]
