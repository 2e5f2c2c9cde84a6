"""Which pixels matter: gradient, saliency, guided backprop, deconvnet and occlusion.

Every method takes an :class:`~ipynetviz.engine.Inspector`, images and a target and returns a frozen result
with ``.to_numpy()`` and ``.render()``. Importing this package never imports a widget library.
"""
from .gradients import attribute, deconvnet, gradient, guided_backprop, saliency
from .occlusion import OcclusionCancelled, fill_values, grid_positions, occlusion
from .relu_rules import ReluOverride, relu_override
from .results import AttributionResult, OcclusionResult

__all__ = ["gradient", "saliency", "guided_backprop", "deconvnet", "attribute", "occlusion", "AttributionResult",
           "OcclusionResult", "OcclusionCancelled", "ReluOverride", "relu_override", "grid_positions",
           "fill_values"]
