"""Every public call of the engine and the methods, for the hook-removal suite.

Each case is ``fn(insp, images, target, layer)``; later issues add theirs with ``@case("name")``.
``target`` and ``layer`` are valid in the normal run and bad in the bad-target run.
"""
from __future__ import annotations

from typing import Callable

import torch

CASES: dict[str, Callable] = {}


def case(name: str):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


@case("activations")
def _activations(insp, images, target, layer):
    insp.activations(images, [layer])


@case("iter_batches")
def _iter(insp, images, target, layer):
    for _ in insp.iter_batches(images, [layer], batch_size=2, logits=True):
        pass


@case("forward")
def _forward(insp, images, target, layer):
    insp.module(layer)
    insp.forward(images)


@case("predict")
def _predict(insp, images, target, layer):
    insp.module(layer)
    insp.predict(images)


@case("gradient_of")
def _gradient(insp, images, target, layer):
    insp.gradient_of(insp.prepare(images), target)


@case("layer_info")
def _info(insp, images, target, layer):
    insp.layer_info(layer)


@case("cached")
def _cached(insp, images, target, layer):
    insp.cached("acts", {"layer": layer}, images, lambda: insp.activations(images, [layer]))


def _methods_cases():
    """Cases of the methods packages, each imported only if present."""
    import importlib
    for mod in ("tests.hook_cases_methods", "tests.hook_cases_compression", "tests.hook_cases_dynamics"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError:
            pass


_methods_cases()
