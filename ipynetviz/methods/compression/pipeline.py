"""The whole Deep Compression pipeline on a copy of a model: prune, retrain, quantize, fine-tune centroids, save."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from ...engine.control import check_cancel, is_cancelled
from ...engine.inspector import Inspector
from .fileformat import LoadedFile, SavedFile, load_compressed, save_compressed
from .probe import AccuracyProbe
from .prune import PruneResult, prune
from .quantize import QuantizeResult, quantize
from .retrain import retrain
from .table import SizeTable, size_table


def batch_transform(inspector: Any):
    """The training-time ``images -> model input`` of an inspector's model (its normalisation), for ``train``."""
    from ..training import Normalise

    t = getattr(inspector, "transform", None)
    if t is not None and hasattr(t, "mean") and hasattr(t, "std") and getattr(t, "size", None) is None:
        return Normalise(t.mean, t.std)
    return "auto"


def copy_inspector(inspector: Inspector, model: nn.Module | None = None) -> Inspector:
    """A new Inspector over ``model`` (default: a deep copy of the inspector's model) with the same transform."""
    return Inspector(model if model is not None else copy.deepcopy(inspector.model), transform=inspector.transform,
                     device=inspector.device, class_names=inspector.class_names, input_size=inspector.input_size)


def pruned_path(path: str | os.PathLike) -> Path:
    """Where ``deep_compression`` writes the pruning-only file beside ``path``: ``m.ipnz`` -> ``m-pruned.ipnz``."""
    path = Path(path)
    return path.with_name(f"{path.stem}-pruned{path.suffix}")


@dataclass(frozen=True)
class DeepCompressionResult:
    """The stages of one Deep Compression run.

    Attributes:
        accuracy: stage -> test accuracy (``dense``, ``pruned``, ``pruned+retrained``, ``quantized``,
            ``trained quantization``, ``reloaded``); only the stages that ran.
        inspector: an Inspector over the compressed copy of the model.
        pruning, quantization: the masks and the (fine-tuned) shared weights.
        saved, loaded: the file written and what reading it back gave (when ``path`` was given).
        table: the paper's per-layer size table, from the file when there is one.
        pruned_only: the file of the pruned, retrained model before quantization (``"P"``), when saved.
        complete: False when ``cancel`` stopped it (later stages missing).
    """

    accuracy: dict[str, float]
    inspector: Inspector
    pruning: PruneResult
    quantization: QuantizeResult | None
    saved: SavedFile | None
    loaded: LoadedFile | None
    table: SizeTable | None
    pruned_only: SavedFile | None = None
    complete: bool = True
    centroid_history: list = field(default_factory=list, repr=False)

    def to_numpy(self) -> dict[str, float]:
        return dict(self.accuracy)


def deep_compression(inspector: Inspector, train_data: tuple, test_data: tuple,
                     sparsity: float | Mapping[str, float], *, bits: int | Mapping[str, int] | None = None,
                     init: str = "linear", prune_epochs: int = 10, quant_epochs: int = 3, lr: float = 1e-3,
                     quant_lr: float | None = None, optimizer: str = "adam", batch_size: int = 64,
                     augment=None, seed: int = 0, path: str | os.PathLike | None = None, meta: dict | None = None,
                     cancel=None, progress=False) -> DeepCompressionResult:
    """Prune, retrain with fixed masks, quantize, fine-tune the centroids, then write the file and read it back.

    Works on a copy: ``inspector``'s model is not changed.

    Args:
        inspector: the trained model and its transform.
        train_data, test_data: ``(images, labels)`` for retraining and for the accuracies.
        sparsity: per-layer fractions to remove (``{"fc1": 0.92, ...}``) or one for all.
        bits: bits per layer (None: 8 conv, 5 fc).
        init: k-means start.
        prune_epochs, quant_epochs: retraining after pruning and after quantization (0: none).
        lr, quant_lr: learning rates (``quant_lr`` default: ``lr / 10``), optimizer: of the retraining runs.
        augment: ``(images, generator) -> images`` for retraining batches (e.g. ``Augment(False, 2)``).
        seed: data order of the retraining runs.
        path: where to write the compressed file (and :func:`pruned_path` for the pruning-only file).
        meta: kept in the file.
        cancel, progress: the house control vocabulary (``progress`` drives each retraining run).

    Returns:
        A :class:`DeepCompressionResult`.
    """
    check_cancel(cancel)
    work = copy_inspector(inspector)
    x_test, y_test = test_data

    def accuracy() -> float:
        return AccuracyProbe(work, x_test, y_test).accuracy()

    acc = {"dense": accuracy()}
    transform = batch_transform(inspector)
    common = dict(batch_size=batch_size, optimizer=optimizer, transform=transform, augment=augment,
                  background=False, cancel=cancel, progress=progress)
    pruning = prune(work, sparsity)
    pruning.apply(work)
    acc["pruned"] = accuracy()
    partial = dict(inspector=work, pruning=pruning, quantization=None, saved=None, loaded=None, table=None)
    if prune_epochs:
        run = retrain(work, train_data, masks=pruning.masks, epochs=prune_epochs, lr=lr, seed=seed, **common)
        acc["pruned+retrained"] = accuracy()
        if not run.complete:
            return DeepCompressionResult(acc, complete=False, **partial)
    pruned_only = None
    if path is not None:
        pruned_only = save_compressed(pruned_path(path), work, meta=meta)
    q = quantize(work, bits, init=init)
    q.apply(work)
    acc["quantized"] = accuracy()
    history = []
    if quant_epochs and not is_cancelled(cancel):
        run = retrain(work, train_data, quantization=q, epochs=quant_epochs, lr=quant_lr or lr / 10,
                      seed=seed + 1, **common)
        q = run.centroids.result()
        history = run.centroids.history
        acc["trained quantization"] = accuracy()
        if not run.complete:
            return DeepCompressionResult(acc, complete=False, centroid_history=history,
                                         **{**partial, "quantization": q})
    saved = loaded = None
    if path is not None:
        saved = save_compressed(path, work, quantization=q, meta=meta)
        fresh = copy_inspector(work, copy.deepcopy(work.model))
        loaded = load_compressed(path, fresh)
        acc["reloaded"] = AccuracyProbe(fresh, x_test, y_test).accuracy()
        table = size_table(saved.encoded, saved.file_bytes)
    else:
        from .encode import encode
        table = size_table(encode(work, q))
    return DeepCompressionResult(acc, work, pruning, q, saved, loaded, table, pruned_only,
                                 centroid_history=history)


__all__ = ["deep_compression", "DeepCompressionResult", "pruned_path", "batch_transform", "copy_inspector"]
