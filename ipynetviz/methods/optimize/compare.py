"""The same objective under several regularizer sets, side by side (the comparison figure of Nguyen,
Yosinski & Clune 2016, "Multifaceted feature visualization", Fig. 1, on our own models).

Each set is one line of the history of class visualisation: Simonyan et al. (2014, L2 decay on pixels),
Yosinski et al. (2015, L2 + blur + jitter + clipping), Mahendran & Vedaldi (2015, total variation + jitter),
Olah et al. (2017, Fourier parametrization + transformation robustness) and Nguyen et al. (2016, + centre
bias).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import torch

from ipynetviz.engine.errors import SettingError

from .objectives import L2, TV
from .regularizers import Blur, ClipNorm, Jitter
from .results import OptimizationResult
from .transforms import CenterBias, standard_transforms
from .visualize import visualize

__all__ = ["regularizer_sets", "compare_regularizers"]


def regularizer_sets(size: int = 64) -> dict[str, dict]:
    """The lecture's regularizer sets, by label, as :func:`visualize` keyword arguments (``param``,
    ``regularizers``) for a picture of ``size`` pixels.

    Example:
        >>> list(regularizer_sets())[:2]
        ['pixels, L2 (Simonyan)', 'pixels, L2 + blur + jitter + clip (Yosinski)']
    """
    jitter = max(1, round(size / 32))
    return {
        "pixels, L2 (Simonyan)": {"param": "pixels", "regularizers": [1e-4 * L2()]},
        "pixels, L2 + blur + jitter + clip (Yosinski)": {
            "param": "pixels", "regularizers": [1e-4 * L2(), Blur(0.5, every=4), Jitter(jitter), ClipNorm(10)]},
        "pixels, TV + jitter (Mahendran)": {"param": "pixels", "regularizers": [TV(0.005), Jitter(jitter)]},
        "Fourier + transforms (Olah)": {"param": "fourier", "regularizers": standard_transforms(size)},
        "Fourier + transforms + centre bias (Nguyen)": {
            "param": "fourier", "regularizers": standard_transforms(size) + [CenterBias()]},
    }


def compare_regularizers(insp, objective: Any, sets: dict | None = None, steps: int = 128, lr: float = 0.05,
                         callback: Callable | None = None, callback_every: int = 16, cancel: Any = None,
                         seed: int = 0) -> OptimizationResult:
    """Run :func:`visualize` for ``objective`` once per regularizer set; one result with all pictures.

    Args:
        insp: the inspector.
        objective: one objective, or a list (one picture per objective and set).
        sets: ``{label: visualize keyword arguments}``; default :func:`regularizer_sets`.
        steps, lr, callback, callback_every, cancel, seed: as in :func:`visualize`; the callback sees the
            pictures finished so far plus the running set's.

    Returns:
        An :class:`OptimizationResult` whose pictures are grouped by set (set-major) and whose
        ``descriptions`` start with the set's label; ``settings["sets"]`` lists the labels.
    """
    size = insp.input_size[-1] if insp.input_size is not None else 64
    sets = regularizer_sets(size) if sets is None else dict(sets)
    if not sets:
        raise SettingError("sets is empty; give {label: {'param': ..., 'regularizers': [...]}} or leave it out")
    done: list[OptimizationResult] = []
    labels: list[str] = []

    def merged(parts, names, interrupted):
        last = parts[-1]
        return dataclasses.replace(
            last, input=torch.cat([p.input for p in parts]),
            images=np.concatenate([p.images for p in parts]),
            objective=np.zeros((0, sum(len(p) for p in parts))),
            descriptions=tuple(f"{n}: {d}" for p, n in zip(parts, names) for d in p.descriptions),
            settings=dict(last.settings, method="compare_regularizers", sets=list(names)),
            interrupted=interrupted, steps_done=sum(p.steps_done for p in parts))

    for label, kwargs in sets.items():
        on_step = None if callback is None else \
            (lambda r, label=label: callback(merged(done + [r], labels + [label], True)))
        r = visualize(insp, objective, steps=steps, lr=lr, callback=on_step, callback_every=callback_every,
                      cancel=cancel, seed=seed, **kwargs)
        done.append(r)
        labels.append(label)
        if r.interrupted:
            break
    return merged(done, labels, done[-1].interrupted or len(done) < len(sets))
