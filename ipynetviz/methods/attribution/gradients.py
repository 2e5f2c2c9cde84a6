"""Gradient maps: raw gradient, saliency, guided backprop and deconvnet.

All four take a batch of images and a target (``Class(k)``, a plain int, ``Unit(layer, c[, y, x])``, or None
for each image's predicted class) and return an :class:`AttributionResult`. They differ only in how the
backward pass treats ReLUs (see :mod:`.relu_rules`) and in the final reduction (saliency).
"""
from __future__ import annotations

import torch

from ...engine.checks import check_batch_size, check_choice
from ...engine.errors import ModelError
from .relu_rules import ReluOverride
from .results import AttributionResult

__all__ = ["gradient", "saliency", "guided_backprop", "deconvnet", "attribute"]

_RULES = {"gradient": None, "saliency": None, "guided_backprop": "guided", "deconvnet": "deconvnet"}


def attribute(insp, images, target=None, method: str = "gradient", batch_size: int | None = None
              ) -> AttributionResult:
    """Run one gradient method by name (what the widgets call).

    Args:
        insp: the :class:`~ipynetviz.engine.Inspector`.
        images: anything ``insp.prepare`` accepts (PIL, uint8 arrays, float model input).
        target: ``Class(k)`` / int / ``Unit(layer, channel[, y, x])`` / None (each image's predicted class).
            ``Unit(layer, c)`` without a position explains the *mean* of the feature map.
        method: "gradient", "saliency", "guided_backprop" or "deconvnet".
        batch_size: images per backward pass (default ``insp.batch_size``).

    Returns:
        :class:`AttributionResult`.

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> m = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> r = attribute(Inspector(m, input_size=(3, 6, 6), device="cpu"), torch.rand(1, 3, 6, 6), 0,
        ...               method="guided_backprop")
        >>> r.attributions.shape
        torch.Size([1, 3, 6, 6])
    """
    check_choice(method, "method", list(_RULES))
    bs = check_batch_size(batch_size, default=insp.batch_size)
    x = insp.prepare(images)
    spec = insp.resolve_target(target, x)  # once: every batch below gets a slice of it

    def compute() -> AttributionResult:
        rule = _RULES[method]
        # A unit's forward pass stops at its layer: a unit before the first ReLU (conv1) has no ReLU on its
        # path, and then guided backprop and deconvnet rightly equal the gradient. Only a model that calls no
        # ReLU at all is an error, so for units that is checked on a full forward pass below.
        unit_target = spec.is_unit
        modes: list[ReluOverride] = []

        def override() -> ReluOverride:
            modes.append(ReluOverride(rule, require_relu=not unit_target))
            return modes[-1]
        grads, scores = [], []
        for start in range(0, x.shape[0], bs):
            sl = slice(start, min(start + bs, x.shape[0]))
            g, s = insp.gradient_of(x[sl], spec.rows(sl), relu_override=override if rule else None)
            grads.append(g.cpu())
            scores.append(s.cpu())
        if rule and unit_target and not any(m.relus_seen for m in modes) and not _calls_relu(insp, x[:1]):
            name = "guided backprop" if rule == "guided" else "deconvnet"
            raise ModelError(f"the model calls no ReLU or other activation in its forward pass: {name} needs ReLUs "
                             "or ReLU-like activations (ReLU6, LeakyReLU, ELU, SiLU, GELU, Hardswish, Mish). Use "
                             "gradient() or saliency() for this model")
        grad = torch.cat(grads)
        if method == "saliency":
            grad = grad.abs().amax(1)
        return AttributionResult(method=method, attributions=grad, scores=torch.cat(scores),
                                 target=spec.description, images=insp.pictures(x, channels_last=True))

    return insp.cached(f"attribution.{method}", {"target": spec.key()}, x, compute)


def _calls_relu(insp, x: torch.Tensor) -> bool:
    """Whether a full forward pass of the model calls any ReLU (module, in-place or functional)."""
    with insp.eval_guard(), torch.no_grad(), ReluOverride("guided", require_relu=False) as mode:
        try:
            insp.model(x)
        except Exception:  # a model that fails here fails loudly in the caller's own passes
            return True
    return mode.relus_seen > 0


def gradient(insp, images, target=None, batch_size: int | None = None) -> AttributionResult:
    """d target / d input: the raw, noise-like gradient (N, C, H, W).

    Args:
        insp: the inspector. images: any accepted images. target: see :func:`attribute`.
        batch_size: images per backward pass.

    Returns:
        :class:`AttributionResult` with ``method="gradient"``.

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> insp = Inspector(nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 2)), input_size=(3, 2, 2), device="cpu")
        >>> r = gradient(insp, torch.rand(1, 3, 2, 2), target=1)
        >>> bool(torch.equal(r.attributions[0].flatten(), insp.model[1].weight[1]))
        True
    """
    return attribute(insp, images, target, "gradient", batch_size)


def saliency(insp, images, target=None, batch_size: int | None = None) -> AttributionResult:
    """Simonyan et al. (2014) saliency: max over colour channels of |d target / d input|, (N, H, W).

    Args:
        insp: the inspector. images: any accepted images. target: see :func:`attribute`.
        batch_size: images per backward pass.

    Returns:
        :class:`AttributionResult` with ``method="saliency"``.

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> insp = Inspector(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), input_size=(3, 1, 1), device="cpu")
        >>> saliency(insp, torch.rand(1, 3, 1, 1), 0).attributions.shape
        torch.Size([1, 1, 1])
    """
    return attribute(insp, images, target, "saliency", batch_size)


def guided_backprop(insp, images, target=None, batch_size: int | None = None) -> AttributionResult:
    """Springenberg et al. (2015): backward through each ReLU keeps gradients > 0 where the input was > 0.

    Works for ``nn.ReLU`` (in place or not, reused or not) and for ``F.relu`` / ``torch.relu`` /
    ``x.relu_()`` called inside ``forward``. Raises :class:`~ipynetviz.engine.ModelError` for a model
    without ReLUs.

    Args:
        insp: the inspector. images: any accepted images. target: see :func:`attribute`.
        batch_size: images per backward pass.

    Returns:
        :class:`AttributionResult` with ``method="guided_backprop"``, (N, C, H, W).

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> m = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
        >>> r = guided_backprop(Inspector(m, input_size=(2, 1, 1), device="cpu"), torch.ones(1, 2, 1, 1), 0)
        >>> r.attributions.shape
        torch.Size([1, 2, 1, 1])
    """
    return attribute(insp, images, target, "guided_backprop", batch_size)


def deconvnet(insp, images, target=None, batch_size: int | None = None) -> AttributionResult:
    """Zeiler & Fergus (2014): backward through each ReLU keeps the positive part of the gradient.

    Args:
        insp: the inspector. images: any accepted images. target: see :func:`attribute`.
        batch_size: images per backward pass.

    Returns:
        :class:`AttributionResult` with ``method="deconvnet"``, (N, C, H, W).

    Example:
        >>> from torch import nn
        >>> from ipynetviz.engine import Inspector
        >>> m = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
        >>> deconvnet(Inspector(m, input_size=(2, 1, 1), device="cpu"), torch.ones(3, 2, 1, 1), 0).scores.shape
        torch.Size([3])
    """
    return attribute(insp, images, target, "deconvnet", batch_size)
