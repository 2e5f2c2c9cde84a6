"""Which pixels matter: gradient, saliency, guided backprop, deconvnet and occlusion.

Every method takes an :class:`~ipynetviz.engine.Inspector`, images and a target and returns a frozen result
with ``.to_numpy()`` and ``.render()``. Importing this package never imports a widget library.
"""
from .gradients import attribute, deconvnet, gradient, guided_backprop, saliency
from .occlusion import occlusion
from .results import AttributionResult, OcclusionResult

# the verbs and their results; helpers (grid_positions, fill_values, relu rules) stay in their modules
__all__ = ["gradient", "saliency", "guided_backprop", "deconvnet", "attribute", "occlusion", "AttributionResult",
           "OcclusionResult"]
