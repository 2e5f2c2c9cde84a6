"""Compression's public calls for the hook-removal suite (registered by tests/hook_cases.py)."""
from __future__ import annotations

import numpy as np

from ipynetviz.methods import compression as C
from tests.hook_cases import case

LABELS = np.array([0, 1, 2])


@case("compression.prune")
def _prune(insp, images, target, layer):
    C.prune(insp, {layer: 0.5})


@case("compression.prune_global")
def _prune_global(insp, images, target, layer):
    C.prune(insp, 0.5, scope="global", layers=[layer])


@case("compression.sensitivity")
def _sensitivity(insp, images, target, layer):
    C.sensitivity(insp, (images, LABELS), layers=[layer], sparsities=[0.0, 0.5])


@case("compression.quantize")
def _quantize(insp, images, target, layer):
    C.quantize(insp, {layer: 3})


@case("compression.encode")
def _encode(insp, images, target, layer):
    C.to_bytes(C.encode(insp, layers=[layer]))


@case("compression.probe")
def _probe(insp, images, target, layer):
    w = insp.module(layer).weight.detach()
    C.AccuracyProbe(insp, images, LABELS).accuracy({layer: 0 * w})
