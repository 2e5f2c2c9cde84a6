"""Nearest neighbours of query images in a layer's feature space and in pixel space (Krizhevsky et al. 2012, Fig. 4).

Both spaces use the Euclidean (L2) distance between flattened vectors:

* feature space: the layer's output for the image, flattened (C*H*W values for a conv map);
* pixel space: the model input (after the inspector's transform), flattened, i.e. the pixels the network sees.

The data set is streamed once; the distances of every query to a batch are computed on the device and a
running top-k (smallest first, ties to the lower index) is kept there. Distances use the expansion
``|a|^2 + |b|^2 - 2 a.b`` in float64, which keeps the cancellation error far below the gap between
neighbours (float32 would lose near-duplicates), then ``sqrt``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ipynetviz.engine.control import with_progress
from ipynetviz.engine.dataset import ImageSet
from ipynetviz.engine.errors import InputError

from ._images import dataset_of, stream, warn_short
from ._topk import RunningTopK

__all__ = ["NeighboursResult", "nearest_neighbours"]


@dataclass(frozen=True, eq=False)
class NeighboursResult:
    """The k nearest data-set images of each query, in feature space and in pixel space.

    Attributes:
        layer: the layer whose output is the feature space.
        k: neighbours per query.
        query_indices: (Q,) data-set indices of the queries, or None when images were given.
        feature_indices, feature_distances: (Q, k) nearest in feature space, closest first.
        pixel_indices, pixel_distances: (Q, k) nearest in pixel space, closest first.
        exclude_self: whether each query's own image was left out of its neighbours.
        note: a warning text when fewer than k images were available, else "".
    """

    layer: str
    k: int
    query_indices: np.ndarray | None
    feature_indices: np.ndarray
    feature_distances: np.ndarray
    pixel_indices: np.ndarray
    pixel_distances: np.ndarray
    exclude_self: bool
    note: str = ""

    def overlap(self) -> np.ndarray:
        """(Q,) fraction of each query's feature-space neighbours that are also its pixel-space neighbours."""
        return np.array([len(set(f) & set(p)) / max(len(f), 1)
                         for f, p in zip(self.feature_indices.tolist(), self.pixel_indices.tolist())])

    def to_numpy(self) -> np.ndarray:
        """(Q, k) data-set indices of each query's nearest images in feature space, closest first."""
        return self.feature_indices

    def to_dict(self) -> dict:
        """Indices and distances in both spaces, keyed by name."""
        return {"feature_indices": self.feature_indices, "feature_distances": self.feature_distances,
                "pixel_indices": self.pixel_indices, "pixel_distances": self.pixel_distances}


def _squared_distances(q: torch.Tensor, q_sq: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    b = b.double()
    d = q_sq[:, None] + (b * b).sum(1)[None, :] - 2.0 * (q @ b.t())
    return d.clamp_min_(0.0)


def _as_indices(query) -> np.ndarray | None:
    """Data-set indices when ``query`` is an int or a 1-D collection of ints; None when it holds images."""
    if isinstance(query, bool):
        return None
    if isinstance(query, (int, np.integer)):
        return np.array([int(query)], np.int64)
    if isinstance(query, range) or (isinstance(query, (list, tuple)) and query and all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in query)):
        return np.asarray(list(query), np.int64)
    if isinstance(query, (np.ndarray, torch.Tensor)) and query.ndim == 1 and query.dtype not in (
            np.uint8, torch.uint8) and not (query.dtype.is_floating_point if isinstance(query, torch.Tensor)
                                            else np.issubdtype(query.dtype, np.floating)):
        return np.asarray(query.tolist(), np.int64)
    return None


def _query_inputs(insp, data: ImageSet, query, layer: str):
    """(query indices or None, model input x, features) for the queries."""
    idx = _as_indices(query)
    if idx is not None:
        if len(idx) == 0:
            raise InputError("no query given (an empty index list); pass a data-set index or images")
        bad = idx[(idx < 0) | (idx >= len(data))]
        if len(bad):
            raise InputError(f"query index {int(bad[0])} is outside the data set of {len(data)} images "
                             f"(0..{len(data) - 1})")
        raw = data.raw(idx.tolist())
    else:
        raw = query
    x = insp.prepare(raw)
    feats = insp.activations(x, [layer], to_cpu=False)[layer]
    return idx, x, feats


def nearest_neighbours(insp, dataset, query, layer: str, k: int = 5, exclude_self: bool = True,
                       batch_size: int | None = None, progress=False) -> NeighboursResult:
    """The k nearest images of ``dataset`` to each query, in ``layer``'s feature space and in pixel space.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        dataset: the images to search (anything :func:`ipynetviz.engine.as_imageset` accepts).
        query: a data-set index, a list of indices, or images (anything ``insp.prepare`` accepts).
        layer: the layer whose output is the feature space.
        k: neighbours per query; with fewer candidates all are returned and a warning is issued.
        exclude_self: for index queries, leave the query's own image out (it is at distance 0).
        batch_size: images per forward pass (default: the inspector's).
        progress: True for a tqdm bar, or a callable ``progress(done, total)`` (it may raise to interrupt).

    Returns:
        :class:`NeighboursResult` with indices and distances for both spaces.

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> insp = Inspector(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), input_size=(3, 8, 8), device="cpu")
        >>> images = torch.rand(30, 3, 8, 8)
        >>> nn_ = nearest_neighbours(insp, images, query=0, layer="1", k=3)
        >>> nn_.feature_indices.shape, bool(0 in nn_.pixel_indices)
        ((1, 3), False)
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    data = dataset_of(dataset)
    insp.module(layer)
    idx, xq, fq = _query_inputs(insp, data, query, layer)
    xq, fq = xq.flatten(1).double(), fq.flatten(1).double()
    xq_sq, fq_sq = (xq * xq).sum(1), (fq * fq).sum(1)
    drop_self = exclude_self and idx is not None
    feature, pixel = RunningTopK(k), RunningTopK(k)
    for sl, x, a in with_progress(stream(insp, data, layer, batch_size), progress, len(data),
                                  f"neighbours {layer}", done_of=lambda item: item[0].stop):
        f = a.flatten(1)
        if f.shape[1] != fq.shape[1] or x[0].numel() != xq.shape[1]:
            raise InputError(f"the queries have {tuple(xq.shape[1:])} input values / {fq.shape[1]} features "
                             f"but images {sl.start}.. have {x[0].numel()} / {f.shape[1]}: resize them to one size")
        ids = torch.arange(sl.start, sl.stop, device=x.device)
        d_feat = _squared_distances(fq, fq_sq, f)
        d_pix = _squared_distances(xq, xq_sq, x.flatten(1))
        if drop_self:
            own = torch.as_tensor(idx, device=x.device)[:, None] == ids[None, :]
            d_feat.masked_fill_(own, float("inf"))
            d_pix.masked_fill_(own, float("inf"))
        feature.update(-d_feat, ids)  # largest of the negated = smallest distance
        pixel.update(-d_pix, ids)
    fd, fi = (-feature.values).sqrt().cpu().numpy(), feature.ids.cpu().numpy()
    pd, pi = (-pixel.values).sqrt().cpu().numpy(), pixel.ids.cpu().numpy()
    available = len(data) - (1 if drop_self else 0)
    note = warn_short(k, available, "other images" if drop_self else "images")
    got = min(k, available)
    return NeighboursResult(layer=layer, k=got, query_indices=idx, feature_indices=fi[:, :got],
                            feature_distances=fd[:, :got], pixel_indices=pi[:, :got], pixel_distances=pd[:, :got],
                            exclude_self=drop_self, note=note)
