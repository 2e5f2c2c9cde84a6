"""Pure computations: ``(inspector, inputs, target) -> frozen result``; usable from scripts, no widgets.

Subpackages, each importable on its own:

* ``attribution``   gradient, saliency, guided backprop, deconvnet, occlusion
* ``units``         filters, top activating patches, nearest neighbours
* ``embedding``     PCA / t-SNE of a layer's codes
* ``correspondence`` unit correlation, matching, regression, CCA / SVCCA / PWCCA / CKA, compare
* ``optimize``      class visualization, inversion, DeepDream, style, adversarial images
* ``training``      the one training loop (``train`` -> ``Run``) shared by the zoo and the labs
* ``compression``   Deep Compression (prune, quantize, encode into a file) and DSD training
* ``dynamics``      learning dynamics by SVCCA over checkpoints, freeze training, transfer experiments

Every public name of a subpackage is also reachable here, e.g. ``ipynetviz.methods.saliency``; they are
resolved on first use so that importing one method does not import all the others.
"""
from __future__ import annotations

import importlib

SUBPACKAGES = ("attribution", "units", "embedding", "correspondence", "optimize", "training", "compression",
               "dynamics")


def __getattr__(name: str):
    if name in SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    for sub in SUBPACKAGES:
        mod = importlib.import_module(f".{sub}", __name__)
        if name in getattr(mod, "__all__", ()):
            value = getattr(mod, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module 'ipynetviz.methods' has no attribute {name!r}")


def __dir__():
    names = list(SUBPACKAGES)
    for sub in SUBPACKAGES:
        names += list(getattr(importlib.import_module(f".{sub}", __name__), "__all__", ()))
    return sorted(set(names))
