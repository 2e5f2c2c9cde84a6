"""Dynamics' public calls for the hook-removal suite (registered by tests/hook_cases.py), at tiny settings.

These calls train copies of the inspected model (the suite checks the original stays untouched); each case also
checks that every copy it handed out is left without hooks, whether the call returned or raised.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from ipynetviz.engine import hooks_left
from ipynetviz.methods import dynamics as D
from tests.hook_cases import case

LABELS = np.array([0, 1, 2])


class _Copies:
    """A factory of copies of the inspected model that remembers them (to check their hooks afterwards)."""

    def __init__(self, model):
        self.model, self.made = model, []

    def __call__(self, *_):
        m = copy.deepcopy(self.model)
        for p in m.parameters():  # the suite freezes conv3 on the original; the copies train every layer
            p.requires_grad_(True)
        self.made.append(m)
        return m

    def check(self):
        left = [h for m in self.made for h in hooks_left(m)]
        assert left == [], f"hooks left on the trained copies: {left}"


def _bad(layer: str) -> bool:
    return layer == "conv_9"  # the suite's bad-target run


@case("dynamics.learning_dynamics")
def _learning(insp, images, target, layer):
    copies = _Copies(insp.model)
    try:
        D.learning_dynamics([copies(), insp.model], images, [layer], method="cka", batch_size=2)
    finally:
        copies.check()


@case("dynamics.freeze_training")
def _freeze(insp, images, target, layer):
    copies = _Copies(insp.model)
    try:
        # the similarity schedule: it reads the lowest trainable layer's output on the probe between steps
        D.freeze_training(copies, (images, LABELS), layers=[layer if _bad(layer) else "conv1"],
                          schedule="similarity", interval=1, probe=images, epochs=2, batch_size=3, compare=False,
                          device="cpu")
    finally:
        copies.check()


@case("dynamics.transfer_experiment")
def _transfer(insp, images, target, layer):
    copies = _Copies(insp.model)
    x = torch.cat([images, images.flip(-1)])  # 6 images, 2 per class: halves (0,) and (1, 2)
    y = np.concatenate([LABELS, LABELS])
    try:
        D.transfer_experiment(((x, y), (x, y)), ([0], [1, 2]), n_layers=[9 if _bad(layer) else 1],
                              model=copies, epochs=1, batch_size=2)
    finally:
        copies.check()
