"""Jupyter views over the engine; each is thin: traits + layout + one call into methods + render."""
from __future__ import annotations

import importlib

from .base import ClickImage, ErrorArea, View, guarded

# widget name -> module; imported on first use so one missing optional part never breaks the others
_WIDGETS = {
    "NeuronPicker": "neuron_picker",
    "OcclusionExplorer": "occlusion_explorer",
    "FilterGrid": "filter_grid",
    "ActivationBrowser": "activation_browser",
    "PatchGallery": "gallery",
    "EmbeddingScatter": "embedding_scatter",
    "CorrespondenceMatrix": "correspondence_matrix",
    "ImageOptimizer": "image_optimizer",
    "TrainingLab": "training_lab",
    "CompressionLab": "compression_lab",
    "DynamicsMatrix": "dynamics_matrix",
    "TransferPlot": "transfer_plot",
    "Dashboard": "dashboard",
    "ScanView": "scan_view",
}


def __getattr__(name: str):
    if name in _WIDGETS:
        return getattr(importlib.import_module(f".{_WIDGETS[name]}", __name__), name)
    raise AttributeError(f"module 'ipynetviz.widgets' has no attribute {name!r}")


__all__ = ["ClickImage", "ErrorArea", "View", "guarded", *_WIDGETS]
