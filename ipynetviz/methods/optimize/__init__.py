"""Pictures made by gradient ascent on the input: what a class or unit wants to see, what a layer remembers,
dreams, styles and fooling images.

Every optimiser works on pixels in [0, 1] (see :mod:`.space` for why), runs under the inspector's eval
guard, leaves no hook and no parameter gradient behind, and returns a frozen result.
"""
from .adversarial import adversarial
from .dream import deep_dream
from .invert import invert
from .objectives import L2, TV, LayerNorm, LogProb, Objective, TargetTerm, objective
from .regularizers import Blur, ClipContribution, ClipNorm, ImageOp, Jitter, total_variation
from .results import AdversarialResult, DreamResult, InversionResult, OptimizationResult, StyleResult
from .style import gram, style_transfer
from .visualize import visualize

__all__ = [
    "visualize", "invert", "deep_dream", "style_transfer", "gram", "adversarial",
    "Objective", "TargetTerm", "objective", "LayerNorm", "LogProb", "L2", "TV",
    "ImageOp", "Blur", "Jitter", "ClipNorm", "ClipContribution", "total_variation",
    "OptimizationResult", "InversionResult", "StyleResult", "DreamResult", "AdversarialResult",
]
