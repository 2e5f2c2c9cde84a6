"""Retraining a compressed model through the project's one training loop (``methods.training.train``).

* Pruned retraining: gradients of removed weights are zeroed after backward and the masks are applied again
  after every step, so weight decay and momentum cannot bring a removed weight back (it stays exactly 0).
* Trained quantization (the paper's eq. 3): a custom update replaces the optimiser's step for the quantized
  layers: each centroid moves by ``lr`` times the summed gradient of the weights sharing it, the codes stay,
  and the weights are rewritten from the codebook; every other parameter takes the optimiser's step.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ...engine.checks import check_positive
from .layers import compressible_layers, model_of
from .quantize import QuantizeResult, centroid_gradient


class MaskHook:
    """A hook of the training loop that keeps removed weights at exactly zero."""

    def __init__(self, model, masks: Mapping[str, torch.Tensor]):
        layers = compressible_layers(model)
        self.pairs = [(layers[n].weight, m.to(layers[n].weight.device, torch.bool)) for n, m in masks.items()]

    def on_start(self, run) -> None:
        self.after_step(run, 0)

    def after_backward(self, run, step) -> None:
        for w, m in self.pairs:
            if w.grad is not None:
                w.grad.mul_(m)

    def after_step(self, run, step) -> None:
        with torch.no_grad():
            for w, m in self.pairs:
                w.mul_(m)


class CentroidUpdate:
    """The custom update of trained quantization; ``history`` keeps the codebooks every ``record_every`` steps."""

    def __init__(self, model, quantization: QuantizeResult, centroid_lr: float | None = None, record_every: int = 1):
        layers = compressible_layers(model)
        self.layers = {n: layers[n].weight for n in quantization.codes}
        dev = next(iter(self.layers.values())).device
        self.codes = {n: c.to(dev) for n, c in quantization.codes.items()}
        self.books = {n: torch.from_numpy(quantization.codebooks[n].copy()).to(dev) for n in quantization.codes}
        self.centroid_lr = centroid_lr
        self.record_every = record_every
        self.quantization = quantization
        self.history: list[tuple[int, dict[str, np.ndarray]]] = [(0, self.codebooks())]
        self._write()

    def codebooks(self) -> dict[str, np.ndarray]:
        return {n: b.detach().cpu().numpy().copy() for n, b in self.books.items()}

    def result(self) -> QuantizeResult:
        """The quantization with the fine-tuned centroids."""
        return self.quantization.with_codebooks(self.codebooks())

    def _write(self) -> None:
        with torch.no_grad():
            for n, w in self.layers.items():
                w.copy_(self.books[n][self.codes[n]])

    def __call__(self, run, step) -> None:
        lr = self.centroid_lr if self.centroid_lr is not None else run.lr
        grads = {}
        for n, w in self.layers.items():
            if w.grad is not None:
                grads[n] = centroid_gradient(w.grad, self.codes[n], len(self.books[n]))
                w.grad = None  # the optimiser leaves a parameter without a gradient alone
        run.optimizer.step()
        with torch.no_grad():
            for n, g in grads.items():
                self.books[n] -= lr * g
                self.books[n][0] = 0.0
        self._write()
        if step % self.record_every == 0:
            self.history.append((step, self.codebooks()))


class _Attach:
    def __init__(self, update):
        self.update = update

    def on_start(self, run) -> None:
        run.centroids = self.update


def retrain(model_or_inspector: Any, data, *, masks: Mapping[str, torch.Tensor] | None = None,
            quantization: QuantizeResult | None = None, centroid_lr: float | None = None,
            record_every: int = 10, epochs: int = 1, lr: float = 1e-3, optimizer="sgd", momentum: float = 0.9,
            weight_decay: float = 0.0, hooks=(), **train_kwargs):
    """Fine-tune a pruned and/or quantized model in place through the shared loop; returns the :class:`Run`.

    Args:
        model_or_inspector: the model to train (changed in place, like ``train``; pass a copy to keep it).
        data: ``(images, labels)``; with uint8 images pass ``transform=`` (e.g. ``Normalise(mean, std)``) to
            match how the model was trained, as ``train`` would otherwise normalise with this data's statistics.
        masks: layer -> kept weights (``PruneResult.masks``); removed weights stay exactly 0.
        quantization: a :class:`QuantizeResult` to fine-tune (its centroids; codes fixed).
        centroid_lr: step size of the centroids (None: the run's current lr).
        record_every: steps between codebook snapshots (``run.centroids.history``), for the Fig. 4 animation.
        epochs, lr, optimizer, momentum, weight_decay, hooks, train_kwargs: as in ``methods.training.train``
            (``background``, ``seed``, ``test``, ``cancel``, ``progress``, ``callback``, ...).

    Returns:
        The run; ``run.centroids`` is the :class:`CentroidUpdate` (``run.centroids.result()`` the fine-tuned
        quantization) when ``quantization`` was given.
    """
    from ..training import train

    model = model_of(model_or_inspector)
    if centroid_lr is not None:
        centroid_lr = check_positive(centroid_lr, "centroid_lr")
    all_hooks = list(hooks)
    if masks is None and quantization is not None:
        masks = {n: c != 0 for n, c in quantization.codes.items()}
    if masks:
        all_hooks.insert(0, MaskHook(model, masks))
    update = CentroidUpdate(model, quantization, centroid_lr, record_every) if quantization is not None else None
    all_hooks.insert(0, _Attach(update))  # run.centroids is there from the first callback on
    run = train(model, data, epochs=epochs, lr=lr, optimizer=optimizer, momentum=momentum,
                weight_decay=weight_decay, hooks=all_hooks, param_update=update, **train_kwargs)
    return run


__all__ = ["retrain", "MaskHook", "CentroidUpdate"]
