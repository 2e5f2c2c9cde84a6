"""Compare two networks on one data set: unit correlation, matching, SVCCA and CKA in one streamed pass.

``compare`` runs both inspectors over the same images batch by batch, feeds both layers' activations (every
spatial position a sample) into one float64 accumulator on the first network's device, and derives every
measure from it. ``layer_grid`` does the same for many layer pairs and returns SVCCA and CKA matrices.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ipynetviz.engine.checks import check_batch_size
from ipynetviz.engine.control import with_progress
from ipynetviz.engine.errors import InputError

from ._inputs import UndefinedSimilarityError, align_spatial, check_same_samples
from .cca import CCAResult, cca_from_moments
from .cka import linear_cka_from_moments
from .correlation import CorrelationResult, correlation_from_moments
from .matching import MatchingResult, bipartite_matching, semi_matching
from .moments import StreamingMoments

__all__ = ["CorrespondenceResult", "LayerGridResult", "compare", "layer_grid"]


@dataclass(frozen=True, eq=False)
class CorrespondenceResult:
    """Everything ``compare`` measured between layer A of one network and layer B of another.

    Attributes:
        layer_a, layer_b: the compared layers.
        correlation_: between-net unit correlation (A rows, B columns).
        within_a_, within_b_: within-net unit correlation of each layer.
        semi_, bipartite_: matchings of A's units to B's units.
        svcca_: SVCCA (None if undefined on these samples; ``notes`` says why).
        cka_: linear CKA.
        n_images, n_samples: images seen, and samples (images x positions).
        notes: what could not be computed and why.
    """

    layer_a: str
    layer_b: str
    correlation_: CorrelationResult
    within_a_: CorrelationResult
    within_b_: CorrelationResult
    semi_: MatchingResult
    bipartite_: MatchingResult
    svcca_: CCAResult | None
    cka_: float
    n_images: int
    n_samples: int
    notes: tuple[str, ...] = field(default=())

    def summary(self, threshold: float = 0.9) -> dict:
        """The figures Li et al. report: matched correlations, units above `threshold`, dead units."""
        m = self.bipartite_.matched_corr
        return {
            "layer_a": self.layer_a, "layer_b": self.layer_b, "units_a": self.correlation_.shape[0],
            "units_b": self.correlation_.shape[1], "dead_a": int(self.correlation_.dead_a.sum()),
            "dead_b": int(self.correlation_.dead_b.sum()),
            "bipartite_median": float(np.median(m)) if m.size else float("nan"),
            "bipartite_mean": float(m.mean()) if m.size else float("nan"),
            "semi_mean": float(self.semi_.matched_corr.mean()) if self.semi_.matched_corr.size else float("nan"),
            f"bipartite_above_{threshold}": self.bipartite_.count_above(threshold),
            "svcca_mean": None if self.svcca_ is None else self.svcca_.mean, "cka": self.cka_,
        }

    def to_numpy(self) -> np.ndarray:
        """The between-net correlation matrix."""
        return self.correlation_.corr


@dataclass(frozen=True, eq=False)
class LayerGridResult:
    """SVCCA and linear CKA for every (layer of A, layer of B) pair.

    Attributes:
        layers_a, layers_b: row and column layer names.
        cka: (len(layers_a), len(layers_b)) linear CKA.
        svcca: the same for the mean SVCCA correlation (NaN where undefined).
        n_images: images seen.
    """

    layers_a: tuple[str, ...]
    layers_b: tuple[str, ...]
    cka: np.ndarray
    svcca: np.ndarray
    n_images: int

    def to_numpy(self) -> np.ndarray:
        """The CKA matrix."""
        return self.cka


def _pair_batches(insp_a, insp_b, dataset, layers_a, layers_b, batch_size, progress):
    """Yield ({layer: acts of A}, {layer: acts of B}, n_images) for the same images, batch by batch."""
    from ipynetviz.engine import as_imageset
    data = as_imageset(dataset)
    bs = check_batch_size(batch_size, default=min(insp_a.batch_size, insp_b.batch_size))
    if insp_b is insp_a:  # one network against itself: one forward pass per batch serves both sides
        union = list(dict.fromkeys(list(layers_a) + list(layers_b)))
        pairs = ((x, x) for x in insp_a.iter_batches(data, union, batch_size=bs))
    else:
        pairs = zip(insp_a.iter_batches(data, layers_a, batch_size=bs),
                    insp_b.iter_batches(data, layers_b, batch_size=bs))
    pairs = with_progress(pairs, progress, len(data), "comparing", done_of=lambda item: item[0][0].stop)
    for (sl_a, _, acts_a), (sl_b, _, acts_b) in pairs:
        if sl_a != sl_b:  # pragma: no cover - both walk the same ImageSet in order
            raise RuntimeError(f"the two inspectors returned different batches ({sl_a} vs {sl_b})")
        yield acts_a, acts_b, sl_a.stop - sl_a.start


def _aligned(a: torch.Tensor, b: torch.Tensor, align: str | None, device: torch.device):
    b = b.to(device)
    if a.ndim == 4 and b.ndim == 4 and a.shape[2:] != b.shape[2:] and align is not None:
        a, b = align_spatial(a, b, mode=align)
    check_same_samples(a, b)
    return a, b


def _check_layers(insp, layers):
    if isinstance(layers, str):
        layers = [layers]
    for name in layers:
        insp.module(name)  # LayerNotFoundError with close matches
    return list(layers)


def compare(insp_a, insp_b, dataset, layer_a: str, layer_b: str | None = None, keep=0.99,
            batch_size: int | None = None, align: str | None = None, progress: bool = False) -> CorrespondenceResult:
    """Do two networks learn the same units? Correlate, match, SVCCA and CKA one layer of each.

    Args:
        insp_a, insp_b: inspectors of the two networks (each with its own transform and device).
        dataset: the images, anything ``as_imageset`` accepts; both networks see the same ones.
        layer_a: layer of network A; layer_b: layer of network B (default: the same name).
        keep: SVCCA's SVD step (fraction of variance or number of directions).
        batch_size: images per forward pass (default: the inspectors' batch size).
        align: for conv maps of different sizes: None raises, "resize" or "pool" (see ``align_spatial``).
        progress: True for a tqdm bar, or a callable ``progress(done, total)`` in images.

    Returns:
        A :class:`CorrespondenceResult` with ``correlation_``, ``within_a_``, ``within_b_``, ``semi_``,
        ``bipartite_``, ``svcca_`` and ``cka_``.

    Example:
        >>> import torch.nn as nn; from ipynetviz.engine import Inspector
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> insp = Inspector(net, input_size=(3, 8, 8), device="cpu")
        >>> c = compare(insp, insp, torch.rand(6, 3, 8, 8), "0")
        >>> c.bipartite_.pairs.tolist(), round(c.cka_, 6)
        ([[0, 0], [1, 1], [2, 2], [3, 3]], 1.0)
    """
    layer_b = layer_a if layer_b is None else layer_b
    _check_layers(insp_a, layer_a)
    _check_layers(insp_b, layer_b)
    if align not in (None, "resize", "pool"):
        raise InputError(f"align must be None, 'resize' or 'pool', got {align!r}")
    acc = StreamingMoments()
    n_images = 0
    for acts_a, acts_b, n in _pair_batches(insp_a, insp_b, dataset, [layer_a], [layer_b], batch_size, progress):
        a, b = _aligned(acts_a[layer_a], acts_b[layer_b], align, acts_a[layer_a].device)
        acc.update(a, b)
        n_images += n
    return result_from_moments(acc, layer_a, layer_b, n_images, keep)


def result_from_moments(acc, layer_a: str, layer_b: str, n_images: int, keep=0.99,
                        cka_errors: str = "raise") -> CorrespondenceResult:
    """The :class:`CorrespondenceResult` of accumulated moments (one pass here, or merged shards of a scan).

    An undefined SVCCA becomes a note; an undefined CKA raises, or becomes NaN and a note with
    ``cka_errors="note"`` (a scan keeps its other results).
    """
    between = correlation_from_moments(acc, "between")
    notes = []
    try:
        sv = cca_from_moments(acc, keep=keep, method="svcca")
    except UndefinedSimilarityError as err:
        sv = None
        notes.append(f"SVCCA: {err}")
    try:
        cka = linear_cka_from_moments(acc)
    except UndefinedSimilarityError as err:
        if cka_errors == "raise":
            raise
        cka = float("nan")
        notes.append(f"CKA: {err}")
    return CorrespondenceResult(
        layer_a=layer_a, layer_b=layer_b, correlation_=between, within_a_=correlation_from_moments(acc, "a"),
        within_b_=correlation_from_moments(acc, "b"), semi_=semi_matching(between),
        bipartite_=bipartite_matching(between), svcca_=sv, cka_=cka, n_images=n_images,
        n_samples=acc.n_samples, notes=tuple(notes))


def layer_grid(insp_a, insp_b, dataset, layers_a=None, layers_b=None, keep=0.99, batch_size: int | None = None,
               align: str | None = "pool", progress: bool = False) -> LayerGridResult:
    """SVCCA and linear CKA between every layer of A and every layer of B, in one pass over the data.

    Args:
        insp_a, insp_b: the two inspectors (the same one for a network against itself).
        dataset: images, anything ``as_imageset`` accepts.
        layers_a, layers_b: layer names (default: each network's conv layers).
        keep: SVCCA's SVD step.
        batch_size: images per forward pass.
        align: how maps of different sizes are compared: "pool" (default: average-pool the larger map to
            the smaller size), "resize" (bilinear upsampling of the smaller), or None (raise).
        progress: True for a tqdm bar, or a callable ``progress(done, total)`` in images.

    Returns:
        A :class:`LayerGridResult`; one accumulator per pair holds O((Ca + Cb)^2) floats.

    Example:
        >>> import torch.nn as nn; from ipynetviz.engine import Inspector
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
        >>> insp = Inspector(net, input_size=(3, 10, 10), device="cpu")
        >>> g = layer_grid(insp, insp, torch.rand(8, 3, 10, 10), keep=None)
        >>> g.cka.shape, round(float(g.cka[0, 0]), 6)
        ((2, 2), 1.0)
    """
    layers_a = _check_layers(insp_a, layers_a if layers_a is not None else insp_a.conv_layers)
    layers_b = _check_layers(insp_b, layers_b if layers_b is not None else insp_b.conv_layers)
    if not layers_a or not layers_b:
        raise InputError("no layers to compare: the networks have no conv layers; pass layers_a and layers_b")
    if align not in (None, "resize", "pool"):
        raise InputError(f"align must be None, 'resize' or 'pool', got {align!r}")
    accs = {(la, lb): StreamingMoments() for la in layers_a for lb in layers_b}
    n_images = 0
    for acts_a, acts_b, n in _pair_batches(insp_a, insp_b, dataset, layers_a, layers_b, batch_size, progress):
        for (la, lb), acc in accs.items():
            a, b = _aligned(acts_a[la], acts_b[lb], align, acts_a[la].device)
            acc.update(a, b)
        n_images += n
    cka = np.full((len(layers_a), len(layers_b)), np.nan)
    sv = np.full_like(cka, np.nan)
    for i, la in enumerate(layers_a):
        for j, lb in enumerate(layers_b):
            try:
                cka[i, j] = linear_cka_from_moments(accs[la, lb])
                sv[i, j] = cca_from_moments(accs[la, lb], keep=keep, method="svcca").mean
            except UndefinedSimilarityError:
                pass  # left NaN: that pair has no varying unit, or too few samples for SVCCA
    return LayerGridResult(tuple(layers_a), tuple(layers_b), cka, sv, n_images)
