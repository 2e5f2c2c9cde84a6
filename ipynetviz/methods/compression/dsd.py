"""DSD training (Han et al., ICLR 2017): dense, sparse (pruned, masks fixed), re-dense (lr x 0.1), vs an equal-epoch dense run.

Every stage is one run of the shared training loop on the same model. The baseline continues the dense model
for the same epochs with the same learning rates, without the sparse phase (the DSD paper's fair comparison).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ...engine.checks import check_positive, check_positive_int
from ...engine.control import check_cancel, is_cancelled
from .layers import check_sparsity, compressible_layers
from .prune import prune
from .retrain import retrain

STAGES = ("dense", "sparse", "re-dense", "baseline")
HISTOGRAM_STAGES = ("a: dense", "b: pruned", "c: sparse trained", "d: zeros recovered", "e: re-dense trained")


@dataclass(frozen=True)
class DSDResult:
    """Accuracies per stage and seed, the weight histograms of the DSD paper's Fig. 2 and the accuracy curves.

    Attributes:
        seeds: the seeds run (model initialisation and data order).
        accuracy: stage (``dense``, ``sparse``, ``re-dense``, ``baseline``) -> test accuracy per seed.
        histograms: for the first seed, ``(stage label, counts, edges)`` of ``layer``'s weights at stages a-e.
        curves: ``"dsd"`` / ``"baseline"`` -> (epochs, test accuracy) after every epoch, for the first seed.
        layer, sparsity, epochs: the settings.
        complete: False when ``cancel`` stopped it (the seeds done so far are kept).
    """

    seeds: tuple[int, ...]
    accuracy: dict[str, np.ndarray]
    histograms: tuple
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    layer: str
    sparsity: float
    epochs: int
    complete: bool = True

    def summary(self) -> dict[str, tuple[float, float]]:
        """Stage -> (mean, standard deviation over seeds) of the test accuracy."""
        return {s: (float(np.mean(a)), float(np.std(a))) for s, a in self.accuracy.items() if len(a)}

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {s: a.copy() for s, a in self.accuracy.items()}


def _histogram(w: torch.Tensor, edges: np.ndarray) -> np.ndarray:
    return np.histogram(w.detach().cpu().numpy().ravel(), bins=edges)[0]


def _curve(runs) -> tuple[np.ndarray, np.ndarray]:
    xs, ys, offset = [], [], 0.0
    for run in runs:
        for row in run.history.evals:
            if row["step"] == 0 and xs:
                continue
            xs.append(offset + row["step"] / run.steps_per_epoch)
            ys.append(row["test_accuracy"])
        offset += run.total_steps / run.steps_per_epoch
    return np.asarray(xs), np.asarray(ys)


def dsd(model: Callable[[], nn.Module], data: tuple, test: tuple, *, sparsity: float = 0.3,
        keep_dense: Sequence[str] | None = None, epochs: int = 5, lr: float = 1e-3, optimizer: str = "adam",
        redense_factor: float = 0.1, seeds: Sequence[int] = (0, 1, 2), batch_size: int = 64, augment=None,
        transform="auto", layer: str | None = None, bins: int = 60, device="auto", cancel=None,
        progress=False) -> DSDResult:
    """Dense-sparse-dense training of fresh models from ``model()``, with an equal-epoch dense baseline.

    Args:
        model: a zero-argument factory (e.g. ``zoo.lenet_300_100``); called once per seed.
        data, test: ``(images, labels)`` to train on and to measure after every epoch.
        sparsity: fraction of each layer's weights removed in the sparse phase (the paper: 0.3 for CNNs).
        keep_dense: layers never pruned (None: the first conv layer, as in the paper; none for an MLP).
        epochs: epochs of each of the three phases (the baseline trains ``2 * epochs`` after the dense phase).
        lr, optimizer: of the dense and sparse phases; the re-dense phase uses ``lr * redense_factor``.
        seeds: one full DSD + baseline per seed (mean and spread in ``summary()``).
        batch_size, augment, transform: as in ``methods.training.train``.
        layer: whose weights the histograms show (None: the largest layer).
        bins: histogram bins.
        device: where to train (``"auto"``: CUDA when present).
        cancel, progress: the house control vocabulary (``progress`` drives each run).

    Returns:
        A :class:`DSDResult`.
    """
    from ..training import train

    check_cancel(cancel)
    s = check_sparsity(sparsity)
    epochs = check_positive_int(epochs, "epochs")
    redense_factor = check_positive(redense_factor, "redense_factor")
    seeds = tuple(int(x) for x in seeds)
    probe_model = model()
    layers = compressible_layers(probe_model)
    if keep_dense is None:
        keep_dense = [n for n, m in layers.items() if isinstance(m, nn.Conv2d)][:1]
    pruned_layers = [n for n in layers if n not in set(keep_dense)]
    if layer is None:
        layer = max(layers, key=lambda n: layers[n].weight.numel())
    common = dict(batch_size=batch_size, optimizer=optimizer, transform=transform, augment=augment, test=test,
                  device=device,
                  background=False, cancel=cancel, progress=progress)
    acc = {k: [] for k in STAGES}
    histograms: tuple = ()
    curves: dict = {}
    complete = True
    for i, seed in enumerate(seeds):
        if is_cancelled(cancel):
            complete = False
            break
        dense = train(model, data, epochs=epochs, lr=lr, seed=seed, **common)
        net = dense.model
        w = lambda: compressible_layers(net)[layer].weight.detach().cpu().clone()  # noqa: E731
        snaps = [("a: dense", w())]
        baseline_net = copy.deepcopy(net)
        pruning = prune(net, {n: s for n in pruned_layers})
        pruning.apply(net)
        snaps.append(("b: pruned", w()))
        sparse = retrain(net, data, masks=pruning.masks, epochs=epochs, lr=lr, seed=seed + 100, **common)
        snaps.append(("c: sparse trained", w()))
        snaps.append(("d: zeros recovered", w()))
        redense = train(net, data, epochs=epochs, lr=lr * redense_factor, seed=seed + 200, **common)
        snaps.append(("e: re-dense trained", w()))
        base1 = train(baseline_net, data, epochs=epochs, lr=lr, seed=seed + 100, **common)
        base2 = train(baseline_net, data, epochs=epochs, lr=lr * redense_factor, seed=seed + 200, **common)
        runs = (dense, sparse, redense, base1, base2)
        if not all(r.complete for r in runs):
            complete = False
            break
        for stage, run in zip(STAGES, (dense, sparse, redense, base2)):
            acc[stage].append(run.history.last_eval()["test_accuracy"])
        if i == 0:
            limit = max(float(t.abs().max()) for _, t in snaps) * 1.0001
            edges = np.linspace(-limit, limit, bins + 1)
            histograms = tuple((label, _histogram(t, edges), edges) for label, t in snaps)
            curves = {"dsd": _curve((dense, sparse, redense)), "baseline": _curve((dense, base1, base2))}
    return DSDResult(seeds[:len(acc["dense"])], {k: np.asarray(v) for k, v in acc.items()}, histograms, curves,
                     layer, s, epochs, complete)


__all__ = ["dsd", "DSDResult", "STAGES", "HISTOGRAM_STAGES"]
