"""Features to embed: a layer's codes streamed through the inspector (flattened or pooled), or raw pixels."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ipynetviz.engine.dataset import ImageSet, as_imageset
from ipynetviz.engine.errors import InputError

from .core import EmbeddingWarning, embed_features
from .result import EmbeddingResult

POOLS = ("avg", "max", None)
DEFAULT_MAX_FEATURES = 50_000


@dataclass(frozen=True)
class FeaturesResult:
    """Per-image feature vectors of a data set, ready to embed.

    Attributes:
        values: (N, D) float32 CPU tensor.
        labels: (N,) int64 labels, or None when the data set has none.
        indices: (N,) int64 positions in the data set.
        source: the layer name, or "pixels".
        settings: how the vectors were made (pooling, original shape, grid).
    """

    values: torch.Tensor
    labels: np.ndarray | None
    indices: np.ndarray
    source: str
    settings: dict = field(default_factory=dict)

    def to_numpy(self) -> np.ndarray:
        return self.values.numpy()


def _pool_plan(shape: tuple[int, ...], pool: Any, max_features: int, source: str) -> tuple[str, Any, dict]:
    """Decide how to turn one batch of (B, *shape) outputs into vectors; warn when flattening is too big."""
    if pool not in POOLS:
        raise InputError(f"unknown pool {pool!r}; use 'avg' (spatial mean), 'max' (spatial max) or None (flatten)")
    flat = int(np.prod(shape)) if shape else 1
    info = {"feature_shape": tuple(int(s) for s in shape), "pool": pool}
    if len(shape) < 2:
        return "flatten", None, info  # already a vector per image
    if pool is not None:
        return pool, None, info
    if flat <= max_features:
        return "flatten", None, info
    channels = int(shape[0])
    spatial = shape[1:]
    side = max(1, math.isqrt(max_features // channels)) if channels <= max_features else 1
    if len(spatial) == 2 and side < min(spatial):
        grid = (min(side, spatial[0]), min(side, spatial[1]))
    else:
        grid = (1,) * len(spatial)
    new = channels * int(np.prod(grid))
    warnings.warn(f"{source} has {flat:,} features per image ({' x '.join(map(str, shape))}), above "
                  f"max_features={max_features:,}; average-pooling space to {' x '.join(map(str, grid))} "
                  f"({new:,} features). Pass pool='avg' or 'max' for one value per channel, or raise max_features",
                  EmbeddingWarning, stacklevel=4)
    info.update(pool="avg (automatic)", pooled_grid=grid)
    return "grid", grid, info


def _apply_pool(acts: torch.Tensor, how: str, grid: Any) -> torch.Tensor:
    if how == "flatten":
        return acts.reshape(acts.shape[0], -1)
    if how == "grid":
        if acts.ndim == 4:
            return F.adaptive_avg_pool2d(acts, grid).reshape(acts.shape[0], -1)
        return acts.reshape(acts.shape[0], acts.shape[1], -1).mean(2)
    dims = tuple(range(2, acts.ndim))
    return acts.mean(dim=dims) if how == "avg" else acts.amax(dim=dims)


def _subset(data: ImageSet, indices: Any) -> tuple[ImageSet, np.ndarray]:
    n = len(data)
    if indices is None:
        return data, np.arange(n, dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise InputError("indices is empty; pass at least one data set index")
    if idx.min() < -n or idx.max() >= n:
        raise InputError(f"indices must lie in [0, {n}) for this data set of {n} images")
    idx = idx % n
    labels = None if data.labels is None else data.labels[idx]
    return ImageSet(data.raw(idx), labels=labels, class_names=data.class_names), idx


def layer_features(insp, dataset: Any, layer: str, *, pool: Any = None, max_features: int = DEFAULT_MAX_FEATURES,
                   batch_size: int | None = None, indices: Any = None, labels: Any = None) -> FeaturesResult:
    """Stream a data set through the model and collect each image's code at ``layer``.

    Args:
        insp: the :class:`~ipynetviz.engine.Inspector`.
        dataset: anything ``as_imageset`` accepts.
        layer: a name from ``insp.layers``.
        pool: "avg" / "max": one value per channel (spatial mean / max); None: flatten, unless that gives more
            than ``max_features`` values, in which case space is average-pooled to the largest grid that fits
            (with a warning).
        max_features: the most values per image kept when flattening.
        batch_size: images per forward pass (default: the inspector's).
        indices: optional subset of data set positions.
        labels: labels overriding the data set's.

    Returns:
        :class:`FeaturesResult` (values on the CPU).

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
        >>> insp = Inspector(m, input_size=(1, 8, 8), device="cpu")
        >>> f = layer_features(insp, torch.rand(10, 1, 8, 8), "1", pool="avg")
        >>> tuple(f.values.shape), f.settings["feature_shape"]
        ((10, 4), (4, 6, 6))
    """
    insp.module(layer)  # a clear LayerNotFoundError before any work
    data, idx = _subset(as_imageset(dataset), indices)
    plan = None
    parts = []
    for _, _, acts in insp.iter_batches(data, [layer], batch_size=batch_size):
        a = acts[layer]
        if plan is None:
            plan = _pool_plan(tuple(a.shape[1:]), pool, int(max_features), f"layer {layer!r}")
        parts.append(_apply_pool(a.float(), plan[0], plan[1]).cpu())
    values = torch.cat(parts)
    lab = _labels(labels, data, len(idx))
    return FeaturesResult(values=values, labels=lab, indices=idx, source=layer, settings={"layer": layer, **plan[2]})


def _labels(labels: Any, data: ImageSet, n: int) -> np.ndarray | None:
    if labels is None:
        return data.labels
    lab = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(lab) != n:
        raise InputError(f"{n} images but {len(lab)} labels; pass one label per image")
    return lab


def pixel_features(dataset: Any, *, max_features: int = DEFAULT_MAX_FEATURES, indices: Any = None,
                   labels: Any = None, batch_size: int = 512) -> FeaturesResult:
    """Each image's pixels as a vector in [0, 1] (float model input is used as it is).

    Images larger than ``max_features`` values are area-downsampled (with a warning); all images must share
    one size.

    Example:
        >>> f = pixel_features(np.zeros((4, 8, 8, 3), np.uint8))
        >>> tuple(f.values.shape)
        (4, 192)
    """
    data, idx = _subset(as_imageset(dataset), indices)
    parts = []
    plan = None
    for sl, raw in data.batches(batch_size):
        if isinstance(raw, torch.Tensor) and raw.is_floating_point():
            x = raw.float()
        else:
            imgs = data.images_uint8(list(range(sl.start, sl.stop)))
            if isinstance(imgs, list):
                raise InputError("the images differ in size; resize them to one size before a pixel-space map")
            x = torch.from_numpy(np.asarray(imgs)).float() / 255.0
        if plan is None:
            plan = _pool_plan(tuple(x.shape[1:]), None, int(max_features), "pixel space")
        parts.append(_apply_pool(x, plan[0], plan[1]))
    lab = _labels(labels, data, len(idx))
    return FeaturesResult(values=torch.cat(parts), labels=lab, indices=idx, source="pixels",
                          settings={"layer": "pixels", **plan[2]})


def embed(insp, dataset: Any, layer: str, method: str = "pca", *, pool: Any = None,
          max_features: int = DEFAULT_MAX_FEATURES, batch_size: int | None = None, indices: Any = None,
          labels: Any = None, **kwargs) -> EmbeddingResult:
    """Map a data set's codes at ``layer`` to 2-D (PCA, t-SNE or UMAP): similar codes land close together.

    Args:
        insp: the :class:`~ipynetviz.engine.Inspector`.
        dataset: anything ``as_imageset`` accepts; its labels colour the map (None: one class).
        layer: a name from ``insp.layers``.
        method: "pca", "tsne" or "umap".
        pool, max_features, batch_size, indices, labels: see :func:`layer_features`.
        **kwargs: passed to :func:`embed_features` (perplexity, seed, callback, cancel, n_iter, ...).
            ``device`` defaults to the inspector's.

    Returns:
        :class:`EmbeddingResult`; ``indices`` are data set positions, ``settings`` records the layer and pooling.

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
        >>> insp = Inspector(m, input_size=(1, 8, 8), device="cpu")
        >>> e = embed(insp, torch.rand(20, 1, 8, 8), "1", "pca", trustworthiness=False)
        >>> e.coords.shape, e.has_labels
        ((20, 2), False)
    """
    feats = layer_features(insp, dataset, layer, pool=pool, max_features=max_features, batch_size=batch_size,
                           indices=indices, labels=labels)
    kwargs.setdefault("device", insp.device)
    return _embed(feats, method, kwargs)


def embed_pixels(dataset: Any, method: str = "pca", *, max_features: int = DEFAULT_MAX_FEATURES,
                 indices: Any = None, labels: Any = None, **kwargs) -> EmbeddingResult:
    """Map a data set's raw pixels to 2-D, the baseline a layer's map is compared with.

    Args:
        dataset: anything ``as_imageset`` accepts (one image size).
        method: "pca", "tsne" or "umap".
        max_features, indices, labels: see :func:`pixel_features`.
        **kwargs: passed to :func:`embed_features` (``device`` defaults to the CPU).

    Returns:
        :class:`EmbeddingResult` with ``settings["layer"] == "pixels"``.

    Example:
        >>> e = embed_pixels(np.random.default_rng(0).integers(0, 255, (30, 8, 8, 3), dtype=np.uint8))
        >>> e.coords.shape
        (30, 2)
    """
    feats = pixel_features(dataset, max_features=max_features, indices=indices, labels=labels)
    return _embed(feats, method, kwargs)


def _embed(feats: FeaturesResult, method: str, kwargs: dict) -> EmbeddingResult:
    extra = dict(kwargs.pop("settings", None) or {})
    extra.update(feats.settings)
    return embed_features(feats.values, method, labels=feats.labels, indices=feats.indices, settings=extra,
                          **kwargs)
