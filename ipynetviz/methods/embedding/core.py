"""``embed_features``: a 2-D map of any (N, D) feature matrix by PCA, t-SNE or UMAP."""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any, Callable

import numpy as np
import torch

from ipynetviz.engine.checks import check_choice
from ipynetviz.engine.control import is_cancelled
from ipynetviz.engine.errors import InputError, IpynetvizError, SettingError

from .pca import pca
from .result import EmbeddingResult
from .tsne import EmbeddingFrame, run_tsne

METHODS = ("pca", "tsne", "umap")


class EmbeddingWarning(UserWarning):
    """An input was adjusted so that the embedding could run (perplexity lowered, features pooled)."""


def as_feature_tensor(x: Any, device: Any = None) -> torch.Tensor:
    """(N, ...) features as a float32 (N, D) tensor on ``device`` (default: where they already are)."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    if t.ndim == 0 or t.shape[0] == 0:
        raise InputError(f"no points to embed (features of shape {tuple(t.shape)}); pass an (N, D) array")
    t = t.detach().reshape(t.shape[0], -1)
    if t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in (torch.uint8, torch.int8, torch.int16,
                                                                          torch.int32, torch.int64)):
        raise InputError(f"features must be numeric, got dtype {t.dtype}")
    if device is not None:
        t = t.to(device)
    return t.to(torch.float32)


def check_finite(x: torch.Tensor, indices: np.ndarray) -> None:
    """Raise naming the rows (data set indices) whose features hold NaN or inf."""
    bad_rows = (~torch.isfinite(x)).any(dim=1)
    if bool(bad_rows.any()):
        bad = indices[bad_rows.cpu().numpy()]
        shown = ", ".join(str(int(i)) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise InputError(f"features of {len(bad)} of {x.shape[0]} points contain NaN or inf (data set indices "
                         f"[{shown}]); drop those points, or check the model/layer that produced them")


# Input-space distances for the trustworthiness cost points^2 x features multiply-adds: the subsample shrinks
# for wide features to stay near this budget (about a second on 2 CPU cores), but never below 500 points.
_TRUST_BUDGET = 1e10


def map_trustworthiness(x: torch.Tensor, coords: np.ndarray, n_neighbors: int = 10, max_points: int = 2000,
                        seed: int = 0) -> tuple[float | None, int, int]:
    """scikit-learn's trustworthiness of ``coords`` as a map of ``x``, on a random subsample for big maps.

    The input-space distance matrix is computed with torch on ``x``'s device and handed to scikit-learn as
    ``metric="precomputed"`` (squared distances: the neighbour ranks are the same).

    Args:
        x: (N, D) features on any device.
        coords: (N, k) map coordinates.
        n_neighbors: neighbourhood size (lowered for tiny maps: scikit-learn needs fewer than half the points).
        max_points: largest subsample; wide features use fewer (``1e10 / D`` squared, at least 500).
        seed: seed of the subsample.

    Returns:
        ``(trustworthiness or None when there are too few points, points used, neighbours used)``.

    Example:
        >>> x = torch.tensor([[0.], [1.], [2.], [3.], [4.], [5.]])
        >>> map_trustworthiness(x, x.numpy(), n_neighbors=2)
        (1.0, 6, 2)
    """
    from sklearn.manifold import trustworthiness

    n = x.shape[0]
    max_points = int(min(max_points, max(500, (_TRUST_BUDGET / max(x.shape[1], 1)) ** 0.5)))
    pick = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False)) if n > max_points \
        else np.arange(n)
    m = len(pick)
    k = min(int(n_neighbors), (m - 1) // 2)  # scikit-learn needs n_neighbors < m / 2
    if k < 1:
        return None, m, 0
    sub = x[torch.as_tensor(pick, device=x.device)]
    sq = (sub * sub).sum(1)
    d2 = torch.addmm(sq[:, None] + sq[None, :], sub, sub.T, alpha=-2.0).clamp_min_(0)
    d2.fill_diagonal_(0)
    value = trustworthiness(d2.double().cpu().numpy(), coords[pick].astype(np.float64), n_neighbors=k,
                            metric="precomputed")
    return float(value), m, k


def _checked_perplexity(perplexity: float, n: int) -> float:
    if not perplexity > 0:
        raise InputError(f"perplexity must be positive, got {perplexity}; typical values are 5 to 50")
    most = (n - 1) / 3.0
    if perplexity > most:
        warnings.warn(f"perplexity {perplexity:g} needs at least {int(np.ceil(3 * perplexity)) + 1} points but "
                      f"there are {n}; using perplexity {most:.3g} = (N - 1) / 3 instead", EmbeddingWarning,
                      stacklevel=3)
        return most
    return float(perplexity)


def _umap(x: torch.Tensor, n_components: int, seed: int, kwargs: dict) -> np.ndarray:
    try:
        import umap  # optional dependency
    except ImportError as err:
        raise IpynetvizError("method='umap' needs the umap-learn package: pip install umap-learn "
                             "(or use method='tsne' or 'pca')") from err
    model = umap.UMAP(n_components=n_components, random_state=seed, **kwargs)
    return np.asarray(model.fit_transform(x.cpu().numpy()), dtype=np.float32)


@dataclass(frozen=True)
class TSNEOptions:
    """t-SNE's schedule and machinery (openTSNE), one object instead of a dozen keyword arguments.

    Attributes:
        perplexity: effective number of neighbours; lowered to (N - 1) / 3 with a warning when there are too few
            points (at least 4 are needed).
        n_iter, early_exaggeration_iter, early_exaggeration, learning_rate: the optimisation schedule: 250
            exaggerated + 250 normal iterations ("auto" learning rate = N / exaggeration). Half the 1,000 of
            scikit-learn's default, at the same trustworthiness on shapes-cnn codes (0.9942 with 250 normal
            iterations, 0.9943 with 500; scikit-learn 0.9942); pass n_iter=500 for more polished clusters.
        n_jobs: threads; "auto": 2 from 2,000 points on, else 1 (a small map's iteration is too short to split:
            600 points took 2.3 s of CPU on 1 thread and 16 s on 2 on a busy 2-core machine).
        neighbors: "exact" (torch, on the device), "approx" (openTSNE's Annoy) or "auto" (exact on a GPU or up
            to 20,000 points).
        negative_gradient_method: "fft" (interpolation), "bh" (Barnes-Hut) or "auto" (BH below 10,000 points,
            where the FFT grid's cost dominates, else FFT).
    """

    perplexity: float = 30.0
    n_iter: int = 250
    early_exaggeration_iter: int = 250
    early_exaggeration: float = 12.0
    learning_rate: Any = "auto"
    n_jobs: Any = "auto"
    neighbors: str = "auto"
    negative_gradient_method: str = "auto"

    @classmethod
    def from_kwargs(cls, given: "TSNEOptions | None", kwargs: dict) -> "TSNEOptions":
        """``given`` (or the defaults) with keyword overrides; an unknown keyword names the known ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise SettingError(f"unknown embedding option(s) {unknown}; t-SNE options are {sorted(names)}")
        return replace(given or cls(), **kwargs)


def embed_features(x: Any, method: str = "pca", *, n_components: int = 2, seed: int = 0, labels: Any = None,
                   indices: Any = None, device: Any = None, tsne: TSNEOptions | None = None,
                   pca_dims: int | None = 50, trustworthiness: bool = True, trustworthiness_points: int = 2000,
                   umap_kwargs: dict | None = None, callback: Callable[[EmbeddingFrame], Any] | None = None,
                   callback_every: int = 25, cancel: Any = None, settings: dict | None = None,
                   **tsne_options) -> EmbeddingResult:
    """Map N feature vectors to 2-D by PCA (torch, on the device), t-SNE (openTSNE) or UMAP (umap-learn).

    Args:
        x: (N, D) features (numpy or torch; extra dimensions are flattened). NaN or inf raise, naming rows.
        method: "pca", "tsne" or "umap" (needs ``pip install umap-learn``).
        n_components: output dimensions; t-SNE is 2-D only.
        seed: seeds the randomized PCA, the t-SNE start and neighbour search, UMAP, and the subsample.
        labels: (N,) class labels; None draws a single class (``has_labels=False``).
        indices: (N,) data set positions of the rows (default ``arange(N)``), used in messages and the result.
        device: where PCA, neighbours and distances run (default: ``x``'s device; CPU for numpy).
        tsne: a :class:`TSNEOptions`; its fields may also be given as keywords (``perplexity=20, n_iter=500``).
        pca_dims: t-SNE and UMAP first reduce wider features to this many principal components (None: never).
        trustworthiness: compute scikit-learn's trustworthiness (10 neighbours) of the map.
        trustworthiness_points: subsample size for the trustworthiness of big maps.
        umap_kwargs: extra ``umap.UMAP`` arguments.
        callback: t-SNE: called with an :class:`EmbeddingFrame` for the PCA start (iteration 0, before the
            neighbours are found) and every ``callback_every`` iterations; other methods: once, at the end.
        callback_every: iterations between t-SNE frames.
        cancel: the house-wide stop signal (see :mod:`ipynetviz.engine.control`), checked at each frame; once
            set, t-SNE stops and the result holds the last layout with ``complete=False``.
        settings: extra entries recorded in the result's settings (used by :func:`embed`).

    Returns:
        :class:`EmbeddingResult` with float32 coordinates, labels, indices, the settings used and the trustworthiness.

    Example:
        >>> from sklearn.datasets import make_blobs
        >>> x, y = make_blobs(200, 20, centers=3, random_state=0)
        >>> e = embed_features(x, "pca", labels=y)
        >>> e.coords.shape, e.trustworthiness > 0.8
        ((200, 2), True)
    """
    t0 = time.perf_counter()
    check_choice(method, "embedding method", METHODS)
    options = TSNEOptions.from_kwargs(tsne, tsne_options)
    feats, idx, lab = _rows(x, device, indices, labels)
    n, d = feats.shape
    k = int(n_components)
    record = dict(settings or {})
    record.update(method=method, n_points=n, n_features=d, n_components=k, seed=seed, device=str(feats.device))
    explained, cancelled = None, False
    if method == "pca":
        coords, explained = _run_pca(feats, k, seed, record)
        if callback is not None:
            callback(EmbeddingFrame(coords.copy(), 1, 1, "done", None, time.perf_counter() - t0))
    else:
        reduced, start = _reduce(feats, method, k, pca_dims, seed, record)
        if method == "tsne":
            coords, cancelled = _run_tsne(reduced, start, options, seed, callback, callback_every, cancel, record, t0)
        elif is_cancelled(cancel):
            coords, cancelled = np.zeros((n, k), np.float32), True
        else:
            coords = _umap(reduced, k, seed, dict(umap_kwargs or {}))
            record.update(umap_kwargs=dict(umap_kwargs or {}))
            if callback is not None:
                callback(EmbeddingFrame(coords.copy(), 1, 1, "done", None, time.perf_counter() - t0))
    record["embed_seconds"] = round(time.perf_counter() - t0, 4)
    trust = None
    if trustworthiness and not cancelled:
        tt = time.perf_counter()
        trust, points, neighbours = map_trustworthiness(feats, coords, 10, trustworthiness_points, seed)
        record.update(trustworthiness_points=points, trustworthiness_neighbors=neighbours,
                      trustworthiness_seconds=round(time.perf_counter() - tt, 4))
    return EmbeddingResult(coords=np.ascontiguousarray(coords, dtype=np.float32), labels=lab, indices=idx,
                           method=method, settings=record, trustworthiness=trust, cancelled=cancelled,
                           explained_variance_ratio=explained, has_labels=labels is not None)


def _rows(x: Any, device: Any, indices: Any, labels: Any) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The checked feature tensor, row indices and labels."""
    feats = as_feature_tensor(x, device)
    n = feats.shape[0]
    idx = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) != n:
        raise InputError(f"{n} points but {len(idx)} indices; pass one index per row")
    lab = np.zeros(n, np.int64) if labels is None else np.asarray(labels).astype(np.int64).reshape(-1)
    if len(lab) != n:
        raise InputError(f"{n} points but {len(lab)} labels; pass one label per row (or labels=None)")
    check_finite(feats, idx)
    return feats, idx, lab


def _run_pca(feats: torch.Tensor, k: int, seed: int, record: dict) -> tuple[np.ndarray, np.ndarray]:
    n, d = feats.shape
    if n < 2:
        raise InputError(f"PCA needs at least 2 points, got {n}")
    if not 1 <= k <= min(n, d):
        raise InputError(f"n_components={k} must be between 1 and min(N, D) = {min(n, d)}")
    result = pca(feats, k, seed=seed)
    record.update(solver=result.solver)
    return result.to_numpy().astype(np.float32), result.explained_variance_ratio.cpu().numpy()


def _reduce(feats: torch.Tensor, method: str, k: int, pca_dims: int | None, seed: int, record: dict):
    """t-SNE / UMAP input: wide features reduced by PCA first; also t-SNE's PCA start (free from that step)."""
    n, d = feats.shape
    if n < 4:
        raise InputError(f"{method} needs at least 4 points, got {n}; use method='pca' for so few")
    if method == "tsne" and k != 2:
        raise InputError(f"t-SNE here makes 2-D maps; use n_components=2 (got {k}) or method='pca'")
    if pca_dims is not None and d > pca_dims and n > pca_dims:
        reduced = pca(feats, int(pca_dims), seed=seed, n_iter=1, n_oversamples=10).coords
        record.update(pca_dims=int(pca_dims))
        return reduced, reduced[:, :2]  # the scores on the first two axes: t-SNE's PCA start, for free
    record.update(pca_dims=None)
    return feats, None


def _run_tsne(reduced, start, o: TSNEOptions, seed, callback, callback_every, cancel, record: dict, t0: float):
    n = reduced.shape[0]
    perp = _checked_perplexity(o.perplexity, n)
    n_jobs = (min(2, os.cpu_count() or 1) if n >= 2000 else 1) if o.n_jobs == "auto" else o.n_jobs
    record.update(perplexity=perp, n_iter=int(o.n_iter), early_exaggeration_iter=int(o.early_exaggeration_iter),
                  early_exaggeration=o.early_exaggeration, learning_rate=o.learning_rate, n_jobs=n_jobs,
                  negative_gradient_method=o.negative_gradient_method, initialization="pca")
    coords, details, cancelled = run_tsne(
        reduced, perplexity=perp, n_iter=int(o.n_iter), early_exaggeration_iter=int(o.early_exaggeration_iter),
        early_exaggeration=o.early_exaggeration, learning_rate=o.learning_rate, n_jobs=n_jobs, seed=seed,
        callback=callback, callback_every=callback_every, cancel=cancel, neighbors=o.neighbors,
        negative_gradient_method=o.negative_gradient_method, t0=t0, start=start)
    record.update(details)
    return coords, cancelled
