"""ipynetviz: Jupyter widgets over one inspection engine for seeing inside convolutional networks.

The engine and methods import without any widget library; widgets load on first use::

    import ipynetviz as nv
    insp = nv.zoo.load("shapes-cnn")
    nv.NeuronPicker(insp, images)      # imports ipywidgets only now
"""
from __future__ import annotations

import importlib as _importlib

from .engine import (Class, ImageSet, Inspector, IpynetvizError, LayerNotFoundError, Preprocess, Selection, Unit,
                     as_imageset)
from .engine import targets as _targets

# target arithmetic (0.5 * Class(3) + Unit("conv3", 5)) makes an optimisation Objective, imported on first use
_targets.set_objective_loader(lambda: _importlib.import_module("ipynetviz.methods.optimize.objectives").objective)

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily so `import ipynetviz` stays light
_LAZY = {
    "zoo": "ipynetviz.zoo",
    "methods": "ipynetviz.methods",
    "render": "ipynetviz.render",
    "widgets": "ipynetviz.widgets",
}
_LAZY_WIDGETS = ("NeuronPicker", "OcclusionExplorer", "FilterGrid", "ActivationBrowser", "PatchGallery",
                 "EmbeddingScatter", "CorrespondenceMatrix", "ImageOptimizer", "TrainingLab",
                 "CompressionLab", "DynamicsMatrix", "TransferPlot", "Dashboard")
_LAZY_METHODS = ("compare", "train")


def __getattr__(name: str):
    if name in _LAZY:
        return _importlib.import_module(_LAZY[name])
    if name in _LAZY_WIDGETS:
        return getattr(_importlib.import_module("ipynetviz.widgets"), name)
    if name in _LAZY_METHODS:
        return getattr(_importlib.import_module("ipynetviz.methods"), name)
    raise AttributeError(f"module 'ipynetviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names only (``dir(ipynetviz)``), lazy ones included; helpers stay out."""
    return sorted(__all__ + ["__version__"])


__all__ = ["Inspector", "Selection", "Class", "Unit", "Preprocess", "ImageSet", "as_imageset", "IpynetvizError",
           "LayerNotFoundError", "zoo", "methods", "render", "widgets", *_LAZY_WIDGETS, *_LAZY_METHODS]
