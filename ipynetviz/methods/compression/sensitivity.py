"""Pruning sensitivity: test accuracy per layer per sparsity, the curve Han and Distiller pick rates from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...engine.control import check_cancel, is_cancelled, progress_reporter
from ...engine.errors import SettingError
from .layers import check_sparsity, compressible_layers, model_of, resolve_layers
from .probe import AccuracyProbe
from .prune import _keep_largest

DEFAULT_SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass(frozen=True)
class SensitivityResult:
    """Accuracy when one layer alone is pruned.

    Attributes:
        layers: the layers, one row each.
        sparsities: the pruned fractions, one column each.
        accuracy: (layers, sparsities) test accuracy; NaN where a cancel stopped the scan.
        baseline: accuracy of the unpruned model.
        complete: False when ``cancel`` stopped it early.
    """

    layers: tuple[str, ...]
    sparsities: tuple[float, ...]
    accuracy: np.ndarray
    baseline: float
    complete: bool = True

    def to_numpy(self) -> np.ndarray:
        return self.accuracy.copy()

    def max_sparsity(self, drop: float = 0.01) -> dict[str, float]:
        """Per layer, the largest sparsity scanned whose accuracy stays within ``drop`` of the baseline."""
        out = {}
        for i, layer in enumerate(self.layers):
            ok = [s for s, a in zip(self.sparsities, self.accuracy[i]) if a >= self.baseline - drop]
            out[layer] = max(ok, default=0.0)
        return out


def sensitivity(inspector: Any, data: tuple, layers: Sequence[str] | None = None,
                sparsities: Sequence[float] = DEFAULT_SPARSITIES, *, batch_size: int | None = None,
                cancel=None, progress=False) -> SensitivityResult:
    """Prune each layer alone at each sparsity (no retraining) and measure the test accuracy.

    Only the layer's own weights change, so the activations below it are computed once per layer.

    Args:
        inspector: an Inspector over the model (its transform prepares the images).
        data: ``(images, labels)`` of a test set.
        layers: which layers (None: every conv and linear layer).
        sparsities: fractions in [0, 1).
        batch_size: images per forward pass.
        cancel, progress: the house control vocabulary (unit: one accuracy evaluation).

    Returns:
        A :class:`SensitivityResult`.

    Example:
        >>> from ipynetviz import zoo
        >>> insp = zoo.load("lenet-300-100")
        >>> r = sensitivity(insp, zoo.mnist("test"), sparsities=[0.0, 0.99])
        >>> r.accuracy.shape, bool((r.accuracy[:, 0] == r.baseline).all())
        ((3, 2), True)
    """
    check_cancel(cancel)
    model = model_of(inspector)
    names = resolve_layers(model, layers)
    grid = tuple(check_sparsity(s) for s in sparsities)
    if not grid:
        raise SettingError("no sparsities given; pass e.g. sparsities=[0.5, 0.8, 0.9]")
    images, labels = data
    probe = AccuracyProbe(inspector, images, labels, batch_size=batch_size)
    modules = compressible_layers(model)
    baseline = probe.accuracy()
    acc = np.full((len(names), len(grid)), np.nan)
    complete = True
    with progress_reporter(progress, acc.size, desc="sensitivity", unit="eval") as report:
        for i, name in enumerate(names):
            w = modules[name].weight.detach()
            for j, s in enumerate(grid):
                if is_cancelled(cancel):
                    complete = False
                    break
                mask, _ = _keep_largest(w, s)
                acc[i, j] = probe.accuracy({name: w * mask.to(w.device, w.dtype)})
                report(i * len(grid) + j + 1)
            if not complete:
                break
    return SensitivityResult(tuple(names), grid, acc, baseline, complete)


__all__ = ["sensitivity", "SensitivityResult", "DEFAULT_SPARSITIES"]
