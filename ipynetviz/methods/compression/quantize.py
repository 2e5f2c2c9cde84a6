"""Weight sharing (Deep Compression, Sec. 3): per layer, k-means of the surviving weights into 2^bits - 1 centroids.

Code 0 of every layer is reserved for a pruned weight (value exactly 0, also the paper's filler zero), so a
layer with ``bits=5`` has 31 shared values. Trained quantization fine-tunes the centroids with the summed
gradient of the weights that share them (the paper's eq. 3), the codes staying as they are.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ...engine.checks import check_choice
from .kmeans import INITS, kmeans_1d
from .layers import DEFAULT_BITS, check_bits, compressible_layers, kind_of, model_of, per_layer, resolve_layers


@dataclass(frozen=True)
class QuantizeResult:
    """Shared weights per layer: ``codebooks[layer][codes[layer]]`` is the quantized weight.

    Attributes:
        codebooks: layer -> float32 array (2^bits,) or shorter; entry 0 is 0.0 (pruned).
        codes: layer -> int64 tensor of the weight's shape (0 = pruned, 1.. = a centroid).
        bits: layer -> bits per code.
        inertia: layer -> k-means sum of squared errors of the surviving weights.
        init: the k-means start used.
    """

    codebooks: dict[str, np.ndarray]
    codes: dict[str, torch.Tensor]
    bits: dict[str, int]
    inertia: dict[str, float]
    init: str

    def weights(self) -> dict[str, torch.Tensor]:
        """Layer -> the quantized weight tensor (float32, CPU)."""
        return {n: torch.from_numpy(self.codebooks[n])[self.codes[n]] for n in self.codes}

    def apply(self, model_or_inspector: Any) -> None:
        """Write the quantized weights into ``model`` in place."""
        layers = compressible_layers(model_of(model_or_inspector))
        with torch.no_grad():
            for n, w in self.weights().items():
                layers[n].weight.copy_(w.to(layers[n].weight.device, layers[n].weight.dtype))

    def with_codebooks(self, codebooks: Mapping[str, np.ndarray]) -> "QuantizeResult":
        """The same codes with new centroid values (after trained quantization)."""
        books = dict(self.codebooks)
        books.update({n: np.asarray(c, dtype=np.float32) for n, c in codebooks.items()})
        return replace(self, codebooks=books)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Layer -> quantized weights as arrays."""
        return {n: w.numpy() for n, w in self.weights().items()}


def quantize(model_or_inspector: Any, bits: int | Mapping[str, int] | None = None, *, init: str = "linear",
             layers: Sequence[str] | None = None, masks: Mapping[str, torch.Tensor] | None = None,
             seed: int = 0, max_iter: int = 1000) -> QuantizeResult:
    """Share weights: cluster each layer's surviving weights with 1-D k-means; the model is not changed.

    Args:
        model_or_inspector: an Inspector or ``nn.Module`` (pruned or not).
        bits: bits per code, one for all or ``{layer: bits}`` (1 to 16); None: the paper's 8 for conv,
            5 for fully connected layers. A layer gets ``2**bits - 1`` centroids (code 0 = pruned).
        init: ``"linear"`` (the paper's choice), ``"density"`` or ``"forgy"``.
        layers: which layers (None: every conv and linear layer).
        masks: layer -> kept weights (default: the nonzero weights).
        seed: for ``"forgy"``.
        max_iter: Lloyd steps at most.

    Returns:
        A :class:`QuantizeResult`.

    Example:
        >>> from ipynetviz.zoo import lenet_300_100
        >>> q = quantize(lenet_300_100(), bits=4)
        >>> len(q.codebooks["fc1"]), int(q.codes["fc1"].max()) <= 15
        (16, True)
    """
    check_choice(init, "init", INITS)
    model = model_of(model_or_inspector)
    if isinstance(bits, Mapping):
        resolve_layers(model, list(bits))
    names = resolve_layers(model, layers)
    modules = compressible_layers(model)
    if bits is None:
        bits = {n: DEFAULT_BITS[kind_of(modules[n])] for n in names}
    chosen = per_layer(bits, names, "bits", check_bits)
    codebooks, codes, inertia, used = {}, {}, {}, {}
    for n in names:
        if chosen[n] is None:
            continue
        w = modules[n].weight.detach().cpu().float()
        mask = (masks[n].cpu().bool() if masks is not None and n in masks else w != 0)
        values = w[mask].numpy()
        k = 2 ** chosen[n] - 1
        fit = kmeans_1d(values, k, init=init, seed=seed, max_iter=max_iter)
        book = np.zeros(len(fit.centroids) + 1, dtype=np.float32)
        book[1:] = fit.centroids.astype(np.float32)
        code = torch.zeros(w.shape, dtype=torch.int64)
        code[mask] = torch.from_numpy(fit.labels + 1)
        codebooks[n], codes[n], inertia[n], used[n] = book, code, fit.inertia, chosen[n]
    return QuantizeResult(codebooks, codes, used, inertia, init)


def centroid_gradient(grad: torch.Tensor, codes: torch.Tensor, n_codes: int) -> torch.Tensor:
    """The paper's eq. 3: dL/dC_k = sum of dL/dW_ij over the weights whose code is k (entry 0, pruned, is 0).

    Example:
        >>> g = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> centroid_gradient(g, torch.tensor([[1, 2], [1, 0]]), 3).tolist()
        [0.0, 4.0, 2.0]
    """
    out = torch.zeros(n_codes, dtype=grad.dtype, device=grad.device)
    out.index_add_(0, codes.reshape(-1).to(grad.device), grad.reshape(-1))
    out[0] = 0.0
    return out


__all__ = ["quantize", "QuantizeResult", "centroid_gradient"]
