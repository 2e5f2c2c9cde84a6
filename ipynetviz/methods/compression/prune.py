"""Magnitude pruning (Han et al. 2015/2016): per layer (a sparsity or quality x std), or global."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ...engine.checks import check_choice, check_positive
from ...engine.errors import SettingError
from .layers import check_sparsity, compressible_layers, model_of, per_layer, resolve_layers

RULES = ("sparsity", "quality", "global")


@dataclass(frozen=True)
class PruneResult:
    """Which weights survive: one boolean mask per layer (True = kept), on the CPU.

    Attributes:
        masks: layer -> bool tensor of the weight's shape.
        thresholds: layer -> the magnitude at or below which weights were removed.
        rule: ``"sparsity"`` (a fraction per layer), ``"quality"`` (quality x std of each layer) or ``"global"``.
    """

    masks: dict[str, torch.Tensor]
    thresholds: dict[str, float]
    rule: str
    _sizes: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def sparsity(self) -> dict[str, float]:
        """Layer -> fraction of its weights removed."""
        return {n: 1.0 - int(m.sum()) / m.numel() for n, m in self.masks.items()}

    @property
    def kept(self) -> float:
        """Fraction of the pruned layers' weights kept (the paper's "weights %")."""
        total = sum(m.numel() for m in self.masks.values())
        return sum(int(m.sum()) for m in self.masks.values()) / max(total, 1)

    def weights(self, model_or_inspector: Any) -> dict[str, torch.Tensor]:
        """The pruned weights (copies) of ``model``: its weights times the masks; the model is not changed."""
        layers = compressible_layers(model_of(model_or_inspector))
        return {n: layers[n].weight.detach() * m.to(layers[n].weight.device, layers[n].weight.dtype)
                for n, m in self.masks.items()}

    def apply(self, model_or_inspector: Any) -> None:
        """Zero the removed weights of ``model`` in place (the one call here that changes a model)."""
        layers = compressible_layers(model_of(model_or_inspector))
        with torch.no_grad():
            for n, m in self.masks.items():
                layers[n].weight.mul_(m.to(layers[n].weight.device, layers[n].weight.dtype))

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {n: m.numpy() for n, m in self.masks.items()}


def _keep_largest(weight: torch.Tensor, sparsity: float) -> tuple[torch.Tensor, float]:
    """Mask that removes exactly round(sparsity * n) smallest magnitudes (ties: the earlier index goes first).

    A selection (``kthvalue``, linear time) instead of a full sort: a slider over a 400K-weight layer stays live.
    """
    flat = weight.detach().abs().flatten().cpu()
    n_drop = int(round(sparsity * flat.numel()))
    if n_drop == 0:
        return torch.ones(weight.shape, dtype=torch.bool), 0.0
    threshold = flat.kthvalue(n_drop).values
    mask = flat > threshold
    tied = torch.nonzero(flat == threshold).flatten()
    n_tied_dropped = n_drop - int((flat < threshold).sum())
    mask[tied[n_tied_dropped:]] = True  # of equal magnitudes, the later ones stay
    return mask.reshape(weight.shape), float(threshold)


def prune(model_or_inspector: Any, sparsity: float | Mapping[str, float] | None = None, *,
          quality: float | Mapping[str, float] | None = None, scope: str = "layer",
          layers: Sequence[str] | None = None) -> PruneResult:
    """Choose the weights to remove by magnitude; the model is not changed (``result.apply(model)`` does that).

    Three rules, as in Deep Compression and Distiller:

    * ``sparsity=0.9`` or ``{"fc1": 0.92, "conv1": 0.34}``: remove that fraction of each layer's weights
      (the smallest magnitudes; a layer missing from the dict is not pruned);
    * ``quality=1.5``: Han's rule, remove weights with ``|w| <= quality x std(w)`` in each layer;
    * ``scope="global"`` with ``sparsity=0.9``: one magnitude threshold over all the layers together.

    Weights that are already zero count as the smallest, so pruning a pruned model keeps its masks.

    Args:
        model_or_inspector: an Inspector or an ``nn.Module`` with conv or linear layers.
        sparsity: a fraction in [0, 1), one per layer (dict), or the global fraction.
        quality: Han's quality parameter (> 0), one or per layer; exclusive with ``sparsity``.
        scope: ``"layer"`` or ``"global"``.
        layers: which layers (None: every conv and linear layer).

    Returns:
        A :class:`PruneResult` with a mask per layer.

    Example:
        >>> from ipynetviz.zoo import lenet_300_100
        >>> r = prune(lenet_300_100(), {"fc1": 0.92, "fc2": 0.91, "fc3": 0.74})
        >>> {n: round(s, 2) for n, s in r.sparsity.items()}
        {'fc1': 0.92, 'fc2': 0.91, 'fc3': 0.74}
    """
    model = model_of(model_or_inspector)
    check_choice(scope, "scope", ("layer", "global"))
    if (sparsity is None) == (quality is None):
        raise SettingError("pass either sparsity= (a fraction of weights to remove) or quality= (Han's rule: "
                           "remove |w| <= quality x std), not both or neither; e.g. prune(insp, sparsity=0.9)")
    setting = sparsity if quality is None else quality
    if isinstance(setting, Mapping):
        resolve_layers(model, list(setting))  # a named layer without weights gets the clear error
    names = resolve_layers(model, layers)
    modules = compressible_layers(model)
    masks, thresholds = {}, {}
    if scope == "global":
        if quality is not None or isinstance(sparsity, Mapping):
            raise SettingError("scope='global' takes one sparsity for all layers, e.g. prune(insp, sparsity=0.9, "
                               "scope='global')")
        s = check_sparsity(sparsity)
        flat = torch.cat([modules[n].weight.detach().abs().flatten().cpu() for n in names])
        joint, thr = _keep_largest(flat, s)
        start = 0
        for n in names:
            size = modules[n].weight.numel()
            masks[n] = joint[start:start + size].reshape(modules[n].weight.shape)
            thresholds[n] = thr
            start += size
        return PruneResult(masks, thresholds, "global")
    if quality is not None:
        qs = per_layer(quality, names, "quality", lambda v, name: check_positive(v, name, allow_zero=True))
        for n in names:
            if qs[n] is None:
                continue
            w = modules[n].weight.detach().cpu()
            thr = float(qs[n] * w.float().std())
            masks[n] = w.abs() > thr
            thresholds[n] = thr
        return PruneResult(masks, thresholds, "quality")
    ss = per_layer(sparsity, names, "sparsity", check_sparsity)
    for n in names:
        if ss[n] is None:
            continue
        masks[n], thresholds[n] = _keep_largest(modules[n].weight, ss[n])
    return PruneResult(masks, thresholds, "sparsity")


def masks_of(model_or_inspector: Any, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The masks a pruned model already has: True where a weight is not zero."""
    model = model_of(model_or_inspector)
    modules = compressible_layers(model)
    return {n: modules[n].weight.detach().cpu() != 0 for n in resolve_layers(model, layers)}


__all__ = ["prune", "PruneResult", "masks_of", "RULES"]
