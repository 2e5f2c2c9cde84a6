"""Measures of whether a teaching net looks like a real one: smooth first-layer filters, live units."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def filter_smoothness(weight) -> float:
    """Mean correlation between horizontally and vertically adjacent weights within each filter.

    For every (filter, input channel) kernel ``K`` the Pearson correlation of the pairs
    ``(K[i, j], K[i, j+1])`` and that of the pairs ``(K[i, j], K[i+1, j])`` are averaged; the result
    is the mean over filters and channels. Random initialisation gives about 0, the edge and blob
    detectors of a trained AlexNet conv1 about 0.6-0.9.

    Args:
        weight: conv weight (out, in, kh, kw), a tensor or array; kernels must be at least 2x2.

    Returns:
        The mean correlation in [-1, 1] (kernels that are constant along a direction are skipped).

    Example:
        >>> import numpy as np
        >>> ramp = np.add.outer(np.arange(5.0), np.arange(5.0))[None, None]
        >>> round(filter_smoothness(ramp), 6)
        1.0
    """
    w = torch.as_tensor(np.asarray(weight.detach().cpu() if torch.is_tensor(weight) else weight),
                        dtype=torch.float64)
    w = w.reshape(-1, *w.shape[-2:])
    corrs = []
    for a, b in ((w[:, :, :-1], w[:, :, 1:]), (w[:, :-1, :], w[:, 1:, :])):
        a = a.reshape(len(w), -1)
        b = b.reshape(len(w), -1)
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
        denom = a.norm(dim=1) * b.norm(dim=1)
        corr = (a * b).sum(1) / denom.clamp_min(1e-300)
        corrs.append(torch.where(denom > 0, corr, torch.nan))
    per_kernel = torch.stack(corrs, 1)
    return float(np.nanmean(per_kernel.numpy()))


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the ``nn.Conv2d`` modules of ``model`` in definition order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


@dataclass(frozen=True)
class Evaluation:
    """Accuracy and unit activity of a network on a test set, from one pass.

    Attributes:
        accuracy: share of images whose top logit is the label (None when no labels were given).
        max_activation: per conv layer, each channel's largest output over all images and positions.
    """

    accuracy: float | None
    max_activation: dict[str, torch.Tensor]

    @property
    def dead_units(self) -> dict[str, int]:
        """Per conv layer, how many channels are never positive (their ReLU never fires)."""
        return {n: int((m <= 0).sum()) for n, m in self.max_activation.items()}

    @property
    def units(self) -> dict[str, int]:
        """Channels per conv layer."""
        return {n: len(m) for n, m in self.max_activation.items()}


@torch.no_grad()
def evaluate(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None = None,
             batch_size: int = 500) -> Evaluation:
    """Run ``inputs`` through ``model`` once, keeping the accuracy and each conv channel's maximum.

    Args:
        model: the network (run in eval mode; the caller's mode is restored, hooks removed).
        inputs: model-ready float tensor (N, C, H, W), on the model's device.
        labels: class indices (N,), or None.
        batch_size: images per forward pass.

    Returns:
        An :class:`Evaluation`.

    Example:
        >>> from ipynetviz.zoo.models import digits_cnn
        >>> ev = evaluate(digits_cnn(), torch.zeros(4, 1, 32, 32), torch.zeros(4, dtype=torch.long))
        >>> sorted(ev.dead_units)
        ['conv1', 'conv2', 'conv3', 'conv4']
    """
    names = conv_layers(model)
    maxima: dict[str, torch.Tensor] = {}

    def hook_for(name):
        def hook(_module, _inp, out):
            m = out.amax(dim=(0, 2, 3))
            maxima[name] = m if name not in maxima else torch.maximum(maxima[name], m)
        return hook

    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(hook_for(n)) for n in names]
    was_training = model.training
    correct = 0
    try:
        model.eval()
        for start in range(0, len(inputs), batch_size):
            logits = model(inputs[start:start + batch_size])
            if labels is not None:
                correct += int((logits.argmax(1) == labels[start:start + batch_size].to(logits.device)).sum())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    accuracy = correct / max(len(inputs), 1) if labels is not None else None
    return Evaluation(accuracy, {n: maxima[n].cpu() for n in names})


def dead_units(model: nn.Module, inputs: torch.Tensor, batch_size: int = 500) -> dict[str, int]:
    """Per conv layer, how many channels are never positive (so their ReLU never fires) on ``inputs``.

    Args:
        model: the network.
        inputs: model-ready float tensor (N, C, H, W), on the model's device.
        batch_size: images per forward pass.

    Returns:
        ``{conv name: number of dead channels}``.
    """
    return evaluate(model, inputs, batch_size=batch_size).dead_units
