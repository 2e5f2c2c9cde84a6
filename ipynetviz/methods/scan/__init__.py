"""Data-set-wide scans with mergeable state: top patches of every unit and two-network moments in one pass.

``scan(insp, dataset, what=[TopPatches(layers, k=9), Correspondence(other, layer_a, layer_b)])`` runs
in-process by default or on Ray Data with ``engine="ray"`` (``pip install ipynetviz[scale]``); every shard's
state merges exactly into the one-pass answer. ``result.save(folder)`` writes a dataset-examples folder that
``open_examples`` (and the PatchGallery, ActivationBrowser and CorrespondenceMatrix widgets) read back
without rescanning.
"""
from .examples import DatasetExamples, ExamplesMismatchError, open_examples, save_examples
from .measures import Correspondence, TopPatches
from .result import ScanResult, model_fingerprint
from .run import scan

__all__ = ["scan", "TopPatches", "Correspondence", "ScanResult", "model_fingerprint", "save_examples", "open_examples",
           "DatasetExamples", "ExamplesMismatchError"]
