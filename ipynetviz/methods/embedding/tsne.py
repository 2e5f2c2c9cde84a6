"""t-SNE with openTSNE: exact neighbours on the device, PCA start, live frames and cancellation."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ipynetviz.engine.control import is_cancelled

from .pca import pca

# Below this many points Barnes-Hut beats the FFT method (openTSNE's own rule). Measured here on 5,000
# shapes-cnn codes: BH 25 ms per iteration with 2 threads, steady; FFT 19 ms while the map is compact, then
# 80 ms as it spreads (its grid grows with the map's area, and its FFT runs on one thread).
FFT_MIN_POINTS = 10_000
# Iterations before the first moving frame (later frames come every ``callback_every`` iterations).
FIRST_FRAME_AT = 5
# Exact neighbours cost O(N^2 D); up to this many points on a CPU they beat Annoy's index build (measured
# 5,000 x 50: ~0.5 s exact vs ~3.5 s Annoy on 2 cores). Above it, on a CPU, openTSNE's approximate index is used.
EXACT_KNN_MAX_CPU = 20_000


@dataclass(frozen=True)
class EmbeddingFrame:
    """One intermediate layout streamed while t-SNE optimises.

    Attributes:
        coords: (N, 2) float32 copy of the layout at this iteration.
        iteration: iterations done so far (0 = the PCA start, before any gradient step).
        total_iterations: iterations planned (early exaggeration + refinement).
        phase: "init", "exaggeration" or "refine".
        kl_divergence: the KL divergence at this iteration (None for the start).
        elapsed: seconds since the embedding was asked for.
    """

    coords: np.ndarray
    iteration: int
    total_iterations: int
    phase: str
    kl_divergence: float | None
    elapsed: float

    @property
    def progress(self) -> float:
        """Fraction of the planned iterations done, in [0, 1]."""
        return self.iteration / max(self.total_iterations, 1)

    def to_numpy(self) -> np.ndarray:
        return self.coords


def exact_knn(x: torch.Tensor, k: int, max_block_bytes: int = 64 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows (Euclidean), computed blockwise with torch on ``x``'s device.

    Args:
        x: (N, D) float tensor.
        k: neighbours per point (< N).
        max_block_bytes: memory for one block of the distance matrix.

    Returns:
        ``(indices, distances)``: (N, k) int64 and float64 numpy arrays, nearest first, self excluded.

    Example:
        >>> idx, dist = exact_knn(torch.tensor([[0.], [1.], [3.]]), 1)
        >>> idx.ravel().tolist(), dist.ravel().tolist()
        ([1, 0, 1], [1.0, 1.0, 2.0])
    """
    n = x.shape[0]
    sq = (x * x).sum(1)
    rows = max(1, min(n, max_block_bytes // (4 * n)))
    idx_parts, dist_parts = [], []
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        d2 = torch.addmm(sq[start:stop, None] + sq[None, :], x[start:stop], x.T, alpha=-2.0)
        d2[torch.arange(stop - start, device=x.device), torch.arange(start, stop, device=x.device)] = float("inf")
        vals, idx = torch.topk(d2, k, dim=1, largest=False, sorted=True)
        idx_parts.append(idx.cpu())
        dist_parts.append(vals.clamp_min(0).sqrt().cpu())
    return torch.cat(idx_parts).numpy().astype(np.int64), torch.cat(dist_parts).numpy().astype(np.float64)


def _start_layout(x: torch.Tensor, seed: int, start: torch.Tensor | None = None) -> np.ndarray:
    """PCA start scaled to std 1e-4 (openTSNE's convention); random when the data have no spread."""
    if start is None and x.shape[1] >= 2:
        start = pca(x, 2, seed=seed).coords
    coords = None if start is None else start.detach().cpu().numpy().astype(np.float64)
    if coords is None or not np.isfinite(coords).all() or np.std(coords[:, 0]) < 1e-12:
        coords = np.random.default_rng(seed).standard_normal((x.shape[0], 2))
    return coords / np.std(coords[:, 0]) * 1e-4


class _Stream:
    """openTSNE callback: copies frames out, counts iterations across both phases, and checks cancel."""

    def __init__(self, callback, cancel, every: int, total: int, t0: float):
        self.callback, self.cancel, self.every, self.total, self.t0 = callback, cancel, every, total, t0
        self.offset = 0
        self.phase = "exaggeration"
        self.last_iteration = 0

    def emit(self, iteration: int, error: float | None, coords: np.ndarray, phase: str) -> None:
        if self.callback is not None:
            self.callback(EmbeddingFrame(coords=np.array(coords, dtype=np.float32), iteration=iteration,
                                         total_iterations=self.total, phase=phase,
                                         kl_divergence=None if error is None else float(error),
                                         elapsed=time.perf_counter() - self.t0))

    def cancelled(self) -> bool:
        return is_cancelled(self.cancel)

    def __call__(self, iteration: int, error: float, embedding: np.ndarray) -> bool:
        self.last_iteration = self.offset + iteration
        if self.last_iteration >= self.total:
            return False  # the final layout is emitted once optimisation has really finished
        self.emit(self.last_iteration, error, embedding, self.phase)
        return self.cancelled()  # True stops openTSNE with OptimizationInterrupt


def _optimize_phase(embedding, stream: _Stream, start: int, stop: int, every: int, use_callbacks: bool,
                    **params) -> None:
    """Run iterations ``[start, stop)`` of one phase, with frames at multiples of ``every`` after ``start``.

    The very first phase also shows a frame after ``FIRST_FRAME_AT`` iterations, so that the map starts to
    move on screen sooner; openTSNE's fixed callback period is met by splitting the phase (the optimiser's
    gains and momentum carry over between calls).
    """
    pos = start
    if use_callbacks and start == 0 and FIRST_FRAME_AT < every:
        for bound in (FIRST_FRAME_AT, every):
            if bound >= stop:
                break
            stream.offset = pos
            embedding.optimize(n_iter=bound - pos, callbacks_every_iters=bound - pos, inplace=True,
                               propagate_exception=True, **params)
            pos = bound
    if stop > pos:
        stream.offset = pos
        embedding.optimize(n_iter=stop - pos, callbacks_every_iters=every, inplace=True, propagate_exception=True,
                           **params)


def run_tsne(x: torch.Tensor, *, perplexity: float, n_iter: int, early_exaggeration_iter: int,
             early_exaggeration: float, learning_rate: Any, n_jobs: int, seed: int,
             callback: Callable[[EmbeddingFrame], Any] | None, callback_every: int, cancel: Any,
             neighbors: str, negative_gradient_method: str, t0: float,
             start: torch.Tensor | None = None) -> tuple[np.ndarray, dict, bool]:
    """Optimise a 2-D t-SNE layout of ``x`` (already reduced); see ``embed_features`` for the arguments.

    ``start``: the first two principal component scores when the caller already has them.

    Returns:
        ``(coords (N, 2) float32, details dict, cancelled)``.
    """
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.nearest_neighbors import PrecomputedNeighbors
    from openTSNE.tsne import OptimizationInterrupt

    n = x.shape[0]
    total = early_exaggeration_iter + n_iter
    stream = _Stream(callback, cancel, callback_every, total, t0)
    init = _start_layout(x, seed, start)
    stream.emit(0, None, init, "init")  # the first frame: shown while neighbours are found
    details: dict = {}
    if stream.cancelled():
        return init.astype(np.float32), {"iterations": 0}, True

    k = min(n - 1, int(3 * perplexity))
    if neighbors == "auto":
        neighbors = "exact" if (x.device.type != "cpu" or n <= EXACT_KNN_MAX_CPU) else "approx"
    tk = time.perf_counter()
    if neighbors == "exact":
        idx, dist = exact_knn(x, k)
        affinities = PerplexityBasedNN(knn_index=PrecomputedNeighbors(idx, dist), perplexity=perplexity,
                                       n_jobs=n_jobs)
    else:
        affinities = PerplexityBasedNN(x.cpu().numpy().astype(np.float64), perplexity=perplexity,
                                       method=neighbors, n_jobs=n_jobs, random_state=seed)
    details["neighbors"] = f"{neighbors} (k={k}, on {x.device.type if neighbors == 'exact' else 'cpu'})"
    details["affinity_seconds"] = round(time.perf_counter() - tk, 4)
    if stream.cancelled():
        return init.astype(np.float32), {**details, "iterations": 0}, True

    if negative_gradient_method == "auto":
        negative_gradient_method = "fft" if n >= FFT_MIN_POINTS else "bh"
    details["negative_gradient_method"] = negative_gradient_method
    use_callbacks = callback is not None or cancel is not None
    embedding = TSNEEmbedding(init, affinities, learning_rate=learning_rate, n_jobs=n_jobs, random_state=seed,
                              negative_gradient_method=negative_gradient_method,
                              callbacks=[stream] if use_callbacks else None,
                              callbacks_every_iters=max(1, int(callback_every)))
    every = max(1, int(callback_every))
    cancelled = False
    try:
        _optimize_phase(embedding, stream, 0, early_exaggeration_iter, every, use_callbacks,
                        exaggeration=early_exaggeration, momentum=0.5)
        stream.phase = "refine"
        if stream.cancelled():  # set after the last frame of the first phase
            stream.last_iteration = early_exaggeration_iter
            raise OptimizationInterrupt(error=None, final_embedding=embedding)
        _optimize_phase(embedding, stream, early_exaggeration_iter, total, every, use_callbacks,
                        exaggeration=1, momentum=0.8)
        details["iterations"] = total
        kl = getattr(embedding, "kl_divergence", None)
        details["kl_divergence"] = None if kl is None else float(kl)
        stream.emit(total, details["kl_divergence"], embedding, "done")
    except OptimizationInterrupt:
        cancelled = True
        details["iterations"] = stream.last_iteration
    return np.asarray(embedding, dtype=np.float32).copy(), details, cancelled
