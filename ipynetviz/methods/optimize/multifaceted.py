"""Multifaceted feature visualisation (Nguyen, Yosinski & Clune 2016).

A class or unit responds to several kinds of input (a "ring" class to thin and thick rings, on light and dark
backgrounds). One picture per objective blends them. Nguyen et al. collect the images that excite the
objective most, cluster their codes (k-means), and start one optimisation from the mean image of each
cluster: each picture then settles on one facet, and the cluster shows which images it stands for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ipynetviz.engine import targets as _targets
from ipynetviz.engine.checks import check_positive_int
from ipynetviz.engine.errors import SettingError, TargetError

from .results import OptimizationResult
from .space import PixelSpace
from .visualize import _visualize

__all__ = ["multifaceted", "MultifacetedResult"]


@dataclass(frozen=True, eq=False)
class MultifacetedResult(OptimizationResult):
    """One picture per facet, and the images each facet was clustered from.

    Attributes:
        top: indices (into the given images) of the ``top`` images that excite the objective most, best first.
        scores: the objective's value on those images.
        facet_of: (top,) the facet (cluster) of each top image.
        members: one index array per facet: the given images in that cluster, best first.
        means: uint8 (facets, C, H, W) mean image of each cluster (the starting pictures).
        layer: the layer whose codes were clustered.
    """

    top: np.ndarray
    scores: np.ndarray
    facet_of: np.ndarray
    members: tuple
    means: np.ndarray
    layer: str


def _scores_and_codes(insp, x: torch.Tensor, target, layer: str):
    """The objective's value per image (class logit or unit's mean) and the images' codes at ``layer``."""
    t = _targets.as_target(target)
    layers = [layer] + ([t.layer] if isinstance(t, _targets.Unit) and t.layer != layer else [])
    with torch.no_grad():
        acts = insp.activations(x, layers)
        if isinstance(t, _targets.Class):
            scores = insp.forward(x).reshape(len(x), -1)[:, int(t.index)]
        else:
            a = acts[t.layer][:, t.channel]
            scores = a.reshape(len(x), -1).mean(1) if t.y is None else a[:, t.y, t.x]
    code = acts[layer]
    if code.dim() == 4:  # what occurs, not where: average over positions
        code = code.mean((2, 3))
    return scores.double().cpu().numpy(), code.reshape(len(x), -1).double().cpu().numpy()


def _default_layer(insp, target) -> str:
    t = _targets.as_target(target)
    if isinstance(t, _targets.Unit):
        return t.layer
    spatial = [l for l in insp.layers if (insp.layer_shape(l) or ()) and len(insp.layer_shape(l)) == 3]
    if not spatial:
        raise SettingError("no layer with a spatial map to cluster; pass layer=<a layer name>")
    return spatial[-1]


def multifaceted(insp, target: Any, images: Any, facets: int = 3, top: int = 30, layer: str | None = None,
                 steps: int = 128, lr: float = 0.05, regularizers: Any = "default", param: Any = "fourier",
                 objective: Any = None, callback: Callable | None = None, callback_every: int = 16,
                 cancel: Any = None, seed: int = 0) -> MultifacetedResult:
    """One picture per facet of a class or unit: cluster its top images, start from each cluster's mean.

    Args:
        insp: the inspector.
        target: ``Class(k)`` or ``Unit(layer, c)``: whose facets.
        images: the images to search (uint8 (N, C, H, W) or any form ``insp.prepare`` accepts).
        facets: clusters (pictures), >= 1 and <= ``top``.
        top: how many of the most exciting images are clustered.
        layer: whose codes (averaged over positions) are clustered; default the unit's layer, or for a class
            the last layer with a spatial map (Nguyen et al. used the penultimate layer).
        steps, lr, regularizers, param, callback, callback_every, cancel, seed: as in :func:`visualize`.
        objective: what is maximised; default the target itself (``LogProb(k)`` is a good choice for classes).

    Returns:
        A :class:`MultifacetedResult`.

    Example:
        >>> import torch
        >>> from ipynetviz.engine import Inspector, Unit
        >>> torch.manual_seed(0) and None
        >>> m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        >>> insp = Inspector(m, input_size=(3, 8, 8), device="cpu")
        >>> r = multifaceted(insp, Unit("1", 0), torch.rand(20, 3, 8, 8), facets=2, top=6, steps=4)
        >>> r.images.shape, sorted(len(m) for m in r.members)[-1] <= 6
        ((2, 3, 8, 8), True)
    """
    from sklearn.cluster import KMeans  # the field's k-means; imported only here

    facets = check_positive_int(facets, "facets")
    top = check_positive_int(top, "top")
    x = insp.prepare(images)
    if top > len(x):
        raise SettingError(f"top={top} but only {len(x)} images were given; pass more images or top<={len(x)}")
    if facets > top:
        raise SettingError(f"facets={facets} is more than the {top} top images to cluster; use facets<={top} "
                           f"or a larger top")
    try:
        t = _targets.as_target(target)
    except TargetError:
        raise
    if isinstance(t, _targets.Class) and not isinstance(t.index, int):
        raise SettingError("multifaceted takes one class, e.g. Class(3)")
    _targets.resolve(t, 1, insp.num_classes, insp.layer_shape)
    layer = layer or _default_layer(insp, t)
    insp.module(layer)
    scores, codes = _scores_and_codes(insp, x, t, layer)
    order = np.lexsort((np.arange(len(scores)), -scores))[:top]  # best first; ties by index
    km = KMeans(n_clusters=facets, n_init=10, random_state=int(seed)).fit(codes[order])
    labels = km.labels_.astype(int)
    members = tuple(order[labels == f] for f in range(facets))
    if any(len(m) == 0 for m in members):
        raise SettingError(f"k-means found fewer than {facets} distinct clusters among the top {top} images; "
                           "use fewer facets or a larger top")
    space = PixelSpace(insp, channels=x.shape[1])
    pix = space.to_pixels(x.to(space.device))
    start = torch.stack([pix[torch.as_tensor(m)].mean(0) for m in members])
    obj = t if objective is None else objective
    r = _visualize(insp, obj, steps, lr, regularizers, "image", callback, callback_every, cancel, seed,
                   facets, param, pixels=space.clamp_(start), method="multifaceted",
                   extra={"facets": facets, "top": top, "layer": layer})
    return MultifacetedResult(
        input=r.input, images=r.images, objective=r.objective, terms=r.terms, settings=r.settings,
        interrupted=r.interrupted, steps_done=r.steps_done,
        descriptions=tuple(f"{d} (facet {i + 1} of {facets}, {len(members[i])} images)"
                           for i, d in enumerate(r.descriptions)),
        top=order, scores=scores[order], facet_of=labels, members=members,
        means=space.to_uint8(space.to_model(start)), layer=layer)
